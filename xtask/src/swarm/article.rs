//! The article's commands, as the scenarios replay them: the networks, the services and the
//! curls, with the changes this kernel and flowproxy need said where they are made.
use std::collections::BTreeMap;

use anyhow::{Context as _, bail, ensure};
use flowproxy_tests::wait::eventually;

use super::{
    cluster::{Cluster, Node},
    http,
    services::{Services, TASK_TIMEOUT},
    stack,
};

/// The reconfigure call of the article's step 7.
pub const RECONFIGURE: &str =
    "/v1/docker-flow-proxy/reconfigure?serviceName=go-demo&servicePath=/demo&port=8080";

/// The article's step 2: `docker network create --driver overlay proxy` and `go-demo`.
pub fn networks(manager: &Node) -> anyhow::Result<()> {
    for name in ["proxy", "go-demo"] {
        manager
            .docker
            .capture(&["network", "create", "--driver", "overlay", name])?;
    }
    Ok(())
}

/// The article's step 4 with flowproxy-demo standing in for vfarcic/go-demo (which answers
/// `/demo/hello` the same way). The article's `go-demo-db` (mongo) is left out: nothing can be
/// pulled, and go-demo's hello does not read the database.
pub fn go_demo(services: &mut Services, replicas: usize) -> anyhow::Result<()> {
    let replicas = replicas.to_string();
    services.create(
        "go-demo",
        &[
            "-e",
            "DB=go-demo-db",
            "--network",
            "go-demo",
            "--network",
            "proxy",
            "--replicas",
            &replicas,
            "flowproxy-demo:latest",
        ],
    )
}

/// The article's step 5, as the README deploys it: host-mode ports (no IPVS here, so no routing
/// mesh), the capabilities loading BPF needs, `/sys/fs/bpf` so the host's bpftool sees the maps,
/// `--network proxy`, `MODE=swarm`, and the programs attached to the interface that reaches the
/// replicas.
/// `socket` is the Docker socket on the node, mounted read-only for label discovery.
pub fn proxy(services: &mut Services, socket: &str) -> anyhow::Result<()> {
    let mut args: Vec<String> = Vec::new();
    for port in [80, 443, 8080] {
        args.push("--publish".into());
        args.push(format!("mode=host,target={port},published={port}"));
    }
    args.extend(
        [
            "--network",
            "proxy",
            "-e",
            "MODE=swarm",
            "-e",
            "INTERFACE=auto",
            "--cap-add",
            "CAP_SYS_ADMIN",
            "--cap-add",
            "CAP_NET_ADMIN",
            "--mount",
            "type=bind,source=/sys/fs/bpf,target=/sys/fs/bpf",
        ]
        .map(String::from),
    );
    args.push("--mount".into());
    args.push(format!(
        "type=bind,source={socket},target=/var/run/docker.sock,readonly"
    ));
    args.push("flowproxy:latest".into());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    services.create("proxy", &args)
}

/// The README's stack file (`docker stack deploy`): a global service named `proxy_proxy`,
/// adapted when the nodes share this machine's kernel (`stack::for_shared_host`).
pub fn proxy_stack(services: &mut Services, shared_host: bool) -> anyhow::Result<()> {
    let contents = if shared_host {
        stack::for_shared_host(stack::STACK_FILE)
    } else {
        stack::STACK_FILE.to_owned()
    };
    let path = stack::write(&contents)?;
    services.deploy_stack(stack::STACK, &path, &[stack::SERVICE])
}

/// A DFP API call on `node`'s port 8080, which must answer 200 with `"Status":"OK"`.
pub fn api_ok(cluster: &dyn Cluster, node: &Node, path_and_query: &str) -> anyhow::Result<String> {
    let url = format!("http://{}:8080{path_and_query}", node.addr);
    let response = http::get(cluster, &url, &[])?;
    ensure!(
        response.status == 200 && response.body.contains(r#""Status":"OK""#),
        "{url} answered {}: {}",
        response.status,
        response.body.trim()
    );
    Ok(response.body)
}

/// `curl -i <node>/demo/hello` gives the article's answer: 200, 14 bytes, `hello, world!`.
pub fn hello(cluster: &dyn Cluster, node: &Node) -> anyhow::Result<()> {
    let response = http::get(cluster, &format!("http://{}/demo/hello", node.addr), &[])?;
    ensure!(
        response.status == 200 && response.body == "hello, world!\n",
        "{} answered {}: {:?}",
        node.name,
        response.status,
        response.body
    );
    ensure!(
        response
            .head
            .to_ascii_lowercase()
            .contains("content-length: 14"),
        "no Content-Length: 14 in {:?}",
        response.head
    );
    Ok(())
}

/// Waits until `hello` passes on `node` (replicas are discovered a few seconds after they start).
pub fn eventually_hello(cluster: &dyn Cluster, node: &Node) -> anyhow::Result<()> {
    eventually(TASK_TIMEOUT, || hello(cluster, node))
}

/// `/v1/docker-flow-proxy/config` on `node` routes `/demo` to `service`.
pub fn config_routes(cluster: &dyn Cluster, node: &Node, service: &str) -> anyhow::Result<()> {
    let url = format!("http://{}:8080/v1/docker-flow-proxy/config", node.addr);
    let response = http::get(cluster, &url, &[])?;
    let config = response.body;
    if !(config.contains("path_beg /demo") && config.contains(service)) {
        bail!(
            "{}'s configuration has no /demo route to {service}:\n{config}",
            node.name
        );
    }
    Ok(())
}

/// Waits until a request for `path` on `node` is answered with `status`.
pub fn eventually_status(
    cluster: &dyn Cluster,
    node: &Node,
    path: &str,
    status: u16,
) -> anyhow::Result<()> {
    let url = format!("http://{}{path}", node.addr);
    eventually(TASK_TIMEOUT, || {
        let response = http::get(cluster, &url, &[])?;
        ensure!(
            response.status == status,
            "{url} answered {} ({}), not {status}",
            response.status,
            response.body.trim()
        );
        Ok(())
    })
    .with_context(|| format!("waiting for {status} from {url}"))
}

/// `counts` (answers per replica name) come from exactly `replicas`.
pub fn same_replicas(counts: &BTreeMap<String, usize>, replicas: &[String]) -> anyhow::Result<()> {
    let answered: Vec<&String> = counts.keys().collect();
    if answered != replicas.iter().collect::<Vec<_>>() {
        bail!("answered by {answered:?}, the replicas are {replicas:?}");
    }
    Ok(())
}

/// Waits until requests to `/demo/who` are answered by exactly `replicas`.
pub fn answered_by(cluster: &dyn Cluster, node: &Node, replicas: &[String]) -> anyhow::Result<()> {
    let url = format!("http://{}/demo/who", node.addr);
    eventually(TASK_TIMEOUT, || {
        let counts = http::count_answers(cluster, &url, 20)?;
        same_replicas(&counts, replicas)
    })
}

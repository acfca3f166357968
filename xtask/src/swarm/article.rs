//! The article's commands, as the scenarios replay them: the networks, the services and the
//! curls, with the changes this kernel and flowproxy need said where they are made.
use std::collections::BTreeMap;

use anyhow::{Context as _, bail, ensure};
use flowproxy_tests::wait::eventually;

use super::{
    cluster::{Cluster, Node},
    http,
    readme::{self, FirstScreen},
    services::{Services, TASK_TIMEOUT},
    stack,
};

/// The reconfigure call of the article's step 7.
pub const RECONFIGURE: &str =
    "/v1/docker-flow-proxy/reconfigure?serviceName=go-demo&servicePath=/demo&port=8080";

/// The article's step 2: `docker network create --driver overlay NAME` for each of `names`
/// (`proxy` and `go-demo`; the README's first block makes `proxy` itself).
pub fn networks(manager: &Node, names: &[&str]) -> anyhow::Result<()> {
    for name in names {
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

/// The article's step 5, as the README deploys it: the README's first block (network, token,
/// secret, `docker service create`), run verbatim by [`readme::run`]. Its line publishes
/// host-mode ports (no IPVS here, so no routing mesh), adds the capabilities loading BPF
/// needs, mounts `/sys/fs/bpf` so the host's bpftool sees the maps, and reads the API token
/// from the secret it made.
pub fn proxy(cluster: &dyn Cluster, services: &mut Services, node: &Node) -> anyhow::Result<()> {
    let screen = FirstScreen::read()?;
    services.adopt("proxy");
    readme::run(cluster, node, &screen.blocks[0]).map(drop)
}

/// The secret the README and the stack file read the API token from.
pub const SECRET: &str = "flowproxy_api_token";

/// The README's `openssl rand -hex 32 > flowproxy_api_token` and `docker secret create
/// flowproxy_api_token flowproxy_api_token`, run as printed, for a Swarm whose proxies come
/// from the stack file.
pub fn create_secret(cluster: &dyn Cluster, manager: &Node) -> anyhow::Result<()> {
    let screen = FirstScreen::read()?;
    readme::run(cluster, manager, &screen.secret_lines()).map(drop)
}

/// The API token the README's commands wrote (`flowproxy_api_token` in their directory).
pub fn token() -> anyhow::Result<String> {
    let file = readme::workdir().join(SECRET);
    let token = std::fs::read_to_string(&file)
        .with_context(|| format!("reading the README's token file {}", file.display()))?;
    let token = token.trim().to_owned();
    ensure!(
        token.len() == 64 && token.bytes().all(|b| b.is_ascii_hexdigit()),
        "{} does not hold 32 bytes in hex",
        file.display()
    );
    Ok(token)
}

/// The header every API call but ping and /metrics needs.
fn bearer() -> anyhow::Result<String> {
    Ok(format!("Authorization: Bearer {}", token()?))
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
    let response = http::get(cluster, &url, &["-H", &bearer()?])?;
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
    let response = http::get(cluster, &url, &["-H", &bearer()?])?;
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

/// Without the token, a change is refused (401): the secret is what protects the API.
pub fn refused_without_token(cluster: &dyn Cluster, node: &Node) -> anyhow::Result<()> {
    let url = format!("http://{}:8080{RECONFIGURE}", node.addr);
    let response = http::get(cluster, &url, &[])?;
    ensure!(
        response.status == 401,
        "{url} without a token answered {}: {}",
        response.status,
        response.body.trim()
    );
    Ok(())
}

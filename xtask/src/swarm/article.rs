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

/// The article's step 5, as the README deploys it: its `docker service create` line, run
/// verbatim but for the Docker socket's source, which is `socket` on these nodes (mounted
/// read-only for label discovery). The line publishes host-mode ports (no IPVS here, so no
/// routing mesh), adds the capabilities loading BPF needs, mounts `/sys/fs/bpf` so the host's
/// bpftool sees the maps, and reads the API token from the secret [`create_secret`] made.
pub fn proxy(services: &mut Services, socket: &str) -> anyhow::Result<()> {
    let args = readme_service_create(README)?;
    let args: Vec<String> = args
        .into_iter()
        .map(|a| a.replace("source=/var/run/docker.sock,", &format!("source={socket},")))
        .collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    services.create("proxy", &args)
}

/// The README, whose commands the scenarios run.
const README: &str = include_str!("../../../README.md");

/// The arguments of the README's `docker service create --name proxy` line after the name.
/// The line has no quoting (checked), so its words are its arguments.
fn readme_service_create(readme: &str) -> anyhow::Result<Vec<String>> {
    let mut lines = readme
        .lines()
        .skip_while(|l| !l.starts_with("docker service create --name proxy "));
    let mut command = String::new();
    for line in lines.by_ref() {
        let (text, continued) = match line.strip_suffix('\\') {
            Some(text) => (text, true),
            None => (line, false),
        };
        command.push_str(text);
        command.push(' ');
        if !continued {
            break;
        }
    }
    ensure!(
        !command.is_empty(),
        "README.md has no `docker service create --name proxy` line"
    );
    ensure!(
        !command.contains(['"', '\'', '$', '#']),
        "README.md's docker service create line needs a shell to be read: {command}"
    );
    let words: Vec<String> = command.split_whitespace().map(str::to_owned).collect();
    ensure!(
        words.starts_with(&["docker", "service", "create", "--name", "proxy"].map(String::from)),
        "unexpected start: {command}"
    );
    Ok(words[5..].to_vec())
}

/// The secret the README and the stack file read the API token from.
pub const SECRET: &str = "flowproxy_api_token";

/// The README's `openssl rand -hex 32 > flowproxy_api_token` and `docker secret create
/// flowproxy_api_token flowproxy_api_token`, on the manager, once per Swarm.
pub fn create_secret(manager: &Node) -> anyhow::Result<()> {
    let dir = crate::shell::workspace_root().join("target/swarm-test");
    std::fs::create_dir_all(&dir)?;
    let file = dir.join(SECRET);
    std::fs::write(&file, format!("{}\n", token()))?;
    manager
        .docker
        .capture(&["secret", "create", SECRET, &file.to_string_lossy()])
        .map(drop)
}

/// This run's API token: 32 random bytes in hex, as `openssl rand -hex 32` makes it.
pub fn token() -> &'static str {
    static TOKEN: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    TOKEN.get_or_init(|| {
        let mut bytes = [0u8; 32];
        std::fs::File::open("/dev/urandom")
            .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes))
            .expect("/dev/urandom is readable");
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    })
}

/// The header every API call but ping and /metrics needs.
fn bearer() -> String {
    format!("Authorization: Bearer {}", token())
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
    let response = http::get(cluster, &url, &["-H", &bearer()])?;
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
    let response = http::get(cluster, &url, &["-H", &bearer()])?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_readmes_service_create_line_is_read_word_by_word() {
        let args = readme_service_create(README).unwrap();
        let has = |flag: &str, value: &str| args.windows(2).any(|w| w[0] == flag && w[1] == value);
        assert!(has("--mode", "global"), "{args:?}");
        assert!(has("--secret", SECRET), "{args:?}");
        assert!(
            has("-e", "API_TOKEN_FILE=/run/secrets/flowproxy_api_token"),
            "{args:?}"
        );
        assert!(has("--update-order", "stop-first"), "{args:?}");
        assert!(has("--update-failure-action", "rollback"), "{args:?}");
        assert_eq!(args.last().map(String::as_str), Some("flowproxy:latest"));
        let text = "x\ndocker service create --name proxy \\\n  -e A=1 \\\n  img\nafter\n";
        assert_eq!(readme_service_create(text).unwrap(), ["-e", "A=1", "img"]);
        assert!(
            readme_service_create("docker service create --name proxy -e \"A B\" x\n").is_err()
        );
        assert!(readme_service_create("nothing here\n").is_err());
    }

    #[test]
    fn the_token_is_32_random_bytes_in_hex() {
        assert_eq!(token().len(), 64);
        assert!(token().bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(token(), token(), "one per run");
    }
}

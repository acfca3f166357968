//! A TCP-mode service on the Swarm (one node, or three with the README's stack file), exposed as
//! the README says: its `srcPort` published on the proxy (`docker service update
//! --publish-add`), then a reconfigure with `reqMode=tcp`. What the fast path does there (issue 13): every connection is answered, and
//! `flowproxy stats --json` in the proxy's container shows fast flows, and slow ones only
//! with a reason.
use anyhow::{Context as _, ensure};
use flowproxy_tests::wait::eventually;

use super::{
    article,
    cluster::{Cluster, Node},
    http,
    services::{self, Services, TASK_TIMEOUT},
};

/// The service's `srcPort`, published on every node.
pub const PORT: u16 = 15000;
/// Its name: a Swarm service of its own (`tasks.go-demo-tcp` lists its replicas).
const SERVICE: &str = "go-demo-tcp";
/// Short connections made through it.
const CONNECTIONS: usize = 50;
/// The body sent through it and echoed back.
const LARGE_BODY: usize = 100 << 20;

/// Starts the service with `replicas` replicas, publishes the port on the Swarm service `proxy`
/// (which runs on `nodes`, the first a manager) and configures it through `nodes[0]`.
pub fn expose(
    cluster: &dyn Cluster,
    nodes: &[Node],
    services: &mut Services,
    proxy: &str,
    replicas: usize,
) -> anyhow::Result<()> {
    let node = &nodes[0];
    let count = replicas.to_string();
    services.create(
        SERVICE,
        &[
            "--network",
            "proxy",
            "--replicas",
            &count,
            "flowproxy-demo:latest",
        ],
    )?;
    services::wait_running(node, SERVICE, replicas)?;
    let publish = format!("mode=host,target={PORT},published={PORT}");
    node.docker.capture(&[
        "service",
        "update",
        "--quiet",
        "--publish-add",
        &publish,
        proxy,
    ])?;
    services::wait_running(node, proxy, nodes.len())?;
    for node in nodes {
        services::wait_proxy_ready(cluster, node)?;
    }
    // Several replicas: the README's way, one call that every replica gets.
    let distribute = if nodes.len() > 1 {
        "&distribute=true"
    } else {
        ""
    };
    let query = format!(
        "/v1/docker-flow-proxy/reconfigure?serviceName={SERVICE}&reqMode=tcp&srcPort={PORT}&port=8080{distribute}"
    );
    eventually(TASK_TIMEOUT, || {
        article::api_ok(cluster, node, &query).map(drop)
    })
}

/// Every one of `CONNECTIONS` new connections through the TCP-mode port is answered, once the
/// fast path holds the service (a second or so after the reconfigure: flows before that are
/// relayed and counted as `slow_not_attached`, as the program never saw them).
pub fn short_connections(cluster: &dyn Cluster, node: &Node, proxy: &str) -> anyhow::Result<()> {
    eventually(TASK_TIMEOUT, || {
        let service = service_stats(node, proxy)?;
        ensure!(
            service["ring_size"].as_u64() > Some(0),
            "no replica in the ring yet: {service}"
        );
        Ok(())
    })?;
    let url = format!("http://{}:{PORT}/demo/hello", node.addr);
    // The first may find the listener or the replicas not there yet.
    eventually(TASK_TIMEOUT, || {
        let r = http::get(cluster, &url, &[])?;
        ensure!(r.status == 200, "{url} answered {}", r.status);
        Ok(())
    })?;
    for i in 0..CONNECTIONS {
        let r = http::get(cluster, &url, &[]).with_context(|| format!("connection {i}"))?;
        ensure!(
            r.status == 200 && r.body.contains("hello, world!"),
            "connection {i}: {} {}",
            r.status,
            r.body
        );
    }
    Ok(())
}

/// A 100 MB body POSTed through the TCP-mode port to `/demo/echo` comes back byte for byte:
/// both directions of one long flow through the fast path.
pub fn large_body_intact(cluster: &dyn Cluster, node: &Node) -> anyhow::Result<()> {
    let dir = crate::shell::workspace_root().join("target/swarm-test");
    std::fs::create_dir_all(&dir)?;
    let (sent, back) = (dir.join("tcp-mode-body"), dir.join("tcp-mode-echo"));
    let mut body = vec![0u8; LARGE_BODY];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut body))
        .context("reading /dev/urandom")?;
    std::fs::write(&sent, &body)?;
    let url = format!("http://{}:{PORT}/demo/echo", node.addr);
    let mut curl = cluster.curl();
    curl.args(["-sS", "--fail", "-m", "120", "--data-binary"])
        .arg(format!("@{}", sent.display()))
        .args(["-H", "Content-Type: application/octet-stream", "-o"])
        .arg(&back)
        .arg(&url);
    let sent_ok = super::docker::quiet(&mut curl).map(drop);
    let echoed = std::fs::read(&back);
    let _ = std::fs::remove_file(&sent);
    let _ = std::fs::remove_file(&back);
    sent_ok.with_context(|| format!("POST of {LARGE_BODY} bytes to {url}"))?;
    let echoed = echoed.context("nothing came back")?;
    ensure!(
        echoed.len() == body.len(),
        "{} of {} bytes came back",
        echoed.len(),
        body.len()
    );
    ensure!(
        echoed == body,
        "the bytes that came back differ from those sent"
    );
    Ok(())
}

/// `flowproxy stats --json` in the proxy's container: fast flows > 0, and every slow flow has a
/// reason (none arrived where the program is not attached).
pub fn fast_pathed(node: &Node, proxy: &str) -> anyhow::Result<()> {
    let service = service_stats(node, proxy)?;
    let fast = service["fast_flows"].as_u64().unwrap_or(0);
    ensure!(fast > 0, "no flow took the fast path: {service}");
    ensure!(
        service["service"] == SERVICE,
        "the port is not named after its service: {service}"
    );
    ensure!(
        service["slow_not_attached"].as_u64() == Some(0),
        "slow flows without a reason: {service}"
    );
    eprintln!("swarm-test: TCP-mode fast path on {}: {service}", node.name);
    Ok(())
}

/// The fast path's entry for `PORT` in `flowproxy stats --json`, run in the container of the
/// Swarm service `proxy` on `node`.
fn service_stats(node: &Node, proxy: &str) -> anyhow::Result<serde_json::Value> {
    let container = services::containers(node, proxy)?
        .into_iter()
        .next()
        .context("no proxy container")?;
    let out = node
        .docker
        .capture(&["exec", &container, "/flowproxy", "stats", "--json"])?;
    let stats: serde_json::Value = serde_json::from_str(&out).context("stats --json")?;
    stats["l4"]["services"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["port"] == PORT))
        .cloned()
        .with_context(|| format!("port {PORT} is not in the fast path: {}", stats["l4"]))
}

//! The single-node scenario: the article replayed on a one-node Swarm, then label-driven
//! discovery of a second service.
use anyhow::{Context as _, ensure};
use flowproxy_tests::wait::eventually;

use super::{
    article, bpf,
    cluster::{Cluster, Node},
    http,
    readme::{self, FirstScreen},
    report::Report,
    services::{self, Services, TASK_TIMEOUT},
    tcp_mode,
};

/// Requests sent to the five replicas, and the share each must get (20% ± 5%).
const REQUESTS: usize = 1000;
const SHARE_MIN: usize = 150;
const SHARE_MAX: usize = 250;

/// Runs the scenario on `cluster.nodes()[0]`, a Swarm of its own, recording every check.
pub fn run(cluster: &dyn Cluster, report: &mut Report) {
    let nodes = &cluster.nodes()[..1];
    let node = &nodes[0];
    let mut services = Services::new(nodes);
    let deployed = deploy(cluster, node, &mut services);
    if !report.record(
        "single-node: the article's networks and services start",
        deployed,
    ) {
        return;
    }
    report.check(
        "single-node: the README's expose block (its reconfigure curl, then curl -i <node>/demo/hello) answers hello, world!",
        || readme_expose(cluster, node),
    );
    report.check(
        "single-node: curl -i <node>/demo/hello answers 200 hello, world! (14 bytes)",
        || article::eventually_hello(cluster, node),
    );
    report.check(
        "single-node: the proxy's configuration routes /demo to go-demo",
        || article::config_routes(cluster, node, "go-demo"),
    );
    report.check(
        "single-node: the README's look block: task Running and healthy, metrics, stats and the status page list go-demo",
        || readme_look(cluster, node),
    );
    let scaled = report.check(
        "single-node: after docker service scale go-demo=5, each replica gets 20% ± 5% of 1,000 requests",
        || scale_and_balance(cluster, node),
    );
    report.check(
        "single-node: the host's bpftool shows the proxy's programs and pinned maps, counters moved",
        || {
            ensure!(scaled, "needs the five replicas of the previous check");
            bpf::check_counters(cluster, node, "/sys/fs/bpf/flowproxy", 5)
        },
    );
    tcp_mode(cluster, node, &mut services, report);
    report.check(
        "single-node: after remove, /demo/hello is not routed (404)",
        || {
            article::api_ok(
                cluster,
                node,
                "/v1/docker-flow-proxy/remove?serviceName=go-demo",
            )?;
            article::eventually_status(cluster, node, "/demo/hello", 404)
        },
    );
    labels(cluster, node, &mut services, report);
}

fn deploy(cluster: &dyn Cluster, node: &Node, services: &mut Services) -> anyhow::Result<()> {
    article::proxy(cluster, services, node)?;
    article::networks(node, &["go-demo"])?;
    article::go_demo(services, 1)?;
    // The article's step 6: `docker service ps proxy` shows the task running.
    services::wait_running(node, "go-demo", 1)?;
    services::wait_running(node, "proxy", 1)?;
    services::wait_proxy_ready(cluster, node)
}

/// The README's second block, run as printed until go-demo's replica answers through it (a
/// user would run it again too: the replica may start after the curl).
fn readme_expose(cluster: &dyn Cluster, node: &Node) -> anyhow::Result<()> {
    let screen = FirstScreen::read()?;
    eventually(TASK_TIMEOUT, || {
        let out = readme::run(cluster, node, &screen.blocks[1])?;
        for expected in [r#""Status":"OK""#, "HTTP/1.1 200", "hello, world!"] {
            ensure!(
                out.contains(expected),
                "no {expected} in what it printed:\n{out}"
            );
        }
        Ok(())
    })
}

/// The README's third block, run as printed: the task is Running and healthy, the metrics and
/// `flowproxy stats` show go-demo, and the status page at the URL it prints lists go-demo.
fn readme_look(cluster: &dyn Cluster, node: &Node) -> anyhow::Result<()> {
    let screen = FirstScreen::read()?;
    // The image's HEALTHCHECK reports healthy after its first passing probe.
    let out = eventually(TASK_TIMEOUT, || {
        let out = readme::run(cluster, node, &screen.blocks[2])?;
        ensure!(out.contains("(healthy)"), "not healthy yet:\n{out}");
        Ok(out)
    })?;
    for expected in [
        " Running ",
        "flowproxy_build_info{",
        r#"flowproxy_service_requests_total{service="go-demo""#,
        "REPLICA",
    ] {
        ensure!(
            out.contains(expected),
            "no {expected} in what it printed:\n{out}"
        );
    }
    let page = out
        .lines()
        .find(|l| l.starts_with(&format!("http://{}:8080/?token=", node.addr)))
        .with_context(|| format!("no status page URL in what it printed:\n{out}"))?;
    let response = http::get(cluster, page, &[])?;
    ensure!(
        response.status == 200 && response.body.contains("go-demo"),
        "the status page answered {} without go-demo",
        response.status
    );
    Ok(())
}

/// Scales to five, waits until all five answer through the proxy, then checks the shares.
fn scale_and_balance(cluster: &dyn Cluster, node: &Node) -> anyhow::Result<()> {
    node.docker
        .capture(&["service", "scale", "--detach", "go-demo=5"])?;
    services::wait_running(node, "go-demo", 5)?;
    let replicas = services::replica_names(std::slice::from_ref(node), "go-demo")?;
    ensure!(replicas.len() == 5, "go-demo containers: {replicas:?}");
    let url = format!("http://{}/demo/who", node.addr);
    // The proxy finds new replicas within its DNS refresh: wait until each has answered.
    eventually(TASK_TIMEOUT, || {
        let counts = http::count_answers(cluster, &url, 50)?;
        article::same_replicas(&counts, &replicas)
    })?;
    let counts = http::count_answers(cluster, &url, REQUESTS)?;
    eprintln!("swarm-test: answers per replica: {counts:?}");
    article::same_replicas(&counts, &replicas)?;
    for (replica, count) in &counts {
        ensure!(
            (SHARE_MIN..=SHARE_MAX).contains(count),
            "replica {replica} answered {count} of {REQUESTS} requests: {counts:?}"
        );
    }
    Ok(())
}

/// A TCP-mode service with its port published the README's way, on the fast path.
fn tcp_mode(cluster: &dyn Cluster, node: &Node, services: &mut Services, report: &mut Report) {
    let exposed = report.check(
        "single-node: a TCP-mode service (reqMode=tcp, srcPort published with --publish-add) is configured",
        || tcp_mode::expose(cluster, std::slice::from_ref(node), services, "proxy", 2),
    );
    let answered = report.check(
        "single-node: 50 short connections through the TCP-mode port all answer",
        || {
            ensure!(exposed, "needs the TCP-mode service");
            tcp_mode::short_connections(cluster, node, "proxy")
        },
    );
    report.check(
        "single-node: a 100 MB body through the TCP-mode port comes back byte for byte",
        || {
            ensure!(answered, "needs the connections");
            tcp_mode::large_body_intact(cluster, node)
        },
    );
    report.check(
        "single-node: flowproxy stats in the proxy container shows fast flows, slow ones only with a reason",
        || {
            ensure!(answered, "needs the connections");
            tcp_mode::fast_pathed(node, "proxy")
        },
    );
}

/// The README's label example, run as printed once the reconfigured go-demo is gone: the
/// service is routed by its labels alone (the Swarm Listener's contract), its replicas are
/// followed, and its route goes with it.
fn labels(cluster: &dyn Cluster, node: &Node, services: &mut Services, report: &mut Report) {
    let created = services.remove("go-demo").and_then(|()| {
        let screen = FirstScreen::read()?;
        services.adopt("go-demo");
        readme::run(cluster, node, &screen.labelled).map(drop)
    });
    let name = "single-node: the README's labelled docker service create is routed without a reconfigure call";
    let routed = match created {
        Ok(()) => report.check(name, || {
            services::wait_running(node, "go-demo", 1)?;
            let replicas = services::replica_names(std::slice::from_ref(node), "go-demo")?;
            article::answered_by(cluster, node, &replicas)
        }),
        Err(e) => report.record(name, Err(e)),
    };
    report.check(
        "single-node: scaling a labelled service updates its replicas",
        || {
            ensure!(routed, "needs the labelled service's route");
            node.docker
                .capture(&["service", "scale", "--detach", "go-demo=2"])?;
            services::wait_running(node, "go-demo", 2)?;
            let replicas = services::replica_names(std::slice::from_ref(node), "go-demo")?;
            article::answered_by(cluster, node, &replicas)
        },
    );
    report.check(
        "single-node: removing a labelled service removes its route",
        || {
            ensure!(routed, "needs the labelled service's route");
            services.remove("go-demo")?;
            article::eventually_status(cluster, node, "/demo/hello", 404)
        },
    );
}

//! The single-node scenario: the article replayed on a one-node Swarm, then label-driven
//! discovery of a second service.
use anyhow::ensure;
use flowproxy_tests::wait::eventually;

use super::{
    article, bpf,
    cluster::{Cluster, Node},
    http,
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
        "single-node: the article's reconfigure curl is accepted",
        || article::api_ok(cluster, node, article::RECONFIGURE).map(drop),
    );
    report.check(
        "single-node: curl -i <node>/demo/hello answers 200 hello, world!",
        || article::eventually_hello(cluster, node),
    );
    report.check(
        "single-node: the proxy's configuration routes /demo to go-demo",
        || article::config_routes(cluster, node, "go-demo"),
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
    article::networks(node)?;
    article::go_demo(services, 1)?;
    article::proxy(services, &node.socket)?;
    // The article's step 6: `docker service ps proxy` shows the task running.
    services::wait_running(node, "go-demo", 1)?;
    services::wait_running(node, "proxy", 1)?;
    services::wait_proxy_ready(cluster, node)
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
        || tcp_mode::expose(cluster, node, services),
    );
    let answered = report.check(
        "single-node: 50 short connections through the TCP-mode port all answer",
        || {
            ensure!(exposed, "needs the TCP-mode service");
            tcp_mode::short_connections(cluster, node)
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
            tcp_mode::fast_pathed(node)
        },
    );
}

/// A second service exposed by its labels alone (the Swarm Listener's contract): routed once
/// it runs, its replicas followed, its route gone once it is removed.
fn labels(cluster: &dyn Cluster, node: &Node, services: &mut Services, report: &mut Report) {
    let created = services.create(
        "go-demo-labels",
        &[
            "--network",
            "proxy",
            "--label",
            "com.df.notify=true",
            "--label",
            "com.df.servicePath=/demo",
            "--label",
            "com.df.port=8080",
            "flowproxy-demo:latest",
        ],
    );
    let name =
        "single-node: a service labelled com.df.notify=true is routed without a reconfigure call";
    let routed = match created {
        Ok(()) => report.check(name, || {
            services::wait_running(node, "go-demo-labels", 1)?;
            let replicas = services::replica_names(std::slice::from_ref(node), "go-demo-labels")?;
            article::answered_by(cluster, node, &replicas)
        }),
        Err(e) => report.record(name, Err(e)),
    };
    report.check(
        "single-node: scaling a labelled service updates its replicas",
        || {
            ensure!(routed, "needs the labelled service's route");
            node.docker
                .capture(&["service", "scale", "--detach", "go-demo-labels=2"])?;
            services::wait_running(node, "go-demo-labels", 2)?;
            let replicas = services::replica_names(std::slice::from_ref(node), "go-demo-labels")?;
            article::answered_by(cluster, node, &replicas)
        },
    );
    report.check(
        "single-node: removing a labelled service removes its route",
        || {
            ensure!(routed, "needs the labelled service's route");
            services.remove("go-demo-labels")?;
            article::eventually_status(cluster, node, "/demo/hello", 404)
        },
    );
}

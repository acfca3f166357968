//! The multi-node scenario: three nodes in one Swarm, the proxy deployed with the README's stack
//! file (global, production-shaped: its settings and health checks are checked), a reconfigure
//! sent to one replica with `distribute=true` reaching all three, a killed replica rescheduled
//! with the whole configuration taken from its peers, and a rolling image update that keeps
//! the configuration on every node. Then a TCP-mode service published on the stack's service:
//! answered through every node and forwarded by each node's fast path.
use std::time::Duration;

use anyhow::{Context as _, ensure};
use flowproxy_tests::wait::eventually;

use super::{
    article,
    cluster::{Cluster, Node},
    membership, production,
    report::Report,
    services::{self, Services, TASK_TIMEOUT},
    stack, tcp_mode,
};

/// How long a distributed change may take to show on a peer (the reply comes after the fan-out,
/// so this only absorbs a slow peer).
const PEER_TIMEOUT: Duration = Duration::from_secs(30);

/// Joins the other nodes to node-1's Swarm and runs the scenario, recording every check.
pub fn run(cluster: &dyn Cluster, report: &mut Report) {
    let nodes = cluster.nodes();
    let mut services = Services::new(nodes);
    let deployed = deploy(cluster, nodes, &mut services);
    if !report.record(
        &format!(
            "multi-node: {} nodes in one Swarm run the proxy as a global service",
            nodes.len()
        ),
        deployed,
    ) {
        return;
    }
    let manager = &nodes[0];
    report.check(
        "multi-node: the deployed service has the stack file's update, rollback, restart, grace, volume, secret and reservation settings",
        || production::settings(manager),
    );
    report.check(
        "multi-node: docker service ps shows every task running and docker inspect every container healthy",
        || production::healthy(nodes, stack::SERVICE),
    );
    report.check(
        "multi-node: without the secret's API token a reconfigure is refused (401)",
        || article::refused_without_token(cluster, manager),
    );
    let distributed = report.check(
        "multi-node: a reconfigure with distribute=true sent to one replica is accepted",
        || {
            let path = format!("{}&distribute=true", article::RECONFIGURE);
            article::api_ok(cluster, manager, &path).map(drop)
        },
    );
    for node in nodes {
        report.check(
            &format!(
                "multi-node: {} has the distributed route and answers /demo/hello",
                node.name
            ),
            || {
                ensure!(distributed, "needs the distributed reconfigure");
                eventually(PEER_TIMEOUT, || {
                    article::config_routes(cluster, node, "go-demo")
                })?;
                article::eventually_hello(cluster, node)
            },
        );
    }
    // Each replica told directly (no fan-out): every node's proxy reaches the go-demo replicas
    // on every node over the overlay. This also gives the peers the configuration the killed
    // replica must take from them below, whether or not the fan-out worked.
    report.check(
        "multi-node: each node's proxy balances over the go-demo replicas of all nodes",
        || {
            for node in nodes {
                let here = services::containers(node, "go-demo")?;
                ensure!(!here.is_empty(), "no go-demo replica runs on {}", node.name);
            }
            let replicas = services::replica_names(nodes, "go-demo")?;
            for node in nodes {
                article::api_ok(cluster, node, article::RECONFIGURE)?;
                article::answered_by(cluster, node, &replicas)
                    .with_context(|| format!("through {}", node.name))?;
            }
            Ok(())
        },
    );
    let victim = &nodes[1.min(nodes.len() - 1)];
    let rescheduled = report.check(
        &format!(
            "multi-node: the proxy replica on {} killed and rescheduled comes back with the full configuration",
            victim.name
        ),
        || {
            kill_and_wait(cluster, victim)?;
            // Ready means bootstrapped: the route must be there at the first ping.
            article::config_routes(cluster, victim, "go-demo")?;
            article::hello(cluster, victim)
        },
    );
    report.check(
        &format!(
            "multi-node: docker service update --image {} rolls one node at a time (never two down) without a rollback, every node in a new healthy container and still routing /demo",
            production::NEXT_TAG
        ),
        || {
            ensure!(rescheduled, "needs every node configured and running");
            production::roll(cluster, nodes)
        },
    );
    tcp_mode_on_every_node(cluster, nodes, &mut services, report);
}

/// A TCP-mode service with replicas on every node, its `srcPort` published on the stack's
/// service and configured with `distribute=true`: answered through every node's port, a large
/// body intact through a node whose replicas are mostly elsewhere, and each node's
/// `flowproxy stats` showing fast flows and no slow flow without a reason.
fn tcp_mode_on_every_node(
    cluster: &dyn Cluster,
    nodes: &[Node],
    services: &mut Services,
    report: &mut Report,
) {
    let exposed = report.check(
        "multi-node: a TCP-mode service (reqMode=tcp, srcPort published on the stack's service with --publish-add, distribute=true) is configured",
        || tcp_mode::expose(cluster, nodes, services, stack::SERVICE, nodes.len()),
    );
    let mut answered = exposed;
    for node in nodes {
        answered &= report.check(
            &format!(
                "multi-node: 50 short connections through {}'s TCP-mode port all answer",
                node.name
            ),
            || {
                ensure!(exposed, "needs the TCP-mode service");
                tcp_mode::short_connections(cluster, node, stack::SERVICE)
            },
        );
    }
    let far = &nodes[nodes.len() - 1];
    report.check(
        &format!(
            "multi-node: a 100 MB body through {}'s TCP-mode port comes back byte for byte",
            far.name
        ),
        || {
            ensure!(answered, "needs the connections");
            tcp_mode::large_body_intact(cluster, far)
        },
    );
    for node in nodes {
        report.check(
            &format!(
                "multi-node: flowproxy stats on {} shows fast flows, slow ones only with a reason",
                node.name
            ),
            || {
                ensure!(answered, "needs the connections");
                tcp_mode::fast_pathed(node, stack::SERVICE)
            },
        );
    }
}

fn deploy(cluster: &dyn Cluster, nodes: &[Node], services: &mut Services) -> anyhow::Result<()> {
    let manager = &nodes[0];
    for worker in &nodes[1..] {
        membership::join(manager, worker)?;
    }
    article::go_demo(services, nodes.len())?;
    article::proxy_stack(services, cluster.shares_one_kernel())?;
    services::wait_running(manager, "go-demo", nodes.len())?;
    services::wait_running(manager, stack::SERVICE, nodes.len())?;
    for node in nodes {
        services::wait_proxy_ready(cluster, node)?;
    }
    Ok(())
}

/// `docker kill`s the proxy container on `node`, then waits for Swarm's replacement to answer
/// its ping.
fn kill_and_wait(cluster: &dyn Cluster, node: &Node) -> anyhow::Result<()> {
    let old = services::containers(node, stack::SERVICE)?;
    ensure!(
        old.len() == 1,
        "{} runs proxy containers {old:?}",
        node.name
    );
    node.docker.capture(&["kill", &old[0]])?;
    eventually(TASK_TIMEOUT, || {
        let now = services::containers(node, stack::SERVICE)?;
        ensure!(
            now.len() == 1 && now != old,
            "{} runs proxy containers {now:?} (killed {old:?})",
            node.name
        );
        Ok(())
    })
    .context("waiting for Swarm to reschedule the proxy")?;
    services::wait_proxy_ready(cluster, node)
}

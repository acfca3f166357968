//! Replicas merge per service instead of replacing each other's configuration (issue 15):
//! three replicas on a LAN (`ProxyCluster`), changes made on different replicas without
//! `distribute`, and every acknowledged change survives: concurrent changes to different
//! services, removals against replicas that had not seen them, a re-add after a removal, a
//! clock ten minutes behind, a partition, and a restart. An entry a replica cannot take is
//! reported, and does not hold back the others.
use std::time::Duration;

use anyhow::ensure;
use flowproxy_tests::{
    FakeDocker, ProxyCluster, StubServer, eventually, fake_docker::service as swarm_service,
    proxy::temp_state_dir,
};

const CONVERGE: Duration = Duration::from_secs(40);
/// Peers compare every second, and a partitioned one costs a second at most.
const FAST_SYNC: [&str; 4] = ["--peer-sync-interval", "1", "--peer-timeout", "1"];
/// Only an explicit `POST /v1/flowproxy/sync` (or a bootstrap) moves entries.
const NO_PERIODIC_SYNC: [&str; 2] = ["--peer-sync-interval", "3600"];

fn service(name: &str, path: &str) -> String {
    format!("/v1/docker-flow-proxy/reconfigure?serviceName={name}&servicePath={path}&port=8080")
}

fn ok(cluster: &ProxyCluster, node: usize, path_and_query: &str) -> anyhow::Result<()> {
    let reply = cluster.api(node, path_and_query)?;
    ensure!(
        reply.status == 200,
        "node {node}: {path_and_query}: {}",
        reply.body
    );
    Ok(())
}

fn sorted(mut names: Vec<String>) -> Vec<String> {
    names.sort();
    names
}

/// Waits until every node in `nodes` routes exactly `expected` and has the same digest.
fn converged(cluster: &ProxyCluster, nodes: &[usize], expected: &[&str]) -> anyhow::Result<()> {
    eventually(CONVERGE, || {
        for &node in nodes {
            let services = sorted(cluster.services(node)?);
            ensure!(
                services == expected,
                "node {node} has {services:?}, expected {expected:?}"
            );
        }
        let digest = cluster.config_hash(nodes[0])?;
        for &node in &nodes[1..] {
            ensure!(
                cluster.config_hash(node)? == digest,
                "node {node}'s digest differs"
            );
        }
        Ok(())
    })
}

/// The servicePath node `node` has for `name`, from the exchanged entries.
fn service_path(cluster: &ProxyCluster, node: usize, name: &str) -> anyhow::Result<String> {
    let body = cluster.api(node, "/v1/flowproxy/config")?.body;
    let json: serde_json::Value = serde_json::from_str(&body)?;
    json["Services"][name]["Value"]["servicePath"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| anyhow::anyhow!("node {node} has no live {name}: {body}"))
}

fn three_replicas(extra: &[&str]) -> anyhow::Result<ProxyCluster> {
    let mut cluster = ProxyCluster::new(None)?;
    for _ in 0..3 {
        cluster.add_node()?;
    }
    cluster.publish_tasks(&[0, 1, 2])?;
    cluster.start_all(&[0, 1, 2], extra)?;
    Ok(cluster)
}

#[test]
fn concurrent_changes_to_different_services_on_different_replicas_all_survive() -> anyhow::Result<()>
{
    let cluster = three_replicas(&FAST_SYNC)?;
    // The bug of issue 15: svca on one replica, svcb on another a moment later, no distribute.
    ok(&cluster, 0, &service("svca", "/a"))?;
    ok(&cluster, 1, &service("svcb", "/b"))?;
    ok(&cluster, 2, &service("svcc", "/c"))?;
    converged(&cluster, &[0, 1, 2], &["svca", "svcb", "svcc"])?;

    // Concurrent changes to one service converge on the same winner everywhere.
    ok(&cluster, 0, &service("svca", "/from-0"))?;
    ok(&cluster, 1, &service("svca", "/from-1"))?;
    converged(&cluster, &[0, 1, 2], &["svca", "svcb", "svcc"])?;
    let winner = service_path(&cluster, 0, "svca")?;
    assert!(winner == "/from-0" || winner == "/from-1", "{winner}");
    for node in 1..3 {
        assert_eq!(service_path(&cluster, node, "svca")?, winner, "node {node}");
    }
    Ok(())
}

#[test]
fn a_remove_is_not_undone_by_a_replica_that_missed_it_and_a_later_re_add_wins() -> anyhow::Result<()>
{
    let cluster = three_replicas(&NO_PERIODIC_SYNC)?;
    let sync = |node: usize| -> anyhow::Result<()> {
        let reply = cluster.api_with(node, "/v1/flowproxy/sync", &["-X", "POST"])?;
        ensure!(reply.status == 200, "sync on node {node}: {}", reply.body);
        Ok(())
    };
    ok(
        &cluster,
        0,
        &format!("{}&distribute=true", service("shop", "/shop")),
    )?;
    converged(&cluster, &[0, 1, 2], &["shop"])?;

    // Removed on node 1 only; then node 2, which has not seen the removal, makes a later
    // change of its own. Node 0 merges both: the removal stands (under a whole-configuration
    // rule, node 2's newer configuration would have brought the service back).
    ok(&cluster, 1, "/v1/docker-flow-proxy/remove?serviceName=shop")?;
    ok(&cluster, 2, &service("other", "/other"))?;
    assert_eq!(
        sorted(cluster.services(2)?),
        ["other", "shop"],
        "not distributed"
    );
    sync(0)?;
    assert_eq!(cluster.services(0)?, ["other"], "node 2's older copy lost");
    sync(1)?;
    sync(2)?;
    converged(&cluster, &[0, 1, 2], &["other"])?;

    // Added again on node 2: the new entry is later than the tombstone and wins.
    ok(&cluster, 2, &service("shop", "/shop-again"))?;
    sync(0)?;
    sync(1)?;
    converged(&cluster, &[0, 1, 2], &["other", "shop"])?;
    for node in 0..3 {
        assert_eq!(
            service_path(&cluster, node, "shop")?,
            "/shop-again",
            "node {node}"
        );
    }
    Ok(())
}

#[test]
fn a_replica_with_its_clock_ten_minutes_behind_loses_nothing() -> anyhow::Result<()> {
    let mut cluster = ProxyCluster::new(None)?;
    for _ in 0..3 {
        cluster.add_node()?;
    }
    cluster.publish_tasks(&[0, 1, 2])?;
    cluster.start_all(&[0, 1], &FAST_SYNC)?;
    let mut behind = cluster.flowproxy(2).arg("--clock-offset-ms").arg("-600000");
    for arg in FAST_SYNC {
        behind = behind.arg(arg);
    }
    cluster.start(2, behind)?;
    cluster.wait_ready(2)?;

    ok(&cluster, 0, &service("api", "/api"))?;
    converged(&cluster, &[0, 1, 2], &["api"])?;
    // Node 2 changes what it has seen: its change must win although its clock says it was
    // made ten minutes before the original.
    ok(&cluster, 2, &service("api", "/api-v2"))?;
    // And changes to different services made at once on both sides all stay.
    ok(&cluster, 2, &service("late", "/late"))?;
    ok(&cluster, 1, &service("early", "/early"))?;
    converged(&cluster, &[0, 1, 2], &["api", "early", "late"])?;
    for node in 0..3 {
        assert_eq!(
            service_path(&cluster, node, "api")?,
            "/api-v2",
            "node {node}"
        );
    }
    // A removal on the lagging replica is not undone either.
    ok(
        &cluster,
        2,
        "/v1/docker-flow-proxy/remove?serviceName=early",
    )?;
    converged(&cluster, &[0, 1, 2], &["api", "late"])?;
    assert!(
        cluster.log(2).contains("clock offset"),
        "the test hook is announced:\n{}",
        cluster.log(2)
    );
    Ok(())
}

#[test]
fn a_partitioned_replica_merges_both_ways_when_it_comes_back() -> anyhow::Result<()> {
    let cluster = three_replicas(&FAST_SYNC)?;
    ok(
        &cluster,
        0,
        &format!("{}&distribute=true", service("shared", "/shared")),
    )?;
    converged(&cluster, &[0, 1, 2], &["shared"])?;

    cluster.set_connected(2, false)?;
    // Changes on the island (through its own loopback) and on the mainland.
    let on_island = |path_and_query: &str| -> anyhow::Result<()> {
        let reply = cluster.api_on_node(2, path_and_query)?;
        ensure!(reply.status == 200, "node 2: {}", reply.body);
        Ok(())
    };
    on_island(&service("island", "/island"))?;
    on_island("/v1/docker-flow-proxy/remove?serviceName=shared")?;
    ok(&cluster, 0, &service("mainland", "/mainland"))?;
    converged(&cluster, &[0, 1], &["mainland", "shared"])?;
    assert_eq!(
        cluster.services(0)?.len(),
        2,
        "the island's changes cannot have arrived"
    );

    cluster.set_connected(2, true)?;
    converged(&cluster, &[0, 1, 2], &["island", "mainland"])?;
    Ok(())
}

#[test]
fn a_restarted_replica_bootstraps_by_merging_and_is_ready_only_after() -> anyhow::Result<()> {
    let mut cluster = ProxyCluster::new(None)?;
    for _ in 0..3 {
        cluster.add_node()?;
    }
    cluster.publish_tasks(&[0, 1, 2])?;
    let state = temp_state_dir();
    cluster.start_all(&[0, 1], &NO_PERIODIC_SYNC)?;
    let restartable = |cluster: &ProxyCluster| {
        cluster
            .flowproxy(2)
            .state_dir(&state)
            .arg(NO_PERIODIC_SYNC[0])
            .arg(NO_PERIODIC_SYNC[1])
    };
    cluster.start(2, restartable(&cluster))?;
    cluster.wait_ready(2)?;
    for name in ["kept", "gone-here"] {
        let path = format!("/{name}");
        ok(
            &cluster,
            0,
            &format!("{}&distribute=true", service(name, &path)),
        )?;
    }
    // Before it stops, node 2 makes changes nobody else has: an added service and a removal
    // (a tombstone, saved with its version).
    ok(&cluster, 2, &service("local-only", "/local"))?;
    ok(
        &cluster,
        2,
        "/v1/docker-flow-proxy/remove?serviceName=gone-here",
    )?;
    cluster.nodes[2].proxy = None;

    // While it is down: node 0 adds a service, node 1 removes one; neither tells the other.
    ok(&cluster, 0, &service("while-down", "/while-down"))?;
    ok(&cluster, 1, "/v1/docker-flow-proxy/remove?serviceName=kept")?;

    cluster.start(2, restartable(&cluster))?;
    // The first 200 from ping: whatever it has now, it had when it said it was ready. No
    // single replica has this set: it is the merge of node 0's, node 1's and its own.
    cluster.wait_ready(2)?;
    assert_eq!(
        sorted(cluster.services(2)?),
        ["local-only", "while-down"],
        "{}",
        cluster.log(2)
    );
    assert!(
        cluster.log(2).contains("entries merged from a peer"),
        "{}",
        cluster.log(2)
    );
    cluster.nodes[2].proxy = None;
    std::fs::remove_dir_all(&state)?;
    Ok(())
}

#[test]
fn an_entry_a_replica_refuses_is_reported_and_the_others_still_apply() -> anyhow::Result<()> {
    let mut cluster = ProxyCluster::new(None)?;
    for _ in 0..2 {
        cluster.add_node()?;
    }
    cluster.publish_tasks(&[0, 1])?;
    // On node 1 something else already listens on the port a TCP-mode service wants.
    let squatter = StubServer::start(&cluster.nodes[1].host, 9500)?;
    cluster.start_all(&[0, 1], &FAST_SYNC)?;
    ok(
        &cluster,
        0,
        "/v1/docker-flow-proxy/reconfigure?serviceName=pg&reqMode=tcp&srcPort=9500&port=5432",
    )?;
    ok(&cluster, 0, &service("web", "/web"))?;

    eventually(CONVERGE, || {
        ensure!(
            cluster.services(1)? == ["web"],
            "node 1 has {:?}",
            cluster.services(1)?
        );
        let peers: serde_json::Value =
            serde_json::from_str(&cluster.api(1, "/v1/flowproxy/peers")?.body)?;
        let refused = peers["Refused"].as_array().cloned().unwrap_or_default();
        ensure!(
            refused.iter().any(|r| r["Name"] == "pg"
                && r["Kind"] == "service"
                && r["Error"].as_str().is_some_and(|e| e.contains("9500"))),
            "pg is not reported as refused: {peers}"
        );
        Ok(())
    })?;
    assert_eq!(sorted(cluster.services(0)?), ["pg", "web"]);
    let log = cluster.log(1);
    assert!(
        log.contains("refused here") && log.contains("pg"),
        "the refusal is logged:\n{log}"
    );

    // Once the port is free and the service is changed again, it applies and the report goes.
    drop(squatter);
    ok(
        &cluster,
        0,
        "/v1/docker-flow-proxy/reconfigure?serviceName=pg&reqMode=tcp&srcPort=9500&port=5433",
    )?;
    converged(&cluster, &[0, 1], &["pg", "web"])?;
    let peers: serde_json::Value =
        serde_json::from_str(&cluster.api(1, "/v1/flowproxy/peers")?.body)?;
    assert_eq!(peers["Refused"], serde_json::json!([]), "{peers}");
    Ok(())
}

#[test]
fn a_label_made_service_removed_from_docker_is_removed_on_every_replica() -> anyhow::Result<()> {
    let docker = FakeDocker::start()?;
    docker.set_services(vec![swarm_service(
        "labelled",
        &[
            ("com.df.notify", "true"),
            ("com.df.servicePath", "/labelled"),
            ("com.df.port", "8080"),
        ],
        Some(1),
    )]);
    let mut cluster = ProxyCluster::new(None)?;
    for _ in 0..3 {
        cluster.add_node()?;
    }
    cluster.publish_tasks(&[0, 1, 2])?;
    // Only node 0 is a manager that reads Docker; without periodic checks, what reaches the
    // workers is what node 0's nudge after each change makes them merge.
    let mut manager = cluster.flowproxy(0);
    for arg in [
        "--discovery",
        "docker",
        "--docker-poll-interval",
        "1",
        NO_PERIODIC_SYNC[0],
        NO_PERIODIC_SYNC[1],
    ] {
        manager = manager.arg(arg);
    }
    manager = manager
        .arg("--docker-socket")
        .arg(docker.socket().to_string_lossy());
    cluster.start(0, manager)?;
    cluster.start_all(&[1, 2], &NO_PERIODIC_SYNC)?;
    cluster.wait_ready(0)?;
    converged(&cluster, &[0, 1, 2], &["labelled"])?;

    // The Swarm service goes: node 0 removes it (a tombstone) and the workers merge that.
    docker.set_services(Vec::new());
    docker.emit("remove", "labelled");
    converged(&cluster, &[0, 1, 2], &[])?;
    Ok(())
}

//! Proxy replicas as a Swarm service runs them (`ProxyCluster`: one namespace per node on a
//! shared LAN, Docker's DNS on each node's 127.0.0.11 answering `tasks.proxy`): a distributed
//! change reaches every replica and a dead one is reported, a new replica takes the whole
//! configuration before it reports ready, diverged replicas converge, and LISTENER_ADDRESS
//! services are configured at start.
use std::time::Duration;

use anyhow::ensure;
use flowproxy_tests::{ProxyCluster, StubServer, TestCa, eventually, proxy::temp_state_dir};

const TOKEN: &str = "cluster-s3cret";
const GO_DEMO: &str = "serviceName=go-demo&servicePath=/demo&port=8080";
/// Long enough that only a bootstrap or a distributed call can have moved a configuration.
const NO_PERIODIC_SYNC: [&str; 2] = ["--peer-sync-interval", "3600"];
const CONVERGE: Duration = Duration::from_secs(30);

/// Uploads a certificate for shop.example.com to replica `node`, distributed.
fn put_shop_certificate(cluster: &ProxyCluster, node: usize) -> anyhow::Result<()> {
    let ca = TestCa::new()?;
    let bundle = temp_state_dir().with_extension("pem");
    std::fs::write(&bundle, ca.issue(&["shop.example.com"])?.bundle)?;
    let upload = format!("@{}", bundle.display());
    let put = cluster.api_with(
        node,
        "/v1/docker-flow-proxy/cert?certName=shop&distribute=true",
        &["-X", "PUT", "--data-binary", &upload],
    );
    std::fs::remove_file(&bundle)?;
    let put = put?;
    ensure!(put.status == 200, "certificate upload: {}", put.body);
    Ok(())
}

fn json(body: &str) -> anyhow::Result<serde_json::Value> {
    serde_json::from_str(body).map_err(|e| anyhow::anyhow!("not JSON ({e}): {body}"))
}

#[test]
fn distribute_reaches_every_replica_and_a_dead_one_is_reported() -> anyhow::Result<()> {
    let mut cluster = ProxyCluster::new(Some(TOKEN))?;
    for _ in 0..3 {
        cluster.add_node()?;
    }
    cluster.publish_tasks(&[0, 1, 2])?;
    cluster.start_all(&[0, 1, 2], &NO_PERIODIC_SYNC)?;

    // The token travels to the peers (they all require it).
    let reply = cluster.api(
        0,
        &format!("/v1/docker-flow-proxy/reconfigure?{GO_DEMO}&distribute=true"),
    )?;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let body = json(&reply.body)?;
    assert_eq!(body["Message"], "Distributed to all instances");
    assert_eq!(body["ServiceName"], "go-demo");
    let peers = body["Peers"].as_array().expect("Peers listed");
    assert_eq!(peers.len(), 2, "{body}");
    assert!(peers.iter().all(|p| p["Status"] == "OK"), "{body}");
    for node in 0..3 {
        assert_eq!(cluster.services(node)?, ["go-demo"], "node {node}");
    }
    let hash = cluster.config_hash(0)?;
    for node in 1..3 {
        assert_eq!(cluster.config_hash(node)?, hash, "node {node} differs");
    }

    // A certificate is distributed too.
    put_shop_certificate(&cluster, 0)?;
    for node in 1..3 {
        let certs = cluster.api(node, "/v1/docker-flow-proxy/certs")?.body;
        assert!(certs.contains("shop.example.com"), "node {node}: {certs}");
    }

    // Remove, distributed.
    let removed = cluster.api(
        1,
        "/v1/docker-flow-proxy/remove?serviceName=go-demo&distribute=true",
    )?;
    assert_eq!(removed.status, 200, "{}", removed.body);
    for node in 0..3 {
        assert!(cluster.services(node)?.is_empty(), "node {node}");
    }

    // Node 2 dies; DNS still lists it, as Swarm's does for a moment.
    cluster.nodes[2].proxy.as_mut().expect("started").kill9()?;
    let dead = cluster.nodes[2].addr;
    let reply = cluster.api(
        0,
        &format!("/v1/docker-flow-proxy/reconfigure?{GO_DEMO}&distribute=true"),
    )?;
    assert_eq!(reply.status, 500, "{}", reply.body);
    let body = json(&reply.body)?;
    assert_eq!(body["Status"], "NOK");
    let message = body["Message"].as_str().unwrap_or_default();
    assert!(
        message.contains(&format!("{dead}:8080")),
        "the dead peer is named: {message}"
    );
    assert!(message.contains("1 of 2"), "the others got it: {message}");
    assert_eq!(cluster.services(1)?, ["go-demo"], "the live peer has it");
    assert_eq!(cluster.services(0)?, ["go-demo"], "applied here too");
    Ok(())
}

#[test]
fn a_new_replica_has_the_whole_configuration_before_ping_says_ready() -> anyhow::Result<()> {
    let mut cluster = ProxyCluster::new(None)?;
    for _ in 0..4 {
        cluster.add_node()?;
    }
    cluster.publish_tasks(&[0, 1, 2])?;
    cluster.start_all(&[0, 1, 2], &NO_PERIODIC_SYNC)?;
    for query in [
        GO_DEMO,
        "serviceName=shop&servicePath=/shop&port=8081",
        "serviceName=api&serviceDomain=api.example.com&port=9000",
    ] {
        let reply = cluster.api(
            1,
            &format!("/v1/docker-flow-proxy/reconfigure?{query}&distribute=true"),
        )?;
        assert_eq!(reply.status, 200, "{}", reply.body);
    }
    put_shop_certificate(&cluster, 2)?;
    let expected_hash = cluster.config_hash(0)?;

    // A fourth replica is scheduled: it appears in tasks.proxy and starts empty.
    cluster.publish_tasks(&[0, 1, 2, 3])?;
    let proxy = cluster
        .flowproxy(3)
        .arg(NO_PERIODIC_SYNC[0])
        .arg(NO_PERIODIC_SYNC[1]);
    cluster.start(3, proxy)?;
    // The first 200 from ping: whatever it has now, it had when it said it was ready.
    cluster.wait_ready(3)?;
    let mut services = cluster.services(3)?;
    services.sort();
    assert_eq!(services, ["api", "go-demo", "shop"]);
    assert_eq!(cluster.config_hash(3)?, expected_hash);
    let certs = cluster.api(3, "/v1/docker-flow-proxy/certs")?.body;
    assert!(certs.contains("shop.example.com"), "{certs}");
    assert!(
        cluster.log(3).contains("entries merged from a peer"),
        "{}",
        cluster.log(3)
    );
    Ok(())
}

#[test]
fn ping_answers_503_until_the_peers_configuration_arrives() -> anyhow::Result<()> {
    let mut cluster = ProxyCluster::new(None)?;
    let source = cluster.add_node()?;
    let newcomer = cluster.add_node()?;
    // A real replica makes the configuration the fake peer will serve.
    cluster.publish_tasks(&[source])?;
    cluster.start_all(&[source], &[])?;
    let reply = cluster.api(
        source,
        "/v1/docker-flow-proxy/reconfigure?serviceName=from-peer&servicePath=/peer&port=80",
    )?;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let exported = cluster.api(source, "/v1/flowproxy/config")?.body;
    cluster.nodes[source].proxy = None;

    // The peer holds its answer: the newcomer cannot be ready.
    let (peer_host, peer_addr) = cluster.add_plain_host("slow-peer")?;
    let peer = StubServer::start(&peer_host, 8080)?;
    peer.route("/v1/flowproxy/config", 200, &exported);
    peer.hold();
    cluster.publish("tasks.proxy", &[cluster.nodes[newcomer].addr, peer_addr])?;
    let proxy = cluster
        .flowproxy(newcomer)
        .arg("--bootstrap-timeout")
        .arg("600");
    cluster.start(newcomer, proxy)?;
    eventually(CONVERGE, || {
        ensure!(!peer.requests().is_empty(), "the peer was not asked yet");
        Ok(())
    })?;
    for _ in 0..3 {
        let ping = cluster.api(newcomer, "/v1/docker-flow-proxy/ping")?;
        assert_eq!(ping.status, 503, "{}", ping.body);
        assert!(ping.body.contains("peer"), "{}", ping.body);
    }
    let health = cluster.api(newcomer, "/v1/docker-flow-proxy/successfulinitreload")?;
    assert_eq!(health.status, 500);
    // A change now would be newer than the peers' whole configuration: it is refused.
    let early = cluster.api(
        newcomer,
        &format!("/v1/docker-flow-proxy/reconfigure?{GO_DEMO}"),
    )?;
    assert_eq!(early.status, 503, "{}", early.body);

    peer.release();
    cluster.wait_ready(newcomer)?;
    assert_eq!(cluster.services(newcomer)?, ["from-peer"]);
    let exported: serde_json::Value = json(&exported)?;
    assert_eq!(
        cluster.config_hash(newcomer)?,
        exported["Version"]["Digest"].as_str().unwrap_or_default()
    );
    Ok(())
}

#[test]
fn without_an_answering_peer_a_replica_serves_its_saved_configuration() -> anyhow::Result<()> {
    let mut cluster = ProxyCluster::new(None)?;
    let node = cluster.add_node()?;
    let state = temp_state_dir();
    cluster.publish_tasks(&[node])?;
    cluster.start(node, cluster.flowproxy(node).state_dir(&state))?;
    cluster.wait_ready(node)?;
    let reply = cluster.api(
        node,
        "/v1/docker-flow-proxy/reconfigure?serviceName=saved&servicePath=/saved&port=80",
    )?;
    assert_eq!(reply.status, 200, "{}", reply.body);
    cluster.nodes[node].proxy = None;

    // Restarted beside a peer that never answers.
    let (peer_host, peer_addr) = cluster.add_plain_host("mute-peer")?;
    let peer = StubServer::start(&peer_host, 8080)?;
    peer.hold();
    cluster.publish("tasks.proxy", &[cluster.nodes[node].addr, peer_addr])?;
    let proxy = cluster
        .flowproxy(node)
        .state_dir(&state)
        .arg("--bootstrap-timeout")
        .arg("2")
        .arg("--peer-timeout")
        .arg("1");
    cluster.start(node, proxy)?;
    cluster.wait_ready(node)?;
    assert_eq!(cluster.services(node)?, ["saved"]);
    assert!(
        cluster.log(node).contains("no peer replica answered"),
        "{}",
        cluster.log(node)
    );
    drop(peer);
    cluster.nodes[node].proxy = None;
    std::fs::remove_dir_all(&state)?;
    Ok(())
}

#[test]
fn diverged_replicas_converge_on_the_newest_configuration() -> anyhow::Result<()> {
    let mut cluster = ProxyCluster::new(None)?;
    for _ in 0..3 {
        cluster.add_node()?;
    }
    cluster.publish_tasks(&[0, 1, 2])?;
    cluster.start_all(&[0, 1, 2], &["--peer-sync-interval", "1"])?;
    let converged = |cluster: &ProxyCluster, expected: &[&str]| {
        eventually(CONVERGE, || {
            for node in 0..3 {
                let services = cluster.services(node)?;
                ensure!(
                    services == expected,
                    "node {node} has {services:?}, expected {expected:?}"
                );
            }
            let hash = cluster.config_hash(0)?;
            for node in 1..3 {
                ensure!(
                    cluster.config_hash(node)? == hash,
                    "node {node}'s hash differs"
                );
            }
            Ok(())
        })
    };

    // A change made on one replica only (no distribute) is the newest: the others take it.
    let reply = cluster.api(1, &format!("/v1/docker-flow-proxy/reconfigure?{GO_DEMO}"))?;
    assert_eq!(reply.status, 200, "{}", reply.body);
    converged(&cluster, &["go-demo"])?;
    assert!(
        cluster.log(0).contains("entries merged from a peer"),
        "{}",
        cluster.log(0)
    );

    // A later removal on another replica wins in turn.
    let reply = cluster.api(2, "/v1/docker-flow-proxy/remove?serviceName=go-demo")?;
    assert_eq!(reply.status, 200, "{}", reply.body);
    converged(&cluster, &[])?;

    // The peers endpoint shows every replica in sync.
    let peers = json(&cluster.api(0, "/v1/flowproxy/peers")?.body)?;
    let rows = peers["Peers"].as_array().expect("Peers listed");
    assert_eq!(rows.len(), 2, "{peers}");
    assert!(rows.iter().all(|r| r["InSync"] == true), "{peers}");
    Ok(())
}

#[test]
fn listener_address_services_are_configured_once_the_listener_answers() -> anyhow::Result<()> {
    let mut cluster = ProxyCluster::new(None)?;
    let node = cluster.add_node()?;
    let (listener_host, listener_addr) = cluster.add_plain_host("swarm-listener")?;
    cluster.publish_tasks(&[node])?;
    cluster.publish("swarm-listener", &[listener_addr])?;
    let proxy = cluster
        .flowproxy(node)
        .arg("--listener-address")
        .arg("swarm-listener");
    cluster.start(node, proxy)?;
    cluster.wait_ready(node)?;
    // Nothing listens yet: the proxy keeps trying.
    eventually(CONVERGE, || {
        ensure!(
            cluster
                .log(node)
                .contains("the Swarm Listener did not answer yet"),
            "no retry logged yet"
        );
        Ok(())
    })?;
    let health = cluster.api(node, "/v1/docker-flow-proxy/successfulinitreload")?;
    assert_eq!(health.status, 500, "{}", health.body);
    let reload = cluster.api(node, "/v1/docker-flow-proxy/reload?fromListener=true")?;
    assert_eq!(reload.status, 500, "nobody to ask yet: {}", reload.body);
    assert!(
        reload.body.contains("swarm-listener:8080"),
        "{}",
        reload.body
    );

    let listener = StubServer::start(&listener_host, 8080)?;
    listener.route(
        "/v1/docker-flow-swarm-listener/get-services",
        200,
        r#"[{"serviceName":"go-demo","servicePath":"/demo","port":"8080","distribute":"true","replicas":"3"},
            {"serviceName":"broken","servicePath":"/broken"},
            {"serviceName":"shop","servicePath":"/shop","port":"8081"}]"#,
    );
    eventually(CONVERGE, || {
        let health = cluster.api(node, "/v1/docker-flow-proxy/successfulinitreload")?;
        ensure!(
            health.status == 200,
            "successfulinitreload: {}",
            health.status
        );
        Ok(())
    })?;
    let mut services = cluster.services(node)?;
    services.sort();
    assert_eq!(services, ["go-demo", "shop"], "the broken entry is skipped");
    let log = cluster.log(node);
    assert!(
        log.contains("broken") && log.contains("port"),
        "the refusal names the service and the parameter:\n{log}"
    );
    assert!(listener.requests()[0].starts_with("GET /v1/docker-flow-swarm-listener/get-services"));

    // reload?fromListener=true asks the listener to send every service again.
    let notify = "/v1/docker-flow-swarm-listener/notify-services";
    listener.route(notify, 200, r#"{"Status":"OK"}"#);
    let reload = cluster.api(node, "/v1/docker-flow-proxy/reload?fromListener=true")?;
    assert_eq!(reload.status, 200, "{}", reload.body);
    assert!(
        reload.body.contains("swarm-listener:8080"),
        "{}",
        reload.body
    );
    assert!(
        listener
            .requests()
            .iter()
            .any(|r| r.starts_with(&format!("GET {notify}"))),
        "{:?}",
        listener.requests()
    );
    // A listener that refuses is reported, not answered OK.
    listener.route(notify, 503, "busy");
    let reload = cluster.api(node, "/v1/docker-flow-proxy/reload?fromListener=true")?;
    assert_eq!(reload.status, 500, "{}", reload.body);
    assert!(reload.body.contains("503"), "{}", reload.body);
    Ok(())
}

#[test]
fn sync_pulls_a_newer_configuration_without_waiting_for_the_periodic_check() -> anyhow::Result<()> {
    let mut cluster = ProxyCluster::new(None)?;
    for _ in 0..2 {
        cluster.add_node()?;
    }
    cluster.publish_tasks(&[0, 1])?;
    cluster.start_all(&[0, 1], &NO_PERIODIC_SYNC)?;
    let reply = cluster.api(0, &format!("/v1/docker-flow-proxy/reconfigure?{GO_DEMO}"))?;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(cluster.services(1)?.is_empty(), "not distributed");

    let sync = cluster.api_with(1, "/v1/flowproxy/sync", &["-X", "POST"])?;
    assert_eq!(sync.status, 200, "{}", sync.body);
    let message = json(&sync.body)?["Message"].to_string();
    assert!(
        message.contains(&format!("merged from {}:8080", cluster.nodes[0].addr)),
        "{message}"
    );
    assert_eq!(cluster.services(1)?, ["go-demo"]);
    assert_eq!(cluster.config_hash(1)?, cluster.config_hash(0)?);
    Ok(())
}

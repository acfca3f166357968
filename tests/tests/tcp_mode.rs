//! TCP-mode services (`reqMode=tcp&srcPort=N`): a listener on srcPort relays connections to the
//! replicas in user space, follows reconfigures and removals, refuses a port that is taken, and
//! comes back after a restart.
use std::{collections::BTreeSet, net::TcpListener, time::Duration};

use anyhow::ensure;
use flowproxy_tests::{GoDemo, RunningProxy, curl, eventually, proxy::temp_state_dir};

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn proxy_for(demo: &GoDemo, state: Option<&std::path::Path>) -> anyhow::Result<RunningProxy> {
    let mut proxy = demo.flowproxy().arg("--no-ebpf");
    if let Some(dir) = state {
        proxy = proxy.state_dir(dir);
    }
    proxy.start()
}

fn tcp_service(port: u16) -> String {
    format!(
        "/v1/docker-flow-proxy/reconfigure?serviceName=go-demo&reqMode=tcp&srcPort={port}&port=8080"
    )
}

#[test]
fn connections_to_src_port_reach_every_replica() -> anyhow::Result<()> {
    let demo = GoDemo::start(2)?;
    let proxy = proxy_for(&demo, None)?;
    let port = free_port()?;
    let answer = proxy.api(&tcp_service(port))?;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let config = proxy.api("/v1/docker-flow-proxy/config")?.body;
    assert!(
        config.contains(&format!("frontend tcpFE_{port}")),
        "{config}"
    );

    let mut seen = BTreeSet::new();
    for _ in 0..10 {
        // curl opens a new connection each time: each is relayed to the next replica.
        let resp = curl(&[&format!("http://127.0.0.1:{port}/demo/who")])?;
        assert_eq!(resp.status, 200, "{}", resp.body);
        seen.insert(resp.body.trim().to_owned());
    }
    assert_eq!(seen.len(), 2, "{seen:?}");
    let metrics = proxy.api("/metrics")?.body;
    assert!(
        metrics.contains("flowproxy_l4_connections_total 10"),
        "{metrics}"
    );
    Ok(())
}

#[test]
fn a_taken_src_port_refuses_the_change_and_changes_nothing() -> anyhow::Result<()> {
    let demo = GoDemo::start(1)?;
    let proxy = proxy_for(&demo, None)?;
    let taken = TcpListener::bind("127.0.0.1:0")?;
    let port = taken.local_addr()?.port();
    let before = proxy.api("/v1/docker-flow-proxy/config?type=json")?.body;
    let answer = proxy.api(&tcp_service(port))?;
    assert_eq!(answer.status, 409, "{}", answer.body);
    assert!(
        answer.body.contains(&format!("srcPort {port}")),
        "{}",
        answer.body
    );
    assert_eq!(
        proxy.api("/v1/docker-flow-proxy/config?type=json")?.body,
        before
    );
    Ok(())
}

#[test]
fn removing_the_service_closes_its_port() -> anyhow::Result<()> {
    let demo = GoDemo::start(1)?;
    let proxy = proxy_for(&demo, None)?;
    let port = free_port()?;
    assert_eq!(proxy.api(&tcp_service(port))?.status, 200);
    assert_eq!(
        curl(&[&format!("http://127.0.0.1:{port}/demo/hello")])?.status,
        200
    );
    assert_eq!(
        proxy
            .api("/v1/docker-flow-proxy/remove?serviceName=go-demo")?
            .status,
        200
    );
    eventually(Duration::from_secs(5), || {
        ensure!(
            std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
            "port {port} still accepts connections"
        );
        Ok(())
    })
}

#[test]
fn a_tcp_service_is_served_again_after_a_restart() -> anyhow::Result<()> {
    let demo = GoDemo::start(1)?;
    let state = temp_state_dir();
    let port = free_port()?;
    let mut first = proxy_for(&demo, Some(&state))?;
    assert_eq!(first.api(&tcp_service(port))?.status, 200);
    assert!(first.terminate()?.success());
    let second = proxy_for(&demo, Some(&state))?;
    let resp = curl(&[&format!("http://127.0.0.1:{port}/demo/hello")])?;
    assert_eq!(resp.body, "hello, world!\n");
    drop(second);
    std::fs::remove_dir_all(&state)?;
    Ok(())
}

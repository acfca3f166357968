//! The harness's own pieces work against the real thing: a demo replica answers curl, the
//! pooled client and WebSockets, and dnsmasq answers what a test sets.
use std::net::Ipv4Addr;

use flowproxy_tests::{DemoBackend, Dns, Host, HttpClient, curl, ws_echo};

#[test]
fn a_demo_replica_in_a_host_answers_curl_the_pooled_client_and_websockets() -> anyhow::Result<()> {
    let server = Host::new("server")?;
    let link = server.link_to_root()?;
    let backend = DemoBackend::start(&server, &link, "go-demo.1", 8080)?;
    let base = format!("http://{}", backend.addr());

    let hello = curl(&[&format!("{base}/demo/hello")])?;
    assert_eq!(hello.status, 200);
    assert_eq!(hello.body, "hello, world!\n");
    assert_eq!(
        hello.header("content-type"),
        Some("text/plain; charset=utf-8")
    );

    let h2 = curl(&["--http2-prior-knowledge", &format!("{base}/demo/who")])?;
    assert_eq!((h2.status, h2.body.as_str()), (200, "go-demo.1\n"));

    let client = HttpClient::new()?;
    for _ in 0..20 {
        assert_eq!(
            client.get(&format!("{base}/demo/hello"))?,
            (200, "hello, world!\n".to_owned())
        );
    }
    assert_eq!(client.get(&format!("{base}/nope"))?.0, 404);

    let ws_url = format!("ws://{}/demo/ws", backend.addr());
    assert_eq!(
        ws_echo(&ws_url, "ping over flowproxy")?,
        "ping over flowproxy"
    );

    // The WebSocket handshake is logged too; it is counted with the rest.
    assert_eq!(
        backend.request_count(),
        1 + 1 + 20 + 1 + 1,
        "{}",
        backend.log()
    );
    Ok(())
}

#[test]
fn a_killed_replica_stops_accepting() -> anyhow::Result<()> {
    let server = Host::new("server")?;
    let link = server.link_to_root()?;
    let mut backend = DemoBackend::start(&server, &link, "go-demo.2", 8080)?;
    let url = format!("http://{}/demo/hello", backend.addr());
    assert_eq!(curl(&[&url])?.status, 200);

    backend.kill();

    let refused = curl(&["--max-time", "2", &url]).expect_err("a killed replica answered");
    assert!(
        format!("{refused:#}").contains("onnect"),
        "expected a refused connection: {refused:#}"
    );
    Ok(())
}

#[test]
fn dns_answers_the_tasks_of_a_service_as_they_change() -> anyhow::Result<()> {
    let dns = Dns::start()?;
    let (a, b) = (Ipv4Addr::new(198, 18, 7, 2), Ipv4Addr::new(198, 18, 7, 6));

    dns.set("tasks.go-demo", &[a, b])?;
    dns.set("go-demo", &[Ipv4Addr::new(198, 18, 7, 10)])?;
    let mut both = dns.lookup("tasks.go-demo")?;
    both.sort();
    assert_eq!(both, [a, b]);

    dns.set("tasks.go-demo", &[b])?;
    assert_eq!(dns.lookup("tasks.go-demo")?, [b]);
    assert_eq!(
        dns.lookup("go-demo")?,
        [Ipv4Addr::new(198, 18, 7, 10)],
        "other names are kept"
    );

    dns.remove("tasks.go-demo")?;
    assert!(dns.lookup("tasks.go-demo")?.is_empty());
    assert!(dns.lookup("unknown.service")?.is_empty());
    Ok(())
}

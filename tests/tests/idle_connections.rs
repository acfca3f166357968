//! Idle keep-alive connections are parked (issue 16, step 3): taken back from hyper with no
//! buffer held, and served again by their next bytes with nothing lost. Parked connections
//! show in `flowproxy_parked_connections` and still end at the keep-alive timeout. TLS
//! connections park the same way.
use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};
use flowproxy_tests::{
    GoDemo, RawClient, RunningProxy, TestCa, TlsClient, eventually, go_demo::RECONFIGURE,
    proxy::TempDir,
};

fn go_demo(extra: &[&str]) -> anyhow::Result<(GoDemo, RunningProxy)> {
    let demo = GoDemo::start(1)?;
    let mut builder = demo.flowproxy().arg("--no-ebpf");
    for arg in extra {
        builder = builder.arg(*arg);
    }
    let proxy = builder.start()?;
    let resp = proxy.api(&format!("/v1/docker-flow-proxy/reconfigure?{RECONFIGURE}"))?;
    ensure!(
        resp.status == 200,
        "reconfigure: {} {}",
        resp.status,
        resp.body
    );
    Ok((demo, proxy))
}

fn parked(proxy: &RunningProxy) -> anyhow::Result<u64> {
    gauge(proxy, "flowproxy_parked_connections")
}

/// An unlabelled gauge's value: `name value` on a line of its own.
fn gauge(proxy: &RunningProxy, name: &str) -> anyhow::Result<u64> {
    let scrape = proxy.api("/metrics")?;
    scrape
        .body
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map(|v| v as u64)
        .with_context(|| format!("no {name} in the scrape"))
}

fn get(client: &mut RawClient, path: &str) -> anyhow::Result<String> {
    client.send(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())?;
    let resp = client.response(Duration::from_secs(5))?;
    ensure!(resp.status == 200, "GET {path}: {}", resp.status);
    Ok(resp.body)
}

#[test]
fn idle_connections_are_parked_and_serve_their_next_requests() -> anyhow::Result<()> {
    let (_demo, proxy) = go_demo(&[])?;
    let mut clients = (0..5)
        .map(|_| RawClient::connect(proxy.http_addr))
        .collect::<anyhow::Result<Vec<_>>>()?;
    for client in &mut clients {
        get(client, "/demo/hello")?;
    }
    eventually(Duration::from_secs(3), || {
        let n = parked(&proxy)?;
        ensure!(n == 5, "{n} of 5 idle connections parked");
        Ok(())
    })?;
    // Each parked connection serves again, on the same socket, and parks again.
    for client in &mut clients {
        let body = get(client, "/demo/hello")?;
        ensure!(body.contains("hello"), "{body}");
    }
    // Two requests in one write to a parked connection: both answered, in order.
    std::thread::sleep(Duration::from_millis(600));
    let pair =
        "GET /demo/hello HTTP/1.1\r\nHost: x\r\n\r\nGET /demo/who HTTP/1.1\r\nHost: x\r\n\r\n";
    clients[0].send(pair.as_bytes())?;
    ensure!(clients[0].response(Duration::from_secs(5))?.status == 200);
    ensure!(clients[0].response(Duration::from_secs(5))?.status == 200);
    // A head split by a pause longer than the parking delay is not cut or lost.
    clients[1].send(b"GET /demo/hello HT")?;
    std::thread::sleep(Duration::from_millis(600));
    clients[1].send(b"TP/1.1\r\nHost: x\r\n\r\n")?;
    ensure!(clients[1].response(Duration::from_secs(5))?.status == 200);
    eventually(Duration::from_secs(3), || {
        let n = parked(&proxy)?;
        ensure!(n == 5, "{n} of 5 idle connections parked again");
        Ok(())
    })?;
    drop(clients);
    eventually(Duration::from_secs(3), || {
        let n = parked(&proxy)?;
        ensure!(n == 0, "{n} closed connections still counted as parked");
        Ok(())
    })
}

/// Nothing is parked while a request is with its handler or its response is still being
/// sent, though the connection shows no I/O meanwhile: responses keep their keep-alive and the
/// connection serves on.
#[test]
fn busy_connections_are_not_parked() -> anyhow::Result<()> {
    let (_demo, proxy) = go_demo(&[])?;
    let mut client = RawClient::connect(proxy.http_addr)?;
    // A body that pauses 900 ms after its first part, long after the head was written.
    client.send(b"GET /demo/drip?ms=900 HTTP/1.1\r\nHost: x\r\n\r\n")?;
    let drip = client.response(Duration::from_secs(5))?;
    ensure!(drip.status == 200, "drip: {}", drip.status);
    ensure!(
        drip.body == "drip\ndrop\n",
        "the paused body arrived as {:?}",
        drip.body
    );
    ensure!(!closes(&drip.headers), "drip: {:?}", drip.headers);
    // A pipelined request whose handler takes 900 ms, behind one answered at once.
    client.send(
        b"GET /demo/hello HTTP/1.1\r\nHost: x\r\n\r\nGET /demo/slow?ms=900 HTTP/1.1\r\nHost: x\r\n\r\n",
    )?;
    for _ in 0..2 {
        let resp = client.response(Duration::from_secs(5))?;
        ensure!(resp.status == 200, "pipelined: {}", resp.status);
        ensure!(!closes(&resp.headers), "pipelined: {:?}", resp.headers);
    }
    get(&mut client, "/demo/hello").context("the connection after them")?;
    Ok(())
}

/// Whether a response's headers close the connection.
fn closes(headers: &[(String, String)]) -> bool {
    headers
        .iter()
        .any(|(name, value)| name == "connection" && value.to_ascii_lowercase().contains("close"))
}

#[test]
fn a_parked_connection_still_ends_at_the_keep_alive_timeout() -> anyhow::Result<()> {
    let (_demo, proxy) = go_demo(&["--timeout-http-keep-alive", "2"])?;
    let mut client = RawClient::connect(proxy.http_addr)?;
    get(&mut client, "/demo/hello")?;
    let answered = Instant::now();
    eventually(Duration::from_secs(2), || {
        ensure!(parked(&proxy)? == 1, "the idle connection is not parked");
        Ok(())
    })?;
    ensure!(
        gauge(&proxy, "flowproxy_open_connections")? == 1,
        "a parked connection is still an open one"
    );
    client
        .closed_within(Duration::from_secs(4))
        .context("a parked connection outlived the keep-alive timeout")?;
    let idle = answered.elapsed();
    ensure!(
        idle >= Duration::from_millis(1800),
        "closed after {idle:?}, before the 2 s keep-alive timeout"
    );
    ensure!(parked(&proxy)? == 0, "a closed connection is still counted");
    ensure!(
        gauge(&proxy, "flowproxy_open_connections")? == 0,
        "a connection closed while parked is still counted as open"
    );
    Ok(())
}

/// The go-demo proxy with a 3 s keep-alive and a certificate for `a.example.com`, and a TLS
/// client connected to it (the certificates' directory lives as long as the proxy needs it).
fn tls_go_demo() -> anyhow::Result<(GoDemo, RunningProxy, TlsClient, TempDir)> {
    let ca = TestCa::new()?;
    let certs = TempDir::new("certs")?;
    std::fs::write(certs.0.join("a.pem"), ca.issue(&["a.example.com"])?.bundle)?;
    let dir = certs.0.to_string_lossy().into_owned();
    let (demo, proxy) = go_demo(&["--certs-dir", &dir, "--timeout-http-keep-alive", "3"])?;
    let client = TlsClient::connect(proxy.https_addr, "a.example.com", &ca)?;
    Ok((demo, proxy, client, certs))
}

/// Waits until the one TLS connection is parked.
fn tls_parked(proxy: &RunningProxy) -> anyhow::Result<()> {
    eventually(Duration::from_secs(2), || {
        ensure!(parked(proxy)? == 1, "the idle TLS connection is not parked");
        Ok(())
    })
}

/// An idle TLS keep-alive connection parks like a plain one: it serves its next requests on
/// the same TLS session, is counted while parked, and still ends at the keep-alive timeout,
/// with a close_notify.
#[test]
fn idle_tls_connections_are_parked_too() -> anyhow::Result<()> {
    let (_demo, proxy, mut client, _certs) = tls_go_demo()?;
    let mut answered = Instant::now();
    for round in 1..=3 {
        let (status, body) = client.get("/demo/hello")?;
        answered = Instant::now();
        ensure!(
            (status, body.as_str()) == (200, "hello, world!\n"),
            "request {round}: {status} {body:?}"
        );
        tls_parked(&proxy).with_context(|| format!("after request {round}"))?;
    }
    client
        .closed_with_notify_within(Duration::from_secs(6))
        .context("a parked TLS connection did not end cleanly at the keep-alive timeout")?;
    // Parked 250–500 ms after its answer, for the keep-alive timeout less those 250 ms.
    let idle = answered.elapsed();
    ensure!(
        idle >= Duration::from_millis(2800),
        "closed {idle:?} after its last answer, before the 3 s keep-alive timeout"
    );
    eventually(Duration::from_secs(2), || {
        ensure!(
            parked(&proxy)? == 0,
            "a closed TLS connection is still counted"
        );
        ensure!(
            gauge(&proxy, "flowproxy_open_connections")? == 0,
            "a TLS connection closed while parked is still counted as open"
        );
        Ok(())
    })
}

/// Bytes that carry no request (here a TLS key update) wake a parked connection, which finds
/// nothing to serve and parks again with the deadline it had: only an exchange restarts the
/// keep-alive timeout, so a client cannot hold a connection open by trickling such bytes.
#[test]
fn a_wake_up_without_a_request_keeps_the_keep_alive_deadline() -> anyhow::Result<()> {
    let (_demo, proxy, mut client, _certs) = tls_go_demo()?;
    ensure!(client.get("/demo/hello")?.0 == 200);
    let answered = Instant::now();
    tls_parked(&proxy)?;
    std::thread::sleep(Duration::from_millis(1500).saturating_sub(answered.elapsed()));
    client.send_key_update()?;
    client
        .closed_with_notify_within(Duration::from_secs(6))
        .context("the connection did not end cleanly")?;
    // The original deadline: 3 s after the answer (plus up to 250 ms before the park). A
    // deadline restarted by the key update would end it after about 4.5 s.
    let idle = answered.elapsed();
    ensure!(
        idle >= Duration::from_millis(2800) && idle < Duration::from_millis(4000),
        "closed {idle:?} after its answer, not at the 3 s keep-alive timeout"
    );
    Ok(())
}

//! Hostile clients (issue 14, L7): silent sockets, half a preface, idle TLS, stalled uploads,
//! oversized heads, ambiguous hosts, h2c smuggling and broken chunked framing. Each test writes
//! the bytes by hand and checks what the client gets, what the replica saw, and the count in
//! `flowproxy_client_errors_total`. Timeouts are set to a second so the tests run fast.
use std::time::Duration;

use anyhow::ensure;
use flowproxy_tests::{
    Flowproxy, GoDemo, Host, RawClient, RunningProxy, StubServer, TlsClient, curl, eventually,
    go_demo::RECONFIGURE,
    h2c::{BodyEnd, h2c_request},
    raw::counter_value,
};

/// The timeouts every proxy here runs with.
const FIRST_BYTE: Duration = Duration::from_secs(1);
const BODY_IDLE: Duration = Duration::from_secs(1);
/// How long past a timeout a close may take and still count as on time.
const SLACK: Duration = Duration::from_secs(2);

fn proxy_for(demo: &GoDemo, extra: &[&str]) -> anyhow::Result<RunningProxy> {
    let mut proxy: Flowproxy = demo
        .flowproxy()
        .arg("--no-ebpf")
        .arg("--dns-refresh")
        .arg("1")
        .arg("--client-first-byte-timeout")
        .arg(FIRST_BYTE.as_secs().to_string())
        .arg("--timeout-client")
        .arg(BODY_IDLE.as_secs().to_string());
    for arg in extra {
        proxy = proxy.arg(*arg);
    }
    proxy.start()
}

fn reconfigure(proxy: &RunningProxy, query: &str) -> anyhow::Result<()> {
    let resp = proxy.api(&format!("/v1/docker-flow-proxy/reconfigure?{query}"))?;
    ensure!(
        resp.status == 200,
        "reconfigure: {} {}",
        resp.status,
        resp.body
    );
    Ok(())
}

/// A proxy in front of go-demo's `replicas`, routed by the article's reconfigure.
fn go_demo(replicas: usize, extra: &[&str]) -> anyhow::Result<(GoDemo, RunningProxy)> {
    let demo = GoDemo::start(replicas)?;
    let proxy = proxy_for(&demo, extra)?;
    reconfigure(&proxy, RECONFIGURE)?;
    Ok((demo, proxy))
}

fn client_errors(proxy: &RunningProxy, reason: &str) -> anyhow::Result<u64> {
    let scrape = proxy.api("/metrics")?;
    Ok(counter_value(
        &scrape.body,
        "flowproxy_client_errors_total",
        &format!("reason=\"{reason}\""),
    ))
}

/// Waits until the counter for `reason` reaches `at_least`.
fn counted(proxy: &RunningProxy, reason: &str, at_least: u64) -> anyhow::Result<()> {
    eventually(Duration::from_secs(5), || {
        let n = client_errors(proxy, reason)?;
        ensure!(n >= at_least, "{reason}: {n} < {at_least}");
        Ok(())
    })
}

/// Established TCP connections to go-demo's port inside the replica's `host`.
fn connections_to_replica(host: &Host) -> anyhow::Result<usize> {
    let out = host
        .command("ss")
        .args(["-Htn", "state", "established", "( sport = :8080 )"])
        .output()?;
    ensure!(
        out.status.success(),
        "ss: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).lines().count())
}

fn get(proxy: &RunningProxy, request: &str) -> anyhow::Result<flowproxy_tests::RawResponse> {
    let mut client = RawClient::connect(proxy.http_addr)?;
    client.send(request.as_bytes())?;
    client.response(Duration::from_secs(10))
}

#[test]
fn silent_sockets_are_closed_and_cannot_lock_out_other_clients() -> anyhow::Result<()> {
    let (_demo, proxy) = go_demo(1, &["--max-connections", "20"])?;
    // Twenty connections, every slot: half send nothing, half only part of the h2 preface.
    let mut silent = Vec::new();
    for i in 0..20 {
        let mut client = RawClient::connect(proxy.http_addr)?;
        if i % 2 == 1 {
            client.send(b"PRI * HTTP/2.0\r\n")?;
        }
        silent.push(client);
    }
    // A real client still gets through, once the silent ones are cut.
    let hello = get(&proxy, "GET /demo/hello HTTP/1.1\r\nHost: go-demo\r\n\r\n")?;
    assert_eq!(hello.status, 200, "{hello:?}");
    for client in &mut silent {
        let closed = client.closed_within(FIRST_BYTE + SLACK)?;
        assert!(
            closed >= FIRST_BYTE - Duration::from_millis(100),
            "{closed:?}"
        );
    }
    counted(&proxy, "timeout_first_byte", 20)?;
    Ok(())
}

#[test]
fn tls_connections_that_stay_silent_are_closed() -> anyhow::Result<()> {
    let (_demo, proxy) = go_demo(1, &[])?;
    // No handshake at all.
    let mut no_hello = RawClient::connect(proxy.https_addr)?;
    no_hello.closed_within(FIRST_BYTE + SLACK)?;
    counted(&proxy, "timeout_handshake", 1)?;
    // A handshake, then nothing.
    let mut idle = TlsClient::connect_any(proxy.https_addr, "localhost")?;
    let closed = idle.closed_within(FIRST_BYTE + SLACK)?;
    assert!(
        closed >= FIRST_BYTE - Duration::from_millis(100),
        "{closed:?}"
    );
    counted(&proxy, "timeout_first_byte", 1)?;
    // A TLS client that does ask is served.
    let mut client = TlsClient::connect_any(proxy.https_addr, "localhost")?;
    let (status, body) = client.get("/demo/hello")?;
    assert_eq!(status, 200, "{body}");
    Ok(())
}

#[test]
fn a_head_cut_short_is_closed_and_an_idle_keep_alive_is_no_client_error() -> anyhow::Result<()> {
    let head_timeout = Duration::from_secs(1);
    let (_demo, proxy) = go_demo(1, &["--client-head-timeout", "1"])?;
    let mut partial = RawClient::connect(proxy.http_addr)?;
    partial.send(b"GET /demo/hello HTTP/1.1\r\nHost: go")?;
    let closed = partial.closed_within(head_timeout + SLACK)?;
    assert!(
        closed >= head_timeout - Duration::from_millis(100),
        "{closed:?}"
    );
    counted(&proxy, "timeout_head", 1)?;
    // A whole request, then silence: closed by the same timer, but not counted.
    let mut idle = RawClient::connect(proxy.http_addr)?;
    idle.send(b"GET /demo/hello HTTP/1.1\r\nHost: go-demo\r\n\r\n")?;
    assert_eq!(idle.response(Duration::from_secs(5))?.status, 200);
    idle.closed_within(head_timeout + SLACK)?;
    assert_eq!(client_errors(&proxy, "timeout_head")?, 1);
    Ok(())
}

#[test]
fn a_stalled_upload_gets_408_and_the_replica_connection_is_cancelled() -> anyhow::Result<()> {
    let (demo, proxy) = go_demo(1, &[])?;
    let mut client = RawClient::connect(proxy.http_addr)?;
    client.send(
        b"POST /demo/echo HTTP/1.1\r\nHost: go-demo\r\nContent-Length: 1000000\r\n\r\n0123456789",
    )?;
    // The upload reached the replica: the proxy holds a connection to it.
    let replica = &demo.replicas[0];
    eventually(Duration::from_secs(5), || {
        let n = connections_to_replica(&replica.host)?;
        ensure!(n == 1, "{n} connections to the replica");
        Ok(())
    })?;
    let started = std::time::Instant::now();
    let answer = client.response(BODY_IDLE + SLACK)?;
    assert_eq!(answer.status, 408, "{answer:?}");
    assert!(answer.body.contains("--timeout-client"), "{}", answer.body);
    assert!(started.elapsed() >= BODY_IDLE - Duration::from_millis(100));
    client.closed_within(SLACK)?;
    counted(&proxy, "timeout_body", 1)?;
    // The same over HTTP/2: a stream whose body stops.
    let (status, body) = h2c_request(
        proxy.http_addr,
        "POST",
        &proxy.url("/demo/echo"),
        &[("content-length", "1000000")],
        b"0123456789",
        BodyEnd::Stall,
        BODY_IDLE + SLACK,
    )?;
    assert_eq!(status, 408, "{body}");
    counted(&proxy, "timeout_body", 2)?;
    // The upstream request was cancelled: its connection is gone, the replica never answered.
    eventually(Duration::from_secs(5), || {
        let n = connections_to_replica(&replica.host)?;
        ensure!(n == 0, "{n} connections to the replica");
        Ok(())
    })?;
    let log = replica.backend.log();
    assert!(!log.contains("POST /demo/echo 200"), "{log}");
    let hello = get(&proxy, "GET /demo/hello HTTP/1.1\r\nHost: go-demo\r\n\r\n")?;
    assert_eq!(hello.status, 200, "{hello:?}");
    Ok(())
}

#[test]
fn oversized_heads_get_431_naming_the_limit() -> anyhow::Result<()> {
    let (demo, proxy) = go_demo(1, &[])?;
    let request = |fields: &[(String, usize)]| {
        let mut r = String::from("GET /demo/hello HTTP/1.1\r\nHost: go-demo\r\n");
        for (name, size) in fields {
            r.push_str(&format!("{name}: {}\r\n", "a".repeat(*size)));
        }
        r + "\r\n"
    };
    // One value over 8 KiB, and a single 100 KB header.
    for size in [9_000, 100_000] {
        let answer = get(&proxy, &request(&[("x-big".into(), size)]))?;
        assert_eq!(answer.status, 431, "{size}: {}", answer.status_line);
        assert!(
            answer.body.contains("--max-header-value-bytes"),
            "{}",
            answer.body
        );
    }
    // 40 fields of 1000 bytes: each fine, the head over 32 KiB.
    let many: Vec<_> = (0..40).map(|i| (format!("x-h{i}"), 1000)).collect();
    let answer = get(&proxy, &request(&many))?;
    assert_eq!(answer.status, 431, "{}", answer.status_line);
    assert!(
        answer.body.contains("--max-header-bytes"),
        "{}",
        answer.body
    );
    // 380 KB of headers: hyper's own buffer limit answers 431 before closing.
    let huge: Vec<_> = (0..95).map(|i| (format!("x-h{i}"), 4000)).collect();
    let answer = get(&proxy, &request(&huge))?;
    assert_eq!(answer.status, 431, "{}", answer.status_line);
    // HTTP/2 the same way.
    let big = format!("x-big: {}", "a".repeat(9_000));
    let h2 = curl(&[
        "--http2-prior-knowledge",
        "-H",
        &big,
        &proxy.url("/demo/hello"),
    ])?;
    assert_eq!(h2.status, 431, "{}", h2.status_line);
    assert!(h2.body.contains("--max-header-value-bytes"), "{}", h2.body);
    // Far past the ceiling on HTTP/2 (95 fields of 4000 bytes): the h2 library refuses the
    // header block: with a 431, or by ending the connection (GOAWAY) when even buffering it
    // to answer would cost too much. Never a forwarded request.
    let file = std::env::temp_dir().join(format!("fp-{}-h2-headers", std::process::id()));
    let lines: Vec<String> = (0..95)
        .map(|i| format!("x-h{i}: {}", "a".repeat(4000)))
        .collect();
    std::fs::write(&file, lines.join("\n"))?;
    let header_file = format!("@{}", file.display());
    let huge_h2 = curl(&[
        "--http2-prior-knowledge",
        "-H",
        &header_file,
        &proxy.url("/demo/hello"),
    ]);
    let _ = std::fs::remove_file(&file);
    match huge_h2 {
        Ok(answer) => assert_eq!(answer.status, 431, "{}", answer.status_line),
        // curl: 56 (connection died), 16 (HTTP/2 framing), 92 (stream error).
        Err(e) => {
            let e = format!("{e:#}");
            assert!(
                ["(56)", "(16)", "(92)"].iter().any(|c| e.contains(c)),
                "{e}"
            );
        }
    }
    counted(&proxy, "header_too_large", 5)?;
    assert_eq!(
        demo.replicas[0].backend.request_count(),
        0,
        "nothing reached the replica"
    );
    // Within the limits, the same route answers.
    let ok = get(&proxy, &request(&[("x-fine".into(), 8_000)]))?;
    assert_eq!(ok.status, 200, "{}", ok.status_line);
    Ok(())
}

#[test]
fn host_rules_follow_rfc_9112() -> anyhow::Result<()> {
    let demo = GoDemo::start(1)?;
    let proxy = proxy_for(&demo, &[])?;
    reconfigure(&proxy, &format!("{RECONFIGURE}&serviceDomain=a.test"))?;
    let two = get(
        &proxy,
        "GET /demo/hello HTTP/1.1\r\nHost: a.test\r\nHost: b.test\r\n\r\n",
    )?;
    assert_eq!(two.status, 400, "{two:?}");
    assert!(two.body.contains("2 Host headers"), "{}", two.body);
    let none = get(&proxy, "GET /demo/hello HTTP/1.1\r\n\r\n")?;
    assert_eq!(none.status, 400, "{none:?}");
    counted(&proxy, "bad_host", 2)?;
    // Absolute form: the target's authority routes, and is the Host the replica sees.
    let absolute = get(
        &proxy,
        "GET http://a.test/demo/headers HTTP/1.1\r\nHost: b.test\r\n\r\n",
    )?;
    assert_eq!(absolute.status, 200, "{absolute:?}");
    assert!(
        absolute.body.contains("host: a.test\n"),
        "{}",
        absolute.body
    );
    assert!(!absolute.body.contains("b.test"), "{}", absolute.body);
    let other = get(&proxy, "GET /demo/hello HTTP/1.1\r\nHost: b.test\r\n\r\n")?;
    assert_eq!(other.status, 404, "{other:?}");
    // HTTP/2: `:authority` routes.
    let h2 = curl(&[
        "--http2-prior-knowledge",
        "-H",
        "Host: a.test",
        &proxy.url("/demo/headers"),
    ])?;
    assert_eq!(h2.status, 200, "{}", h2.body);
    assert!(h2.body.contains("host: a.test\n"), "{}", h2.body);
    // HTTP/2 with a Host that names another host than `:authority`.
    let (status, body) = h2c_request(
        proxy.http_addr,
        "GET",
        &format!("http://a.test:{}/demo/hello", proxy.http_addr.port()),
        &[("host", "b.test")],
        b"",
        BodyEnd::Complete,
        Duration::from_secs(10),
    )?;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("differs from :authority"), "{body}");
    Ok(())
}

#[test]
fn an_h2c_upgrade_is_dropped_and_the_request_goes_on() -> anyhow::Result<()> {
    let (_demo, proxy) = go_demo(1, &[])?;
    let answer = get(
        &proxy,
        "GET /demo/headers HTTP/1.1\r\nHost: go-demo\r\nConnection: Upgrade, HTTP2-Settings\r\n\
         Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n",
    )?;
    assert_eq!(answer.status, 200, "{answer:?}");
    let seen = answer.body.to_ascii_lowercase();
    for header in ["upgrade", "http2-settings", "connection"] {
        assert!(
            !seen.contains(&format!("{header}:")),
            "{header} reached the replica: {seen}"
        );
    }
    counted(&proxy, "upgrade_refused", 1)?;
    // WebSocket is still allowed.
    let ws = flowproxy_tests::ws_echo(&format!("ws://{}/demo/ws", proxy.http_addr), "hi")?;
    assert_eq!(ws, "hi");
    Ok(())
}

#[test]
fn a_replica_switching_to_h2c_opens_no_tunnel() -> anyhow::Result<()> {
    // A replica that answers 101 to anything, as one speaking h2c would to the upgrade.
    let demo = GoDemo::start(1)?;
    let host = Host::new("h2c-replica")?;
    let link = host.link_to_root()?;
    let replica = StubServer::start(&host, 8080)?;
    replica.route("/h2c", 101, "");
    demo.dns.set("tasks.h2c", &[link.host_addr])?;
    let proxy = proxy_for(&demo, &[])?;
    reconfigure(&proxy, "serviceName=h2c&servicePath=/h2c&port=8080")?;
    let answer = get(
        &proxy,
        "GET /h2c HTTP/1.1\r\nHost: h2c\r\nConnection: Upgrade, HTTP2-Settings\r\n\
         Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n",
    )?;
    assert_eq!(answer.status, 502, "{answer:?}");
    assert_eq!(answer.body, "service h2c sent no valid answer\n");
    assert!(
        proxy
            .log()
            .contains("switched protocols without an allowed upgrade"),
        "the reason is in the log:\n{}",
        proxy.log()
    );
    assert_eq!(replica.requests(), ["GET /h2c HTTP/1.1"]);
    Ok(())
}

#[test]
fn broken_chunked_framing_is_the_clients_fault() -> anyhow::Result<()> {
    let (demo, proxy) = go_demo(2, &[])?;
    for size_line in ["zz", "FFFFFFFFFFFFFFFFFFFF"] {
        let answer = get(
            &proxy,
            &format!(
                "POST /demo/echo HTTP/1.1\r\nHost: go-demo\r\nTransfer-Encoding: chunked\r\n\r\n\
                 5\r\nhello\r\n{size_line}\r\nworld\r\n0\r\n\r\n"
            ),
        )?;
        assert_eq!(answer.status, 400, "{size_line}: {answer:?}");
        assert!(answer.body.contains("malformed"), "{}", answer.body);
    }
    // A head that does not parse: hyper answers 400 before closing, counted the same.
    let bad_head = get(
        &proxy,
        "GET /demo/hello HTTP/1.1\r\nHost: go-demo\r\nno colon\r\n\r\n",
    )?;
    assert_eq!(bad_head.status, 400, "{bad_head:?}");
    counted(&proxy, "bad_framing", 3)?;
    // Neither replica was ejected: both keep answering.
    let mut names = std::collections::BTreeSet::new();
    for _ in 0..10 {
        let who = get(&proxy, "GET /demo/who HTTP/1.1\r\nHost: go-demo\r\n\r\n")?;
        assert_eq!(who.status, 200, "{who:?}");
        names.insert(who.body.trim().to_owned());
    }
    assert_eq!(names.len(), 2, "{names:?}\n{}", proxy.log());
    assert!(!proxy.log().contains("replica refused"), "{}", proxy.log());
    let _ = demo;
    Ok(())
}

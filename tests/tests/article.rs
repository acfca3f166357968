//! The article's flow, end to end: reconfigure, curl, scale, and the traffic a real service
//! sees (keep-alive load, a dying replica, HTTP/2, WebSocket, reconfigures under load).
use std::{
    collections::BTreeMap,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::Duration,
};

use anyhow::ensure;
use flowproxy_tests::{
    GoDemo, HttpClient, RunningProxy, curl, eventually, go_demo::RECONFIGURE, ws_echo,
};

fn proxy_for(demo: &GoDemo) -> anyhow::Result<RunningProxy> {
    demo.flowproxy()
        .arg("--no-ebpf")
        .arg("--dns-refresh")
        .arg("1")
        .start()
}

/// The article's first command.
fn reconfigure(proxy: &RunningProxy, query: &str) -> anyhow::Result<()> {
    let resp = proxy.api(&format!("/v1/docker-flow-proxy/reconfigure?{query}"))?;
    ensure!(
        resp.status == 200,
        "reconfigure answered {}: {}",
        resp.status,
        resp.body
    );
    Ok(())
}

#[test]
fn the_articles_two_curls_answer_hello_world() -> anyhow::Result<()> {
    let demo = GoDemo::start(1)?;
    let proxy = proxy_for(&demo)?;

    let answer = proxy.api(&format!("/v1/docker-flow-proxy/reconfigure?{RECONFIGURE}"))?;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert!(answer.body.contains(r#""Status":"OK""#), "{}", answer.body);
    assert!(
        answer.body.contains(r#""ServiceName":"go-demo""#),
        "{}",
        answer.body
    );

    let hello = curl(&[&proxy.url("/demo/hello")])?;
    assert_eq!(hello.status_line, "HTTP/1.1 200 OK");
    assert_eq!(hello.body, "hello, world!\n");
    assert_eq!(hello.header("content-length"), Some("14"));
    Ok(())
}

#[test]
fn five_replicas_each_get_a_fifth_of_1000_requests() -> anyhow::Result<()> {
    let demo = GoDemo::start(5)?;
    let proxy = proxy_for(&demo)?;
    reconfigure(&proxy, RECONFIGURE)?;
    let client = HttpClient::new()?;
    let mut by_replica: BTreeMap<String, usize> = BTreeMap::new();
    for _ in 0..1000 {
        let (status, body) = client.get(&proxy.url("/demo/who"))?;
        assert_eq!(status, 200, "{body}");
        *by_replica.entry(body.trim().to_owned()).or_default() += 1;
    }
    assert_eq!(by_replica.len(), 5, "{by_replica:?}");
    for (replica, count) in &by_replica {
        assert!(
            (150..=250).contains(count),
            "{replica} got {count} of 1000: {by_replica:?}"
        );
    }
    let logged: usize = demo.distribution().iter().map(|(_, n)| n).sum();
    assert_eq!(
        logged,
        1000,
        "the replicas' own logs disagree: {:?}",
        demo.distribution()
    );
    Ok(())
}

#[test]
fn scaling_to_five_replicas_needs_no_reconfigure() -> anyhow::Result<()> {
    let mut demo = GoDemo::start(1)?;
    let proxy = proxy_for(&demo)?;
    reconfigure(&proxy, RECONFIGURE)?;
    demo.scale(5)?;
    let client = HttpClient::new()?;
    eventually(Duration::from_secs(10), || {
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..50 {
            seen.insert(client.get(&proxy.url("/demo/who"))?.1);
        }
        ensure!(seen.len() == 5, "only {seen:?} answered");
        Ok(())
    })
}

#[test]
fn a_replica_killed_mid_load_costs_no_request() -> anyhow::Result<()> {
    let mut demo = GoDemo::start(3)?;
    let proxy = proxy_for(&demo)?;
    reconfigure(&proxy, RECONFIGURE)?;
    let client = HttpClient::new()?;
    for i in 0..300 {
        if i == 100 {
            demo.replicas[0].backend.kill();
        }
        let (status, body) = client.get(&proxy.url("/demo/hello"))?;
        assert_eq!(status, 200, "request {i}: {body}");
    }
    Ok(())
}

#[test]
fn http2_reaches_the_backend() -> anyhow::Result<()> {
    let demo = GoDemo::start(1)?;
    let proxy = proxy_for(&demo)?;
    reconfigure(&proxy, RECONFIGURE)?;
    let resp = curl(&["--http2-prior-knowledge", &proxy.url("/demo/hello")])?;
    assert_eq!(resp.status_line.trim(), "HTTP/2 200");
    assert_eq!(resp.body, "hello, world!\n");
    Ok(())
}

#[test]
fn a_websocket_echoes_through_the_proxy() -> anyhow::Result<()> {
    let demo = GoDemo::start(1)?;
    let proxy = proxy_for(&demo)?;
    reconfigure(&proxy, RECONFIGURE)?;
    let url = format!("ws://{}/demo/ws", proxy.http_addr);
    assert_eq!(ws_echo(&url, "hello over a tunnel")?, "hello over a tunnel");
    Ok(())
}

#[test]
fn two_hundred_reconfigures_under_load_fail_no_request() -> anyhow::Result<()> {
    let demo = GoDemo::start(2)?;
    let proxy = proxy_for(&demo)?;
    reconfigure(&proxy, RECONFIGURE)?;
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let url = proxy.url("/demo/hello");
    let load: Vec<_> = (0..4)
        .map(|_| {
            let (stop, ok, failed, url) = (stop.clone(), ok.clone(), failed.clone(), url.clone());
            std::thread::spawn(move || -> anyhow::Result<()> {
                let client = HttpClient::new()?;
                while !stop.load(Ordering::Relaxed) {
                    match client.get(&url) {
                        Ok((200, _)) => ok.fetch_add(1, Ordering::Relaxed),
                        _ => failed.fetch_add(1, Ordering::Relaxed),
                    };
                }
                Ok(())
            })
        })
        .collect();
    for i in 0..200 {
        let query = if i % 2 == 0 {
            format!("serviceName=svc{i}&servicePath=/svc{i}&port=8080")
        } else {
            format!("{RECONFIGURE}&timeoutServer={}", 20 + i)
        };
        reconfigure(&proxy, &query)?;
    }
    stop.store(true, Ordering::Relaxed);
    for worker in load {
        worker.join().expect("load thread")?;
    }
    let (ok, failed) = (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    assert_eq!(failed, 0, "{failed} failed, {ok} succeeded");
    assert!(
        ok > 200,
        "the load was too light to mean anything: {ok} requests"
    );
    Ok(())
}

#[test]
fn the_replica_sees_who_asked_and_for_which_host() -> anyhow::Result<()> {
    let demo = GoDemo::start(1)?;
    let proxy = proxy_for(&demo)?;
    reconfigure(&proxy, RECONFIGURE)?;
    let resp = curl(&[
        "-H",
        "Host: shop.example.com",
        &proxy.url("/demo/headers?x=1"),
    ])?;
    assert_eq!(resp.status, 200);
    let body = resp.body.to_lowercase();
    assert!(body.starts_with("/demo/headers?x=1"), "{body}");
    for line in [
        "host: shop.example.com",
        "x-forwarded-for: 127.0.0.1",
        "x-forwarded-proto: http",
        "x-forwarded-host: shop.example.com",
    ] {
        assert!(body.contains(line), "missing {line:?} in\n{body}");
    }
    Ok(())
}

#[test]
fn split_cookies_reach_the_replica_as_one_field() -> anyhow::Result<()> {
    let demo = GoDemo::start(1)?;
    let proxy = proxy_for(&demo)?;
    reconfigure(&proxy, RECONFIGURE)?;
    // HTTP/2 clients send each cookie as a field of its own; the replica speaks HTTP/1.1.
    for version in ["--http1.1", "--http2-prior-knowledge"] {
        let resp = curl(&[
            version,
            "-H",
            "Cookie: session=abc",
            "-H",
            "Cookie: theme=dark",
            &proxy.url("/demo/headers"),
        ])?;
        assert_eq!(resp.status, 200, "{version}");
        let body = resp.body.to_lowercase();
        let cookies: Vec<&str> = body.lines().filter(|l| l.starts_with("cookie:")).collect();
        assert_eq!(
            cookies,
            ["cookie: session=abc; theme=dark"],
            "{version}:\n{body}"
        );
    }
    Ok(())
}

#[test]
fn failures_get_their_status_and_say_which() -> anyhow::Result<()> {
    let mut demo = GoDemo::start(1)?;
    let proxy = proxy_for(&demo)?;
    reconfigure(&proxy, &format!("{RECONFIGURE}&timeoutServer=1"))?;

    let none = curl(&[&proxy.url("/nothing/here")])?;
    assert_eq!(none.status, 404);
    assert!(none.body.contains("no route"), "{}", none.body);

    let slow = curl(&[&proxy.url("/demo/slow?ms=3000")])?;
    assert_eq!(slow.status, 504, "{}", slow.body);
    assert_eq!(slow.body, "service go-demo did not answer in time\n");

    demo.replicas[0].backend.kill();
    let gone = curl(&[&proxy.url("/demo/hello")])?;
    assert_eq!(gone.status, 503, "{}", gone.body);
    // The client learns which service, not the replica's address or the library's words;
    // those are in the log.
    assert_eq!(gone.body, "no replica of service go-demo is reachable\n");
    let log = proxy.log();
    let failed = log
        .lines()
        .find(|l| l.contains("request failed") && l.contains("no replica of service go-demo"))
        .unwrap_or_else(|| panic!("no detailed line in the log:\n{log}"));
    let replica = demo.replicas[0].link.host_addr.to_string();
    assert!(
        failed.contains(&replica),
        "the replica's address {replica}: {failed}"
    );
    Ok(())
}

#[test]
fn users_require_basic_auth() -> anyhow::Result<()> {
    let demo = GoDemo::start(1)?;
    let proxy = proxy_for(&demo)?;
    reconfigure(&proxy, &format!("{RECONFIGURE}&users=admin:s3cret"))?;
    let anonymous = curl(&[&proxy.url("/demo/hello")])?;
    assert_eq!(anonymous.status, 401);
    assert!(
        anonymous
            .header("www-authenticate")
            .is_some_and(|h| h.starts_with("Basic"))
    );
    let wrong = curl(&["-u", "admin:nope", &proxy.url("/demo/hello")])?;
    assert_eq!(wrong.status, 401);
    let right = curl(&["-u", "admin:s3cret", &proxy.url("/demo/hello")])?;
    assert_eq!(right.status, 200);
    Ok(())
}

#[test]
fn a_slow_upload_is_not_cut_short_by_timeout_server() -> anyhow::Result<()> {
    let demo = GoDemo::start(1)?;
    let proxy = proxy_for(&demo)?;
    reconfigure(&proxy, &format!("{RECONFIGURE}&timeoutServer=1"))?;
    let body = "x".repeat(8 * 1024);
    // 8 KiB at 3 KiB/s: the upload alone takes longer than timeoutServer.
    let resp = curl(&[
        "--limit-rate",
        "3K",
        "--data-binary",
        &body,
        &proxy.url("/demo/echo"),
    ])?;
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert_eq!(resp.body.len(), body.len());
    Ok(())
}

#[test]
fn a_get_with_a_chunked_body_keeps_its_body() -> anyhow::Result<()> {
    let demo = GoDemo::start(1)?;
    let proxy = proxy_for(&demo)?;
    reconfigure(&proxy, RECONFIGURE)?;
    let resp = curl(&[
        "-X",
        "GET",
        "-H",
        "Transfer-Encoding: chunked",
        "--data-binary",
        "{\"query\":1}",
        &proxy.url("/demo/echo"),
    ])?;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body, "{\"query\":1}");
    Ok(())
}

#[test]
fn past_max_connections_clients_wait_until_a_connection_closes() -> anyhow::Result<()> {
    let demo = GoDemo::start(1)?;
    let proxy = demo
        .flowproxy()
        .arg("--no-ebpf")
        .arg("--max-connections")
        .arg("2")
        .start()?;
    reconfigure(&proxy, RECONFIGURE)?;
    let first = std::net::TcpStream::connect(proxy.http_addr)?;
    let _second = std::net::TcpStream::connect(proxy.http_addr)?;
    let waiting = curl(&["--max-time", "1", &proxy.url("/demo/hello")]);
    assert!(
        waiting.is_err(),
        "a third connection was served: {waiting:?}"
    );
    drop(first);
    let resp = curl(&["--max-time", "5", &proxy.url("/demo/hello")])?;
    assert_eq!(resp.status, 200);
    Ok(())
}

//! A replica that dies under load (issue 14): idempotent body-less requests in flight on it,
//! or sent to it before its death is noticed, are retried on another replica; a POST is never
//! sent twice. Retries are counted in `flowproxy_service_retries_total{service}`.
use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::Duration,
};

use anyhow::ensure;
use flowproxy_tests::{
    GoDemo, HttpClient, RawClient, eventually, go_demo::RECONFIGURE, raw::counter_value,
};

#[test]
fn a_replica_killed_under_keep_alive_load_fails_no_get_and_repeats_no_post() -> anyhow::Result<()> {
    let mut demo = GoDemo::start(3)?;
    let proxy = demo
        .flowproxy()
        .arg("--no-ebpf")
        .arg("--dns-refresh")
        .arg("1")
        .start()?;
    let resp = proxy.api(&format!("/v1/docker-flow-proxy/reconfigure?{RECONFIGURE}"))?;
    ensure!(resp.status == 200, "{}", resp.body);
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    // Slow answers, so requests are in flight on the replica when it dies.
    let url = proxy.url("/demo/slow?ms=30");
    let load: Vec<_> = (0..6)
        .map(|_| {
            let (stop, ok, failed, url) = (stop.clone(), ok.clone(), failed.clone(), url.clone());
            std::thread::spawn(move || -> anyhow::Result<Vec<String>> {
                let client = HttpClient::new()?;
                let mut errors = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    match client.get(&url) {
                        Ok((200, _)) => {
                            ok.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok((status, body)) => {
                            failed.fetch_add(1, Ordering::Relaxed);
                            errors.push(format!("{status} {body}"));
                        }
                        Err(e) => {
                            failed.fetch_add(1, Ordering::Relaxed);
                            errors.push(format!("{e:#}"));
                        }
                    }
                }
                Ok(errors)
            })
        })
        .collect();
    // POSTs with a body alongside: a repeat would show as more POST lines than POSTs.
    let posts = std::thread::spawn({
        let (stop, addr) = (stop.clone(), proxy.http_addr);
        move || -> anyhow::Result<usize> {
            let mut sent = 0;
            while !stop.load(Ordering::Relaxed) {
                let body = format!("post-{sent}");
                let mut client = RawClient::connect(addr)?;
                client.send(
                    format!(
                        "POST /demo/echo HTTP/1.1\r\nHost: go-demo\r\nContent-Length: {}\r\n\r\n{body}",
                        body.len()
                    )
                    .as_bytes(),
                )?;
                let _ = client.response(Duration::from_secs(10))?;
                sent += 1;
            }
            Ok(sent)
        }
    });
    eventually(Duration::from_secs(10), || {
        ensure!(ok.load(Ordering::Relaxed) >= 200, "warming up");
        Ok(())
    })?;
    demo.replicas[0].backend.kill();
    let before = ok.load(Ordering::Relaxed);
    eventually(Duration::from_secs(20), || {
        ensure!(
            ok.load(Ordering::Relaxed) >= before + 300,
            "load after the kill"
        );
        Ok(())
    })?;
    stop.store(true, Ordering::Relaxed);
    let mut errors = Vec::new();
    for thread in load {
        errors.extend(thread.join().expect("load thread")?);
    }
    let posted = posts.join().expect("post thread")?;
    assert_eq!(failed.load(Ordering::Relaxed), 0, "failed GETs: {errors:?}");
    // No POST reached a replica twice.
    let received: usize = demo
        .replicas
        .iter()
        .map(|r| {
            let log = r.backend.log();
            log.lines()
                .filter(|l| l.contains(" POST /demo/echo "))
                .count()
        })
        .sum();
    assert!(posted > 0, "no POST was sent");
    assert!(
        received <= posted,
        "{received} POSTs received, {posted} sent"
    );
    let scrape = proxy.api("/metrics")?.body;
    let retries = counter_value(
        &scrape,
        "flowproxy_service_retries_total",
        "service=\"go-demo\"",
    );
    // Whether a GET was in flight on the killed replica is up to timing (the load is mostly
    // POSTs), so a retry is not guaranteed here; the counter must exist and be read.
    assert!(
        scrape.contains("flowproxy_service_retries_total{service=\"go-demo\"}"),
        "the retry counter is exported ({retries} retries)\n{scrape}"
    );
    Ok(())
}

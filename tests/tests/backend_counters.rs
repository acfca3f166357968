//! Per-replica counters from the kernel, end to end: known traffic through the L7 engine to 3
//! replicas, then the same numbers read three ways — `flowproxy stats --json`, `/metrics` and
//! `bpftool map dump` — and consistent with what the replicas themselves logged.
use std::{collections::BTreeMap, time::Duration};

use anyhow::{Context as _, ensure};
use flowproxy_tests::{
    GoDemo, HttpClient, RunningProxy, bpftool, eventually, go_demo::RECONFIGURE,
};
use serde_json::Value;

/// Per-backend counters as `flowproxy stats --json` prints them, by backend address.
fn stats_by_backend(proxy: &RunningProxy) -> anyhow::Result<BTreeMap<String, Value>> {
    let doc = proxy.stats_json()?;
    Ok(doc["backends"]
        .as_array()
        .context("backends")?
        .iter()
        .map(|b| {
            (
                b["backend"].as_str().unwrap_or_default().to_owned(),
                b.clone(),
            )
        })
        .collect())
}

/// The value of one sample in the OpenMetrics text.
fn metric(text: &str, name: &str, labels: &[(&str, &str)]) -> anyhow::Result<u64> {
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")))
        .find(|l| {
            labels
                .iter()
                .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
        })
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .with_context(|| format!("no {name} {labels:?} in\n{text}"))
}

#[test]
fn replica_counters_agree_three_ways_and_match_the_traffic() -> anyhow::Result<()> {
    let demo = GoDemo::start(3)?;
    let mut proxy = demo.flowproxy();
    for replica in &demo.replicas {
        proxy = proxy.interface(&replica.link.root_if);
    }
    let proxy = proxy.start()?;
    let answer = proxy.api(&format!("/v1/docker-flow-proxy/reconfigure?{RECONFIGURE}"))?;
    assert_eq!(answer.status, 200, "{}", answer.body);

    let replicas: Vec<String> = demo
        .replicas
        .iter()
        .map(|r| r.backend.addr().to_string())
        .collect();
    eventually(Duration::from_secs(10), || {
        let stats = stats_by_backend(&proxy)?;
        ensure!(
            replicas.iter().all(|r| stats.contains_key(r)),
            "counted so far: {:?}",
            stats.keys()
        );
        Ok(())
    })?;
    let before = stats_by_backend(&proxy)?;

    const REQUESTS: usize = 30;
    let client = HttpClient::new()?;
    let metrics_before = proxy.api("/metrics")?.body;
    for _ in 0..REQUESTS {
        let (status, _) = client.get(&proxy.url("/demo/hello"))?;
        assert_eq!(status, 200);
    }
    // Quiet now: idle keep-alive connections send nothing.
    std::thread::sleep(Duration::from_millis(300));

    let stats = stats_by_backend(&proxy)?;
    let metrics = proxy.api("/metrics")?.body;
    for (replica, demo_replica) in replicas.iter().zip(&demo.replicas) {
        let s = &stats[replica];
        let delta = |field: &str| {
            s[field].as_u64().unwrap_or(0) - before[replica][field].as_u64().unwrap_or(0)
        };
        let served = demo_replica.backend.request_count();
        assert!(served >= REQUESTS / 3, "{replica} served {served}");
        // Each answer is one segment of headers plus "hello, world!\n", each request one segment.
        assert!(
            delta("packets_in") >= (REQUESTS / 3) as u64,
            "{replica}: {s}"
        );
        assert!(
            delta("bytes_in") >= (REQUESTS / 3 * 100) as u64,
            "{replica}: {s}"
        );
        assert!(
            delta("packets_out") >= (REQUESTS / 3) as u64,
            "{replica}: {s}"
        );
        assert!(
            s["connections"].as_u64().unwrap_or(0) >= 1,
            "{replica}: {s}"
        );
        assert_eq!(s["service"], "go-demo");
        assert_eq!(
            s["requests"].as_u64(),
            Some(served as u64),
            "{replica}: proxy and replica disagree"
        );

        // The kernel counts whole frames, user space TCP payload: the kernel's bytes cover
        // ours, and the difference is at most Ethernet + IPv4 + TCP headers per packet.
        for (field, direction, packets) in [
            ("bytes_in", "in", "packets_in"),
            ("bytes_out", "out", "packets_out"),
        ] {
            let l = [("backend", replica.as_str()), ("direction", direction)];
            // Before the load no request had reached a replica: a missing series is zero.
            let user = metric(&metrics, "flowproxy_backend_tcp_bytes_total", &l)?
                - metric(&metrics_before, "flowproxy_backend_tcp_bytes_total", &l).unwrap_or(0);
            let (kernel, frames) = (delta(field), delta(packets));
            assert!(
                user > 0,
                "{replica} {direction}: user space counted nothing"
            );
            assert!(
                kernel >= user && kernel - user <= frames * (14 + 20 + 60),
                "{replica} {direction}: kernel {kernel} bytes in {frames} frames vs user space {user}"
            );
        }

        let labels = [("service", "go-demo"), ("backend", replica.as_str())];
        for (field, name, direction) in [
            ("packets_in", "flowproxy_backend_packets_total", "in"),
            ("packets_out", "flowproxy_backend_packets_total", "out"),
            ("bytes_in", "flowproxy_backend_bytes_total", "in"),
            ("bytes_out", "flowproxy_backend_bytes_total", "out"),
        ] {
            let mut l = labels.to_vec();
            l.push(("direction", direction));
            assert_eq!(
                metric(&metrics, name, &l)?,
                s[field].as_u64().unwrap(),
                "{replica} {field}"
            );
        }
        assert_eq!(
            metric(&metrics, "flowproxy_backend_connections_total", &labels)?,
            s["connections"].as_u64().unwrap()
        );

        let slot = s["slot"].as_u64().context("slot")? as u32;
        let dump = bpftool::map_dump(&proxy.pin_dir().join("BACKEND_STATS"))?;
        let raw = bpftool::percpu_u64_sum(&dump, slot, 6)?;
        let fields = [
            "packets_in",
            "bytes_in",
            "packets_out",
            "bytes_out",
            "connections",
            "resets",
        ];
        for (value, field) in raw.iter().zip(fields) {
            assert_eq!(
                *value,
                s[field].as_u64().unwrap(),
                "{replica} {field}: bpftool vs stats"
            );
        }
    }
    let requests = metric(
        &metrics,
        "flowproxy_service_requests_total",
        &[("service", "go-demo"), ("code", "200"), ("method", "GET")],
    )?;
    assert!(requests >= REQUESTS as u64, "{requests}");
    Ok(())
}

#[test]
fn bpftool_shows_readable_backend_entries() -> anyhow::Result<()> {
    let demo = GoDemo::start(1)?;
    let proxy = demo
        .flowproxy()
        .interface(&demo.replicas[0].link.root_if)
        .start()?;
    proxy.api(&format!("/v1/docker-flow-proxy/reconfigure?{RECONFIGURE}"))?;
    let path = proxy.pin_dir().join("BACKENDS");
    eventually(Duration::from_secs(10), || {
        let text = flowproxy_tests::cmd::run(
            "bpftool",
            &["map", "dump", "pinned", &path.to_string_lossy()],
        )?;
        // BTF lets bpftool name the fields.
        ensure!(
            text.contains("\"port\": 8080") && text.contains("\"slot\""),
            "{text}"
        );
        Ok(())
    })
}

#[test]
fn interface_auto_attaches_where_the_replicas_are() -> anyhow::Result<()> {
    let demo = GoDemo::start(2)?;
    let proxy = demo.flowproxy().interface("auto").start()?;
    assert!(
        bpftool::links_of(proxy.pid())?.is_empty(),
        "nothing to attach to before discovery"
    );
    proxy.api(&format!("/v1/docker-flow-proxy/reconfigure?{RECONFIGURE}"))?;
    let client = HttpClient::new()?;
    eventually(Duration::from_secs(10), || {
        client.get(&proxy.url("/demo/hello"))?;
        for replica in &demo.replicas {
            let attached = bpftool::hooks_on(proxy.pid(), &replica.link.root_if)?;
            ensure!(
                attached == ["tc-egress", "tc-ingress"],
                "{}: {attached:?}",
                replica.link.root_if
            );
        }
        let stats = stats_by_backend(&proxy)?;
        ensure!(
            stats.values().all(|s| s["packets_in"].as_u64() > Some(0)),
            "not counting yet: {stats:?}"
        );
        Ok(())
    })?;
    let links = bpftool::links_of(proxy.pid())?;
    assert_eq!(
        links.len(),
        4,
        "TC ingress and egress on each of the two replica interfaces: {links:?}"
    );
    Ok(())
}

//! `/metrics` as Prometheus tooling reads it (issue 17): a real scrape, after HTTP/1.1, h2 and
//! TCP-mode traffic with the data plane on, passes Debian's `promtool check metrics` in the
//! 0.0.4 text format; the OpenMetrics format (which `promtool check metrics` cannot read) is
//! read by promtool's own OpenMetrics parser and scraped by Debian's Prometheus server without
//! an error; a dead replica shows as ejected; the alert rules
//! pass `promtool check rules` and their unit tests; and the dashboard and the rules name only
//! metrics a real scrape exposes.
use std::{
    collections::BTreeSet,
    net::TcpListener,
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{bail, ensure};
use flowproxy_tests::{
    CurlResponse, GoDemo, RunningProxy, curl, eventually,
    go_demo::RECONFIGURE,
    h2c::{BodyEnd, h2c_request},
    prometheus::{Prometheus, Tap, promtool},
};

const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
const TEXT_004: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Every family the scrape must show once the traffic has gone through: what promtool and
/// Prometheus check below is then the whole of what flowproxy exports.
const FAMILIES: &[&str] = &[
    "flowproxy_service_requests_total",
    "flowproxy_service_request_duration_seconds_bucket",
    "flowproxy_service_retries_total",
    "flowproxy_backend_requests_total",
    "flowproxy_backend_tcp_bytes_total",
    "flowproxy_backend_packets_total",
    "flowproxy_backend_bytes_total",
    "flowproxy_backend_connections_total",
    "flowproxy_replica_up",
    "flowproxy_service_replicas",
    "flowproxy_config_changes_total",
    "flowproxy_config_last_change_timestamp_seconds",
    "flowproxy_config_reloads_total",
    "flowproxy_build_info",
    "flowproxy_l4_connections_total",
    "flowproxy_l4_service_connections_total",
    "flowproxy_l4_relayed_bytes_total",
    "flowproxy_l4_fast_flows_total",
    "flowproxy_l4_slow_flows_total",
    "flowproxy_conntrack_entries",
    "flowproxy_conntrack_capacity",
    "flowproxy_tls_handshakes_total",
    "flowproxy_tls_cert_not_after_seconds",
    "flowproxy_certificate_expiry_timestamp_seconds",
    "flowproxy_client_errors_total",
    "flowproxy_open_connections",
    "flowproxy_parked_connections",
    "process_cpu_seconds_total",
    "process_resident_memory_bytes",
    "process_virtual_memory_bytes",
    "process_open_fds",
    "process_start_time_seconds",
];

/// go-demo over HTTP and as a TCP-mode service, with the data plane counting its replicas.
struct Busy {
    proxy: RunningProxy,
    _demo: GoDemo,
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Starts the proxy, configures both services and sends traffic of every protocol and a
/// refused change, then waits until the scrape shows every family.
fn busy() -> anyhow::Result<Busy> {
    let demo = GoDemo::start(2)?;
    let addrs: Vec<_> = demo.replicas.iter().map(|r| r.link.host_addr).collect();
    demo.dns.set("tasks.go-demo-tcp", &addrs)?;
    let mut proxy = demo.flowproxy();
    for replica in &demo.replicas {
        proxy = proxy.interface(&replica.link.root_if);
    }
    let proxy = proxy.start()?;
    let answer = proxy.api(&format!("/v1/docker-flow-proxy/reconfigure?{RECONFIGURE}"))?;
    ensure!(answer.status == 200, "{}", answer.body);
    let port = free_port()?;
    let answer = proxy.api(&format!(
        "/v1/docker-flow-proxy/reconfigure?serviceName=go-demo-tcp&reqMode=tcp&srcPort={port}&port=8080"
    ))?;
    ensure!(answer.status == 200, "{}", answer.body);
    let refused = proxy.api("/v1/docker-flow-proxy/reconfigure?serviceName=no-path")?;
    ensure!(
        (400..500).contains(&refused.status),
        "{} {}",
        refused.status,
        refused.body
    );
    for _ in 0..3 {
        ensure!(curl(&[&proxy.url("/demo/hello")])?.status == 200);
    }
    ensure!(curl(&[&proxy.url("/nowhere")])?.status == 404);
    let (status, body) = h2c_request(
        proxy.http_addr,
        "GET",
        &proxy.url("/demo/hello"),
        &[],
        b"",
        BodyEnd::Complete,
        Duration::from_secs(10),
    )?;
    ensure!(status == 200, "h2: {status} {body}");
    let tcp = curl(&[&format!("http://127.0.0.1:{port}/demo/hello")])?;
    ensure!(tcp.status == 200, "TCP mode: {}", tcp.body);
    let busy = Busy { proxy, _demo: demo };
    eventually(Duration::from_secs(15), || {
        let names = sample_names(&scrape(&busy.proxy, "text/plain")?.body);
        let missing: Vec<_> = FAMILIES.iter().filter(|f| !names.contains(**f)).collect();
        ensure!(missing.is_empty(), "not scraped yet: {missing:?}");
        Ok(())
    })?;
    Ok(busy)
}

/// `/metrics` with `Accept: accept`.
fn scrape(proxy: &RunningProxy, accept: &str) -> anyhow::Result<CurlResponse> {
    let response = curl(&[
        "-H",
        &format!("Accept: {accept}"),
        &proxy.api_url("/metrics"),
    ])?;
    ensure!(response.status == 200, "{}", response.body);
    Ok(response)
}

/// The metric name of every sample line.
fn sample_names(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(str::to_owned)
        .collect()
}

fn deploy(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy")
        .join(file)
}

#[test]
fn a_real_scrape_in_the_0_0_4_format_passes_promtool() -> anyhow::Result<()> {
    let busy = busy()?;
    for accept in ["text/plain;version=0.0.4", "text/plain"] {
        let scraped = scrape(&busy.proxy, accept)?;
        assert_eq!(scraped.header("content-type"), Some(TEXT_004), "{accept}");
        assert!(!scraped.body.contains("# EOF"), "{accept}");
        let (ok, printed) = promtool(&["check", "metrics"], &scraped.body)?;
        assert!(
            ok && printed.trim().is_empty(),
            "{accept}: promtool said:\n{printed}"
        );
    }
    let text = scrape(&busy.proxy, "text/plain")?.body;
    for line in [
        "flowproxy_service_requests_total{service=\"go-demo\",code=\"200\",method=\"GET\",protocol=\"http/1.1\"}",
        "flowproxy_service_requests_total{service=\"go-demo\",code=\"200\",method=\"GET\",protocol=\"h2\"}",
        "flowproxy_service_requests_total{service=\"go-demo-tcp\",protocol=\"tcp\"}",
        "flowproxy_service_request_duration_seconds_count{service=\"-\",code=\"404\"}",
        "flowproxy_config_changes_total{result=\"rejected\"} 1",
        "flowproxy_config_changes_total{result=\"applied\"} 2",
        "flowproxy_l4_slow_flows_total{service=\"go-demo-tcp\"",
    ] {
        assert!(
            text.lines().any(|l| l.starts_with(line)),
            "{line} in\n{text}"
        );
    }
    // The one TCP-mode connection came in on loopback, where no program runs: counted as
    // not_attached, so relayed flows never go without a reason.
    assert!(
        text.lines().any(|l| l
            .starts_with("flowproxy_l4_slow_flows_total{service=\"go-demo-tcp\"")
            && l.ends_with("reason=\"not_attached\"} 1")),
        "{text}"
    );
    // Without Accept (curl's */*), OpenMetrics stays the default.
    let default = curl(&[&busy.proxy.api_url("/metrics")])?;
    assert_eq!(default.header("content-type"), Some(OPENMETRICS));
    assert!(default.body.ends_with("# EOF\n"));
    Ok(())
}

#[test]
fn prometheus_scrapes_the_openmetrics_format_without_an_error() -> anyhow::Result<()> {
    let busy = busy()?;
    let tap = Tap::start(busy.proxy.api_addr)?;
    let prometheus = Prometheus::start(tap.addr)?;
    eventually(Duration::from_secs(30), || {
        let targets = prometheus.api("/api/v1/targets")?;
        let target = &targets["data"]["activeTargets"][0];
        ensure!(target["health"] == "up", "{target}\n{}", prometheus.log());
        ensure!(target["lastError"] == "", "{target}");
        Ok(())
    })?;
    let (request, response) = tap.seen();
    assert!(
        request
            .to_ascii_lowercase()
            .contains("accept: application/openmetrics-text"),
        "{request}"
    );
    assert!(
        response
            .to_ascii_lowercase()
            .contains(&format!("content-type: {OPENMETRICS}")),
        "{response}"
    );
    // Every sample of the format Prometheus got was taken (the traffic is over: the count
    // holds still between two scrapes).
    eventually(Duration::from_secs(10), || {
        let scraped = prometheus.value("scrape_samples_scraped")?;
        let text = scrape(&busy.proxy, "application/openmetrics-text")?.body;
        let samples = text.lines().filter(|l| !l.starts_with('#')).count();
        ensure!(
            scraped == samples as f64,
            "Prometheus {scraped}, scrape {samples}"
        );
        Ok(())
    })?;
    assert_eq!(prometheus.value("flowproxy_build_info")?, 1.0);
    let text = scrape(&busy.proxy, "application/openmetrics-text")?.body;
    promtool_reads_openmetrics(&text)?;
    let h2 = prometheus
        .value("flowproxy_service_requests_total%7Bservice=%22go-demo%22,protocol=%22h2%22%7D")?;
    assert_eq!(h2, 1.0);
    Ok(())
}

/// `promtool tsdb create-blocks-from openmetrics`, the one promtool command that parses
/// OpenMetrics (with Prometheus's OpenMetrics parser: `# EOF`, `_total` and `_created`, UNIT,
/// label syntax). It backfills, so each sample gets a timestamp; nothing else is changed.
fn promtool_reads_openmetrics(scrape: &str) -> anyhow::Result<()> {
    let dir = flowproxy_tests::proxy::temp_state_dir().with_extension("openmetrics");
    std::fs::create_dir_all(&dir)?;
    let stamped: String = scrape
        .lines()
        .map(|l| {
            if l.starts_with('#') || l.is_empty() {
                format!("{l}\n")
            } else {
                format!("{l} 1700000000\n")
            }
        })
        .collect();
    let file = dir.join("scrape.txt");
    std::fs::write(&file, &stamped)?;
    let blocks = dir.join("blocks");
    let result = promtool(
        &[
            "tsdb",
            "create-blocks-from",
            "openmetrics",
            &file.to_string_lossy(),
            &blocks.to_string_lossy(),
        ],
        "",
    );
    let _ = std::fs::remove_dir_all(&dir);
    let (ok, printed) = result?;
    ensure!(
        ok,
        "promtool's OpenMetrics parser said:\n{printed}\non\n{scrape}"
    );
    Ok(())
}

#[test]
fn a_dead_replica_shows_as_ejected_while_the_service_keeps_its_count() -> anyhow::Result<()> {
    let mut demo = GoDemo::start(2)?;
    let proxy = demo.flowproxy().arg("--no-ebpf").start()?;
    let answer = proxy.api(&format!("/v1/docker-flow-proxy/reconfigure?{RECONFIGURE}"))?;
    ensure!(answer.status == 200, "{}", answer.body);
    let (alive, dead) = (
        demo.replicas[0].backend.addr().to_string(),
        demo.replicas[1].backend.addr().to_string(),
    );
    let up = |replica: &str| {
        format!("flowproxy_replica_up{{service=\"go-demo\",replica=\"{replica}\"}}")
    };
    eventually(Duration::from_secs(10), || {
        let text = scrape(&proxy, "text/plain")?.body;
        for line in [format!("{} 1", up(&alive)), format!("{} 1", up(&dead))] {
            ensure!(text.lines().any(|l| l == line), "{line} not in\n{text}");
        }
        Ok(())
    })?;
    demo.replicas[1].backend.kill();
    eventually(Duration::from_secs(10), || {
        // Round robin sends every other request to the dead one, which ejects it.
        curl(&[&proxy.url("/demo/hello")])?;
        let text = scrape(&proxy, "text/plain")?.body;
        let wanted = [
            format!("{} 0", up(&dead)),
            format!("{} 1", up(&alive)),
            "flowproxy_service_replicas{service=\"go-demo\"} 2".to_owned(),
        ];
        for line in &wanted {
            ensure!(text.lines().any(|l| l == line), "{line} not in\n{text}");
        }
        Ok(())
    })?;
    Ok(())
}

#[test]
fn the_alert_rules_pass_promtool_and_their_unit_tests() -> anyhow::Result<()> {
    let rules = deploy("alert-rules.yml");
    let (ok, printed) = promtool(&["check", "rules", &rules.to_string_lossy()], "")?;
    assert!(ok && printed.contains("SUCCESS"), "{printed}");
    let tests = deploy("alert-rules.test.yml");
    let (ok, printed) = promtool(&["test", "rules", &tests.to_string_lossy()], "")?;
    assert!(ok && printed.contains("SUCCESS"), "{printed}");
    Ok(())
}

/// Every string in `value` under the key `key`, at any depth.
fn strings_under<'a>(value: &'a serde_json::Value, key: &str, out: &mut Vec<&'a str>) {
    match value {
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                match v {
                    serde_json::Value::String(s) if k == key => out.push(s),
                    _ => strings_under(v, key, out),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| strings_under(v, key, out)),
        _ => {}
    }
}

/// The flowproxy and process metric names `text` mentions.
fn names_in(text: &str) -> BTreeSet<String> {
    let name = regex::Regex::new(r"\b(?:flowproxy|process)_[a-zA-Z0-9_]+").expect("regex");
    name.find_iter(text)
        .map(|m| m.as_str().to_owned())
        .collect()
}

#[test]
fn the_dashboard_and_the_rules_name_only_metrics_a_scrape_exposes() -> anyhow::Result<()> {
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(deploy("grafana-dashboard.json"))?)?;
    let mut exprs = Vec::new();
    strings_under(&dashboard, "expr", &mut exprs);
    let mut queries = exprs.clone();
    strings_under(&dashboard, "definition", &mut queries);
    let dashboard_names = names_in(&queries.join("\n"));
    let rules_names = names_in(&std::fs::read_to_string(deploy("alert-rules.yml"))?);
    // What the issue asks the dashboard to show.
    for wanted in [
        "flowproxy_service_requests_total",
        "flowproxy_service_request_duration_seconds_bucket",
        "flowproxy_replica_up",
        "flowproxy_l4_fast_flows_total",
        "flowproxy_l4_slow_flows_total",
        "flowproxy_certificate_expiry_timestamp_seconds",
    ] {
        assert!(
            dashboard_names.contains(wanted),
            "the dashboard lacks {wanted}"
        );
    }
    assert!(exprs.iter().any(|e| e.contains("histogram_quantile(0.99")));
    assert!(exprs.iter().any(|e| e.contains("code=~\"5..\"")));

    let busy = busy()?;
    let scraped = sample_names(&scrape(&busy.proxy, "text/plain")?.body);
    let unknown: Vec<_> = dashboard_names
        .iter()
        .chain(&rules_names)
        .filter(|n| !scraped.contains(*n))
        .collect();
    assert!(
        unknown.is_empty(),
        "not in a scrape: {unknown:?}\nscraped: {scraped:?}"
    );

    // The panels' queries are PromQL Prometheus accepts (with Grafana's variables filled in).
    let records: Vec<serde_json::Value> = exprs
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let expr = e
                .replace("$__rate_interval", "5m")
                .replace("$instance", ".*");
            serde_json::json!({ "record": format!("dashboard:panel_{i}"), "expr": expr })
        })
        .collect();
    let file = std::env::temp_dir().join(format!("fp-dashboard-rules-{}.json", std::process::id()));
    // JSON is YAML: promtool reads it as a rules file.
    std::fs::write(
        &file,
        serde_json::json!({ "groups": [{ "name": "dashboard", "rules": records }] }).to_string(),
    )?;
    let checked = promtool(&["check", "rules", &file.to_string_lossy()], "");
    let _ = std::fs::remove_file(&file);
    let (ok, printed) = checked?;
    if !ok {
        bail!("the dashboard's queries do not parse:\n{printed}");
    }
    Ok(())
}

use hyper::{Method, Version};

use super::{exposition::tests::lint_004, *};
use crate::tls;

/// The registry flowproxy serves, after some traffic of each kind (no data plane, no control
/// plane: their collectors have their own tests).
fn busy_metrics() -> Arc<Metrics> {
    let provider = tls::install_provider();
    let certs = Arc::new(CertStore::new(tls::self_signed(&provider).unwrap(), None));
    let metrics = Metrics::new(None, certs);
    let service = metrics.service("go-demo");
    let replica = "198.18.0.2:8080".parse().unwrap();
    service.observe(Some(replica), 200, &Method::GET, Version::HTTP_11, 0.01);
    service.observe(Some(replica), 503, &Method::POST, Version::HTTP_2, 0.2);
    service.retried();
    metrics.l4().requests.tcp_connection("db");
    metrics.config_changes().applied();
    metrics.config_changes().rejected.inc();
    metrics.handshakes();
    metrics
}

#[test]
fn every_family_is_described_under_its_sample_name_in_0_0_4() {
    let text = busy_metrics().encode(Format::Prometheus);
    assert_eq!(lint_004(&text), Vec::<String>::new(), "{text}");
    for line in [
        "# TYPE flowproxy_service_requests_total counter",
        "flowproxy_service_requests_total{service=\"go-demo\",code=\"200\",method=\"GET\",protocol=\"http/1.1\"} 1",
        "flowproxy_service_requests_total{service=\"go-demo\",code=\"503\",method=\"POST\",protocol=\"h2\"} 1",
        "flowproxy_service_requests_total{service=\"db\",protocol=\"tcp\"} 1",
        "flowproxy_service_request_duration_seconds_count{service=\"go-demo\",code=\"503\"} 1",
        "flowproxy_service_retries_total{service=\"go-demo\"} 1",
        "flowproxy_config_changes_total{result=\"applied\"} 1",
        "flowproxy_config_changes_total{result=\"rejected\"} 1",
        "flowproxy_config_changes_total{result=\"failed\"} 0",
        "# TYPE flowproxy_build_info gauge",
        &format!(
            "flowproxy_build_info{{version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        ),
        "# TYPE process_cpu_seconds_total counter",
        "flowproxy_certificate_expiry_timestamp_seconds{domain=\"localhost\"}",
    ] {
        assert!(
            text.lines()
                .any(|l| l == line || l.starts_with(&format!("{line} "))),
            "{line} in\n{text}"
        );
    }
    let changed = text
        .lines()
        .find_map(|l| l.strip_prefix("flowproxy_config_last_change_timestamp_seconds "))
        .and_then(|v| v.parse::<f64>().ok())
        .expect("last change time");
    assert!(changed > 1.7e9, "{changed}");
    for name in [
        "process_resident_memory_bytes",
        "process_virtual_memory_bytes",
        "process_open_fds",
        "process_start_time_seconds",
    ] {
        assert!(
            text.contains(&format!("# HELP {name} ")),
            "{name} in\n{text}"
        );
    }
}

#[test]
fn openmetrics_stays_the_default_and_ends_with_eof() {
    let text = busy_metrics().encode(Format::negotiate(None));
    assert!(text.ends_with("# EOF\n"), "{text}");
    assert!(
        text.contains("\n# TYPE flowproxy_service_requests counter\n"),
        "{text}"
    );
    assert!(text.contains("\n# TYPE flowproxy_build info\n"), "{text}");
}

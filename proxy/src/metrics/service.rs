//! One service's request metrics: `flowproxy_service_requests_total{service,code,method,protocol}`,
//! `flowproxy_service_request_duration_seconds{service,code}`, the per-replica request counter
//! and the retries. The label sets a service has used are kept resolved to their series, so
//! recording a request hashes no label set.
use std::{net::SocketAddr, sync::RwLock};

use hyper::{Method, Version};
use prometheus_client::{
    encoding::{EncodeLabel as _, EncodeLabelSet, LabelSetEncoder},
    metrics::{counter::Counter, family::Family, histogram::Histogram},
};

use super::{read, write};

/// Labels of `flowproxy_service_requests_total`. A TCP-mode connection has no status code
/// and no method: its series carries neither label.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub(super) struct RequestLabels {
    service: String,
    code: Option<u16>,
    method: Option<&'static str>,
    protocol: &'static str,
}

impl EncodeLabelSet for RequestLabels {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> Result<(), std::fmt::Error> {
        ("service", self.service.as_str()).encode(encoder.encode_label())?;
        if let Some(code) = self.code {
            ("code", code).encode(encoder.encode_label())?;
        }
        if let Some(method) = self.method {
            ("method", method).encode(encoder.encode_label())?;
        }
        ("protocol", self.protocol).encode(encoder.encode_label())
    }
}

/// Labels of `flowproxy_service_request_duration_seconds`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct DurationLabels {
    pub(super) service: String,
    pub(super) code: u16,
}

/// Labels of `flowproxy_backend_requests_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct BackendRequestLabels {
    service: String,
    backend: String,
}

/// The `protocol` label of TCP-mode connections.
pub const TCP: &str = "tcp";

/// `flowproxy_service_requests_total`, shared by the HTTP request path and the TCP-mode relay.
#[derive(Clone, Debug, Default)]
pub struct RequestCounters(pub(super) Family<RequestLabels, Counter>);

impl RequestCounters {
    /// Counts one TCP-mode connection of `service` relayed to a replica (`protocol="tcp"`).
    pub fn tcp_connection(&self, service: &str) {
        self.0
            .get_or_create(&RequestLabels {
                service: service.to_owned(),
                code: None,
                method: None,
                protocol: TCP,
            })
            .inc();
    }
}

/// A request's label values, as cached: status code, method, protocol.
type CodeKey = (u16, &'static str, &'static str);

/// One service's request metrics, with the label sets it has used so far resolved to their
/// series (a handful each: status codes times methods and protocols, and the replicas).
#[derive(Debug)]
pub struct ServiceMetrics {
    name: String,
    retries: Counter,
    requests: RequestCounters,
    durations: Family<DurationLabels, Histogram>,
    backend_requests: Family<BackendRequestLabels, Counter>,
    by_code: RwLock<Vec<(CodeKey, Counter)>>,
    durations_by_code: RwLock<Vec<(u16, Histogram)>>,
    by_backend: RwLock<Vec<(SocketAddr, Counter)>>,
}

/// How many replicas' counters one service keeps at hand.
const MAX_CACHED_BACKENDS: usize = 64;

impl ServiceMetrics {
    /// The metrics of `name`, recording into the shared families.
    pub(super) fn new(
        name: &str,
        retries: Counter,
        requests: RequestCounters,
        durations: Family<DurationLabels, Histogram>,
        backend_requests: Family<BackendRequestLabels, Counter>,
    ) -> Self {
        Self {
            name: name.to_owned(),
            retries,
            requests,
            durations,
            backend_requests,
            by_code: RwLock::default(),
            durations_by_code: RwLock::default(),
            by_backend: RwLock::default(),
        }
    }

    /// The service's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Records one answered request (and, if it reached one, the replica), made over HTTP
    /// `version`.
    pub fn observe(
        &self,
        replica: Option<SocketAddr>,
        code: u16,
        method: &Method,
        version: Version,
        seconds: f64,
    ) {
        if let Some(backend) = replica {
            self.backend_counter(backend).inc();
        }
        let key = (code, method_label(method), protocol_label(version));
        self.request_counter(key).inc();
        self.duration_histogram(code).observe(seconds);
    }

    /// Counts one request sent again to another replica.
    pub fn retried(&self) {
        self.retries.inc();
    }

    fn request_counter(&self, key: CodeKey) -> Counter {
        let known = read(&self.by_code)
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, counter)| counter.clone());
        known.unwrap_or_else(|| {
            let (code, method, protocol) = key;
            let counter = self
                .requests
                .0
                .get_or_create(&RequestLabels {
                    service: self.name.clone(),
                    code: Some(code),
                    method: Some(method),
                    protocol,
                })
                .clone();
            write(&self.by_code).push((key, counter.clone()));
            counter
        })
    }

    fn duration_histogram(&self, code: u16) -> Histogram {
        let known = read(&self.durations_by_code)
            .iter()
            .find(|(c, _)| *c == code)
            .map(|(_, histogram)| histogram.clone());
        known.unwrap_or_else(|| {
            let histogram = self
                .durations
                .get_or_create(&DurationLabels {
                    service: self.name.clone(),
                    code,
                })
                .clone();
            write(&self.durations_by_code).push((code, histogram.clone()));
            histogram
        })
    }

    fn backend_counter(&self, backend: SocketAddr) -> Counter {
        let known = read(&self.by_backend)
            .iter()
            .find(|(b, _)| *b == backend)
            .map(|(_, counter)| counter.clone());
        known.unwrap_or_else(|| {
            let counter = self
                .backend_requests
                .get_or_create(&BackendRequestLabels {
                    service: self.name.clone(),
                    backend: backend.to_string(),
                })
                .clone();
            let mut known = write(&self.by_backend);
            // Replicas come and go: bound the list (the family keeps every series anyway).
            if known.len() >= MAX_CACHED_BACKENDS {
                known.clear();
            }
            known.push((backend, counter.clone()));
            counter
        })
    }
}

/// The method as a label: the standard ones by name, any other as `OTHER`, so clients
/// cannot create series without bound.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::CONNECT => "CONNECT",
        Method::OPTIONS => "OPTIONS",
        Method::TRACE => "TRACE",
        Method::PATCH => "PATCH",
        _ => "OTHER",
    }
}

/// The HTTP version as a `protocol` label, in ALPN's spelling (`http/1.1`, `h2`), which is
/// also what Traefik and HAProxy operators see elsewhere.
fn protocol_label(version: Version) -> &'static str {
    match version {
        Version::HTTP_09 => "http/0.9",
        Version::HTTP_10 => "http/1.0",
        Version::HTTP_11 => "http/1.1",
        Version::HTTP_2 => "h2",
        Version::HTTP_3 => "h3",
        _ => "OTHER",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service() -> (
        ServiceMetrics,
        RequestCounters,
        Family<DurationLabels, Histogram>,
    ) {
        let requests = RequestCounters::default();
        let durations = Family::<DurationLabels, Histogram>::new_with_constructor(|| {
            Histogram::new([0.1, 1.0])
        });
        let metrics = ServiceMetrics::new(
            "go-demo",
            Counter::default(),
            requests.clone(),
            durations.clone(),
            Family::default(),
        );
        (metrics, requests, durations)
    }

    fn requests_of(
        requests: &RequestCounters,
        code: Option<u16>,
        method: Option<&'static str>,
        protocol: &'static str,
    ) -> u64 {
        requests
            .0
            .get_or_create(&RequestLabels {
                service: "go-demo".into(),
                code,
                method,
                protocol,
            })
            .get()
    }

    #[test]
    fn odd_methods_share_one_label() {
        assert_eq!(method_label(&Method::GET), "GET");
        let odd = Method::from_bytes(b"FOO1").unwrap();
        assert_eq!(method_label(&odd), "OTHER");
    }

    #[test]
    fn requests_are_counted_by_code_method_and_protocol() {
        let (metrics, requests, durations) = service();
        metrics.observe(None, 200, &Method::GET, Version::HTTP_11, 0.05);
        metrics.observe(None, 200, &Method::GET, Version::HTTP_11, 0.05);
        metrics.observe(None, 200, &Method::GET, Version::HTTP_2, 0.05);
        metrics.observe(None, 503, &Method::POST, Version::HTTP_2, 2.0);
        assert_eq!(
            requests_of(&requests, Some(200), Some("GET"), "http/1.1"),
            2
        );
        assert_eq!(requests_of(&requests, Some(200), Some("GET"), "h2"), 1);
        assert_eq!(requests_of(&requests, Some(503), Some("POST"), "h2"), 1);
        assert_eq!(
            requests_of(&requests, Some(503), Some("POST"), "http/1.1"),
            0
        );
        let mut registry = prometheus_client::registry::Registry::default();
        registry.register("d", "durations", durations);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        for count in [
            "d_count{service=\"go-demo\",code=\"200\"} 3",
            "d_count{service=\"go-demo\",code=\"503\"} 1",
            "d_bucket{le=\"1.0\",service=\"go-demo\",code=\"503\"} 0",
        ] {
            assert!(text.contains(count), "{count} in\n{text}");
        }
    }

    #[test]
    fn tcp_connections_count_without_code_or_method() {
        let (_, requests, _) = service();
        requests.tcp_connection("go-demo");
        assert_eq!(requests_of(&requests, None, None, "tcp"), 1);
        let mut registry = prometheus_client::registry::Registry::default();
        registry.register("r", "requests", requests.0.clone());
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(
            text.contains("r_total{service=\"go-demo\",protocol=\"tcp\"} 1\n"),
            "{text}"
        );
    }

    #[test]
    fn protocols_use_alpn_spelling() {
        assert_eq!(protocol_label(Version::HTTP_11), "http/1.1");
        assert_eq!(protocol_label(Version::HTTP_2), "h2");
        assert_eq!(protocol_label(Version::HTTP_10), "http/1.0");
    }
}

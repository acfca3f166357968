//! Prometheus metrics on the API's `/metrics`: user space's request counters, and the kernel's
//! per-backend counters read from the pinned maps at each scrape (summed over CPUs), so both
//! come from one registry and agree on labels.
use std::{
    collections::HashMap,
    net::SocketAddr,
    path::PathBuf,
    sync::{Arc, RwLock},
};

use hyper::Method;
use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{
        counter::Counter,
        family::Family,
        gauge::Gauge,
        histogram::{Histogram, exponential_buckets},
    },
    registry::Registry,
};

use crate::{tls::CertStore, upstream::ByteCounters};

mod client_errors;
mod collectors;

pub use client_errors::{ClientErrorReason, ClientErrors};
use collectors::{BackendCollector, CertCollector};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    service: String,
    code: u16,
    method: String,
}

/// Labels of the user-space TCP-mode relay's per-service counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct L4Labels {
    /// The service.
    pub service: String,
    /// Its `srcPort`.
    pub port: String,
}

/// Counters of the user-space TCP-mode relay (the slow path).
#[derive(Clone, Debug, Default)]
pub struct L4Metrics {
    /// Connections relayed, all services.
    pub connections: Counter,
    /// Connections relayed, per service and port.
    pub by_service: Family<L4Labels, Counter>,
    /// Bytes relayed, both ways, all services.
    pub relayed_bytes: Counter,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ServiceLabel {
    service: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BackendRequestLabels {
    service: String,
    backend: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ByteLabels {
    backend: String,
    direction: &'static str,
}

/// User space's TCP payload bytes per backend (`flowproxy_backend_tcp_bytes_total`), counted by
/// the upstream connector: what the kernel's frame counts must cover, headers aside.
#[derive(Clone, Debug, Default)]
pub struct BackendBytes(Family<ByteLabels, Counter>);

impl ByteCounters for BackendBytes {
    fn for_backend(&self, backend: SocketAddr) -> (Counter, Counter) {
        let counter = |direction| {
            self.0
                .get_or_create(&ByteLabels {
                    backend: backend.to_string(),
                    direction,
                })
                .clone()
        };
        (counter("in"), counter("out"))
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: &'static str,
}

/// Every metric flowproxy exports.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    durations: Family<ServiceLabel, Histogram>,
    backend_requests: Family<BackendRequestLabels, Counter>,
    backend_bytes: BackendBytes,
    open_connections: Gauge,
    config_reloads: Counter,
    handshakes: Family<ResultLabel, Counter>,
    client_errors: ClientErrors,
    retries: Family<ServiceLabel, Counter>,
    l4: L4Metrics,
    /// Handles per service, so the request path skips the label look-ups.
    services: RwLock<HashMap<String, Arc<ServiceMetrics>>>,
}

/// One service's request metrics, with the label sets it has used so far resolved to their
/// counters (a handful each: status codes times methods, and the service's replicas).
#[derive(Debug)]
pub struct ServiceMetrics {
    name: String,
    durations: Histogram,
    retries: Counter,
    requests: Family<RequestLabels, Counter>,
    backend_requests: Family<BackendRequestLabels, Counter>,
    by_code: RwLock<Vec<(u16, &'static str, Counter)>>,
    by_backend: RwLock<Vec<(SocketAddr, Counter)>>,
}

impl ServiceMetrics {
    /// The service's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Records one answered request (and, if it reached one, the replica).
    pub fn observe(&self, replica: Option<SocketAddr>, code: u16, method: &Method, seconds: f64) {
        let method = method_label(method);
        if let Some(backend) = replica {
            self.backend_counter(backend).inc();
        }
        self.request_counter(code, method).inc();
        self.durations.observe(seconds);
    }

    /// Counts one request sent again to another replica.
    pub fn retried(&self) {
        self.retries.inc();
    }

    fn request_counter(&self, code: u16, method: &'static str) -> Counter {
        let known = read(&self.by_code)
            .iter()
            .find(|(c, m, _)| *c == code && *m == method)
            .map(|(_, _, counter)| counter.clone());
        known.unwrap_or_else(|| {
            let counter = self
                .requests
                .get_or_create(&RequestLabels {
                    service: self.name.clone(),
                    code,
                    method: method.to_owned(),
                })
                .clone();
            write(&self.by_code).push((code, method, counter.clone()));
            counter
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

/// How many replicas' counters one service keeps at hand.
const MAX_CACHED_BACKENDS: usize = 64;

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Metrics {
    /// A registry; with `pin_dir`, the kernel's backend counters are exported too; the
    /// certificates' expiry comes from `certs` at each scrape.
    pub fn new(pin_dir: Option<PathBuf>, certs: Arc<CertStore>) -> Arc<Self> {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "flowproxy_service_requests",
            "HTTP requests by service, status code and method",
            requests.clone(),
        );
        let durations = Family::<ServiceLabel, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.0005, 2.0, 16))
        });
        registry.register(
            "flowproxy_service_request_duration_seconds",
            "Time from request to response headers, by service",
            durations.clone(),
        );
        let backend_requests = Family::<BackendRequestLabels, Counter>::default();
        registry.register(
            "flowproxy_backend_requests",
            "HTTP requests forwarded to each backend",
            backend_requests.clone(),
        );
        let backend_bytes = BackendBytes::default();
        registry.register(
            "flowproxy_backend_tcp_bytes",
            "TCP payload bytes user space read from (in) and wrote to (out) each backend",
            backend_bytes.0.clone(),
        );
        let open_connections = Gauge::default();
        registry.register(
            "flowproxy_open_connections",
            "Client connections open on the HTTP listener",
            open_connections.clone(),
        );
        let config_reloads = Counter::default();
        registry.register(
            "flowproxy_config_reloads",
            "Configuration changes applied",
            config_reloads.clone(),
        );
        let handshakes = Family::<ResultLabel, Counter>::default();
        registry.register(
            "flowproxy_tls_handshakes",
            "TLS handshakes on the HTTPS listener, by result",
            handshakes.clone(),
        );
        let client_errors = ClientErrors::with_all_reasons();
        registry.register(
            "flowproxy_client_errors",
            "Clients refused or cut off for what they sent or failed to send, by reason \
             (timeout_first_byte, timeout_handshake, timeout_head, timeout_body, \
             header_too_large, bad_host, bad_framing, upgrade_refused)",
            client_errors.0.clone(),
        );
        let retries = Family::<ServiceLabel, Counter>::default();
        registry.register(
            "flowproxy_service_retries",
            "Requests sent again to another replica after the first one failed before answering",
            retries.clone(),
        );
        let l4 = L4Metrics::default();
        registry.register(
            "flowproxy_l4_connections",
            "TCP-mode connections relayed in user space",
            l4.connections.clone(),
        );
        registry.register(
            "flowproxy_l4_service_connections",
            "TCP-mode connections relayed in user space (the slow path), per service",
            l4.by_service.clone(),
        );
        registry.register(
            "flowproxy_l4_relayed_bytes",
            "Bytes the user-space TCP-mode relay copied, both ways",
            l4.relayed_bytes.clone(),
        );
        registry.register_collector(Box::new(CertCollector(certs)));
        if let Some(dir) = pin_dir {
            registry.register_collector(Box::new(BackendCollector { pin_dir: dir }));
        }
        Arc::new(Self {
            registry,
            requests,
            durations,
            backend_requests,
            backend_bytes,
            open_connections,
            config_reloads,
            handshakes,
            client_errors,
            retries,
            l4,
            services: RwLock::default(),
        })
    }

    /// The request metrics of `service` (`-` for requests no route took), created on first
    /// use and then shared: recording a request through it hashes no label set.
    pub fn service(&self, service: &str) -> Arc<ServiceMetrics> {
        if let Some(found) = read(&self.services).get(service) {
            return Arc::clone(found);
        }
        let created = Arc::new(ServiceMetrics {
            name: service.to_owned(),
            durations: self
                .durations
                .get_or_create(&ServiceLabel {
                    service: service.to_owned(),
                })
                .clone(),
            retries: self
                .retries
                .get_or_create(&ServiceLabel {
                    service: service.to_owned(),
                })
                .clone(),
            requests: self.requests.clone(),
            backend_requests: self.backend_requests.clone(),
            by_code: RwLock::default(),
            by_backend: RwLock::default(),
        });
        let mut services = write(&self.services);
        Arc::clone(services.entry(service.to_owned()).or_insert(created))
    }

    /// The per-backend byte counters, for the upstream connector.
    pub fn backend_bytes(&self) -> BackendBytes {
        self.backend_bytes.clone()
    }

    /// The open-connections gauge, for the listener to move.
    pub fn open_connections(&self) -> Gauge {
        self.open_connections.clone()
    }

    /// The config-reloads counter, for the control plane to count applied changes.
    pub fn config_reloads(&self) -> Counter {
        self.config_reloads.clone()
    }

    /// The handshake counters `(ok, error)`, for the HTTPS listener.
    pub fn handshakes(&self) -> (Counter, Counter) {
        let get = |result| {
            self.handshakes
                .get_or_create(&ResultLabel { result })
                .clone()
        };
        (get("ok"), get("error"))
    }

    /// The client-error counters, for the listeners and the request path.
    pub fn client_errors(&self) -> ClientErrors {
        self.client_errors.clone()
    }

    /// The counter of TCP-mode connections relayed in user space.
    pub fn l4(&self) -> L4Metrics {
        self.l4.clone()
    }

    /// The OpenMetrics text of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::warn!(error = %e, "encoding metrics failed");
        }
        out
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn odd_methods_share_one_label() {
        assert_eq!(method_label(&Method::GET), "GET");
        let odd = Method::from_bytes(b"FOO1").unwrap();
        assert_eq!(method_label(&odd), "OTHER");
    }
}

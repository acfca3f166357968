//! Prometheus metrics on the API's `/metrics`: user space's request counters, and the kernel's
//! per-backend counters read from the pinned maps at each scrape (summed over CPUs), so both
//! come from one registry and agree on labels. A scrape gets OpenMetrics or the Prometheus
//! 0.0.4 text format, as its `Accept` header asks (`exposition.rs`).
use std::{
    collections::HashMap,
    path::PathBuf,
    sync::{Arc, RwLock},
};

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{
        counter::Counter,
        family::Family,
        gauge::Gauge,
        histogram::{Histogram, exponential_buckets},
        info::Info,
    },
    registry::Registry,
};

use crate::{
    control::{ChangeCounters, ControlPlane},
    tls::CertStore,
};

mod backend_bytes;
mod client_errors;
mod collectors;
mod exposition;
mod fastpath;
mod process;
mod replicas;
mod service;

pub use backend_bytes::BackendBytes;
pub use client_errors::{ClientErrorReason, ClientErrors};
use collectors::{BackendCollector, CertCollector};
pub use exposition::Format;
use fastpath::FastPathCollector;
use process::ProcessCollector;
use replicas::{ControlSlot, ReplicaCollector};
use service::{BackendRequestLabels, DurationLabels};
pub use service::{RequestCounters, ServiceMetrics};

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
    /// The request counters, where a relayed connection counts with `protocol="tcp"`.
    pub requests: RequestCounters,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ServiceLabel {
    service: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: &'static str,
}

/// Every metric flowproxy exports.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: RequestCounters,
    durations: Family<DurationLabels, Histogram>,
    backend_requests: Family<BackendRequestLabels, Counter>,
    backend_bytes: BackendBytes,
    open_connections: Gauge,
    parked_connections: Gauge,
    config_reloads: Counter,
    config_changes: ChangeCounters,
    handshakes: Family<ResultLabel, Counter>,
    client_errors: ClientErrors,
    retries: Family<ServiceLabel, Counter>,
    l4: L4Metrics,
    control: ControlSlot,
    /// Handles per service, so the request path skips the label look-ups.
    services: RwLock<HashMap<String, Arc<ServiceMetrics>>>,
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Metrics {
    /// A registry; with `pin_dir`, the kernel's backend and fast-path counters are exported
    /// too; the certificates' expiry comes from `certs` at each scrape.
    pub fn new(pin_dir: Option<PathBuf>, certs: Arc<CertStore>) -> Arc<Self> {
        let mut registry = Registry::default();
        let requests = RequestCounters::default();
        registry.register(
            "flowproxy_service_requests",
            "Requests by service, status code, method and protocol (http/1.0, http/1.1, h2); \
             TCP-mode connections relayed in user space count with protocol tcp and no code \
             or method",
            requests.0.clone(),
        );
        let durations = Family::<DurationLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.0005, 2.0, 16))
        });
        registry.register(
            "flowproxy_service_request_duration_seconds",
            "Time from request to response headers, by service and status code",
            durations.clone(),
        );
        let backend_requests = Family::<BackendRequestLabels, Counter>::default();
        registry.register(
            "flowproxy_backend_requests",
            "HTTP requests forwarded to each backend",
            backend_requests.clone(),
        );
        let backend_bytes = BackendBytes::default();
        backend_bytes.register(&mut registry);
        let open_connections = Gauge::default();
        registry.register(
            "flowproxy_open_connections",
            "Client connections open on the HTTP listener",
            open_connections.clone(),
        );
        let parked_connections = Gauge::default();
        registry.register(
            "flowproxy_parked_connections",
            "Idle HTTP/1.1 client connections parked without buffers (a subset of the open ones)",
            parked_connections.clone(),
        );
        let config_reloads = Counter::default();
        registry.register(
            "flowproxy_config_reloads",
            "Configuration changes applied",
            config_reloads.clone(),
        );
        let config_changes = register_config_changes(&mut registry);
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
        let l4 = L4Metrics {
            requests: requests.clone(),
            ..L4Metrics::default()
        };
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
        registry.register(
            "flowproxy_build",
            "The running flowproxy's version (always 1)",
            Info::new([("version", env!("CARGO_PKG_VERSION"))]),
        );
        let control = ControlSlot::default();
        registry.register_collector(Box::new(ReplicaCollector(control.clone())));
        registry.register_collector(Box::new(CertCollector(certs)));
        registry.register_collector(Box::new(ProcessCollector));
        if let Some(dir) = pin_dir {
            registry.register_collector(Box::new(BackendCollector {
                pin_dir: dir.clone(),
            }));
            registry.register_collector(Box::new(FastPathCollector {
                pin_dir: dir,
                control: control.clone(),
                relayed: l4.by_service.clone(),
            }));
        }
        Arc::new(Self {
            registry,
            requests,
            durations,
            backend_requests,
            backend_bytes,
            open_connections,
            parked_connections,
            config_reloads,
            config_changes,
            handshakes,
            client_errors,
            retries,
            l4,
            control,
            services: RwLock::default(),
        })
    }

    /// Reads replicas and TCP-mode routes from `control` at each scrape from now on (the
    /// control plane is made after the metrics, as it counts into them).
    pub fn watch(&self, control: Arc<ControlPlane>) {
        if !self.control.set(control) {
            tracing::warn!("the metrics already read a control plane; the second is ignored");
        }
    }

    /// The request metrics of `service` (`-` for requests no route took), created on first
    /// use and then shared: recording a request through it hashes no label set.
    pub fn service(&self, service: &str) -> Arc<ServiceMetrics> {
        if let Some(found) = read(&self.services).get(service) {
            return Arc::clone(found);
        }
        let retries = self
            .retries
            .get_or_create(&ServiceLabel {
                service: service.to_owned(),
            })
            .clone();
        let created = Arc::new(ServiceMetrics::new(
            service,
            retries,
            self.requests.clone(),
            self.durations.clone(),
            self.backend_requests.clone(),
        ));
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

    /// The gauge of parked idle client connections, for the HTTP listeners.
    pub fn parked_connections(&self) -> Gauge {
        self.parked_connections.clone()
    }

    /// The config-reloads counter, for the control plane to count applied changes.
    pub fn config_reloads(&self) -> Counter {
        self.config_reloads.clone()
    }

    /// The counters of changes by result, for the control plane.
    pub fn config_changes(&self) -> ChangeCounters {
        self.config_changes.clone()
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

    /// The text of every metric in `format`.
    pub fn encode(&self, format: Format) -> String {
        format.encode(&self.registry).unwrap_or_else(|e| {
            tracing::warn!(error = %e, "encoding metrics failed");
            String::new()
        })
    }
}

/// `flowproxy_config_changes_total{result}` and `flowproxy_config_last_change_timestamp_seconds`,
/// registered; returns the control plane's handles on them. Each result's series is there from
/// the start, so `rate()` and alerts work before the first refusal.
fn register_config_changes(registry: &mut Registry) -> ChangeCounters {
    let by_result = Family::<ResultLabel, Counter>::default();
    // A counter's clone counts into the same series: the family exports what these count.
    let series = |result| by_result.get_or_create(&ResultLabel { result }).clone();
    let changes = ChangeCounters {
        applied: series("applied"),
        rejected: series("rejected"),
        failed: series("failed"),
        last_applied: Gauge::default(),
    };
    registry.register(
        "flowproxy_config_changes",
        "Configuration changes by result: applied; rejected (invalid or conflicting, a 4xx); \
         failed (valid but not saved, a 500)",
        by_result,
    );
    registry.register(
        "flowproxy_config_last_change_timestamp_seconds",
        "When the running configuration was last applied (unix time): the restore at start, \
         then each applied change",
        changes.last_applied.clone(),
    );
    changes
}

#[cfg(test)]
mod tests;

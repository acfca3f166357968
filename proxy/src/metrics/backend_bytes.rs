//! `flowproxy_backend_tcp_bytes_total{backend,direction}`: user space's TCP payload bytes per
//! backend. The upstream connector counts into it, so the type lives here and `upstream`
//! depends on `metrics`, never the other way round.
use std::net::SocketAddr;

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family},
    registry::Registry,
};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ByteLabels {
    backend: String,
    direction: &'static str,
}

/// User space's TCP payload bytes per backend (`flowproxy_backend_tcp_bytes_total`), counted by
/// the upstream connector: what the kernel's frame counts must cover, headers aside.
#[derive(Clone, Debug, Default)]
pub struct BackendBytes(Family<ByteLabels, Counter>);

impl BackendBytes {
    /// The counters of `backend`: `(read from it, written to it)`.
    pub fn for_backend(&self, backend: SocketAddr) -> (Counter, Counter) {
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

    /// Registers the family in `registry`.
    pub(super) fn register(&self, registry: &mut Registry) {
        registry.register(
            "flowproxy_backend_tcp_bytes",
            "TCP payload bytes user space read from (in) and wrote to (out) each backend",
            self.0.clone(),
        );
    }
}

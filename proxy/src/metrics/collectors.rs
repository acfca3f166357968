//! Metrics read at scrape time rather than counted: the certificates' expiry from the store,
//! and the kernel's per-backend counters from the pinned maps (summed over CPUs).
use std::{path::PathBuf, sync::Arc};

use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeMetric as _},
    metrics::{MetricType, counter::ConstCounter, gauge::ConstGauge},
};
use proxy_common::BackendCounters;

use crate::{
    dataplane::{BackendStat, read_backend_stats},
    tls::CertStore,
};

/// The served certificates' not-after times, read from the store at scrape time.
#[derive(Debug)]
pub(super) struct CertCollector(pub(super) Arc<CertStore>);

impl Collector for CertCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let mut family = encoder.encode_descriptor(
            "flowproxy_tls_cert_not_after_seconds",
            "When each served certificate expires (unix time)",
            None,
            MetricType::Gauge,
        )?;
        for info in self.0.list() {
            let labels = [("name", info.name)];
            ConstGauge::new(info.not_after).encode(family.encode_family(&labels)?)?;
        }
        Ok(())
    }
}

/// Reads `BACKENDS`/`BACKEND_STATS` at scrape time.
#[derive(Debug)]
pub(super) struct BackendCollector {
    pub(super) pin_dir: PathBuf,
}

impl Collector for BackendCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let stats = match read_backend_stats(&self.pin_dir) {
            Ok(stats) => stats,
            Err(e) => {
                tracing::debug!(error = %e, "no kernel counters for this scrape");
                return Ok(());
            }
        };
        encode_in_out(
            &mut encoder,
            "flowproxy_backend_packets",
            "Packets to and from each backend, counted in the kernel",
            &stats,
            |c| (c.packets_in, c.packets_out),
        )?;
        encode_in_out(
            &mut encoder,
            "flowproxy_backend_bytes",
            "Bytes (whole frames) to and from each backend, counted in the kernel",
            &stats,
            |c| (c.bytes_in, c.bytes_out),
        )?;
        let mut family = encoder.encode_descriptor(
            "flowproxy_backend_connections",
            "TCP connections opened to each backend, counted in the kernel",
            None,
            MetricType::Counter,
        )?;
        for s in &stats {
            let labels = [
                ("service", s.service.clone()),
                ("backend", s.backend.to_string()),
            ];
            ConstCounter::new(s.counters.connections).encode(family.encode_family(&labels)?)?;
        }
        Ok(())
    }
}

/// One counter family with a `direction` label ("in": from the backend, "out": to it).
fn encode_in_out(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    stats: &[BackendStat],
    in_out: impl Fn(&BackendCounters) -> (u64, u64),
) -> Result<(), std::fmt::Error> {
    let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
    for s in stats {
        let (from_backend, to_backend) = in_out(&s.counters);
        for (direction, value) in [("in", from_backend), ("out", to_backend)] {
            let labels = [
                ("service", s.service.clone()),
                ("backend", s.backend.to_string()),
                ("direction", direction.to_owned()),
            ];
            ConstCounter::new(value).encode(family.encode_family(&labels)?)?;
        }
    }
    Ok(())
}

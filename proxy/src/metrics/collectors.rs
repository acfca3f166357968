//! Metrics read at scrape time rather than counted: the certificates' expiry from the store
//! (per certificate and per domain), and the kernel's per-backend counters from the pinned
//! maps (summed over CPUs).
use std::{collections::BTreeMap, path::PathBuf, sync::Arc};

use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeMetric as _},
    metrics::{MetricType, counter::ConstCounter, gauge::ConstGauge},
};
use proxy_common::BackendCounters;

use crate::{
    dataplane::{BackendStat, read_backend_stats},
    tls::{CertInfo, CertStore},
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
        let certs = self.0.list();
        for info in &certs {
            let labels = [("name", info.name.as_str())];
            ConstGauge::new(info.not_after).encode(family.encode_family(&labels)?)?;
        }
        let mut family = encoder.encode_descriptor(
            "flowproxy_certificate_expiry_timestamp_seconds",
            "When the certificate served for each domain (SAN) expires (unix time)",
            None,
            MetricType::Gauge,
        )?;
        for (domain, not_after) in expiry_by_domain(&certs) {
            let labels = [("domain", domain)];
            ConstGauge::new(not_after).encode(family.encode_family(&labels)?)?;
        }
        Ok(())
    }
}

/// Each domain's expiry, once: a domain two certificates name is served the first one's (the
/// store lists them in name order and indexes the first), so that one's expiry counts.
fn expiry_by_domain(certs: &[CertInfo]) -> BTreeMap<&str, i64> {
    let mut domains = BTreeMap::new();
    for info in certs {
        for domain in &info.sans {
            domains.entry(domain.as_str()).or_insert(info.not_after);
        }
    }
    domains
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

#[cfg(test)]
mod tests {
    use super::*;

    fn cert(name: &str, sans: &[&str], not_after: i64) -> CertInfo {
        CertInfo {
            name: name.into(),
            sans: sans.iter().map(|s| s.to_string()).collect(),
            issuer: "CN=test".into(),
            not_after,
            source: "file".into(),
        }
    }

    #[test]
    fn each_domain_gets_the_expiry_of_the_certificate_served_for_it() {
        let certs = [
            cert("a", &["example.com", "*.example.com"], 100),
            cert("b", &["example.com", "other.example"], 200),
        ];
        let by_domain: Vec<_> = expiry_by_domain(&certs).into_iter().collect();
        assert_eq!(
            by_domain,
            [
                ("*.example.com", 100),
                ("example.com", 100),
                ("other.example", 200)
            ]
        );
    }
}

//! The TCP-mode fast path's counters, read from the pinned maps at scrape time: flows XDP or TC took
//! from their SYN on (`flowproxy_l4_fast_flows_total`), SYNs it handed to the stack and why
//! (`flowproxy_l4_slow_flows_total{reason}`, then relayed in user space), and how full its
//! conntrack is (`flowproxy_conntrack_entries` of `flowproxy_conntrack_capacity`).
use std::path::PathBuf;

use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeMetric as _},
    metrics::{
        MetricType,
        counter::{ConstCounter, Counter},
        family::Family,
        gauge::ConstGauge,
    },
};

use super::{L4Labels, replicas::ControlSlot};
use crate::dataplane::{L4Stats, read_l4_stats};

/// Reads `L4_SERVICES`, `L4_SERVICE_STATS` and `FLOW_BUDGET` at scrape time; a service is
/// named by the route that owns its port now (`-` if none does any more).
#[derive(Debug)]
pub(super) struct FastPathCollector {
    pub(super) pin_dir: PathBuf,
    pub(super) control: ControlSlot,
    /// The relay's connections per service and port: those no program gave a reason for
    /// are `reason="not_attached"` (their SYN came in where no program runs).
    pub(super) relayed: Family<L4Labels, Counter>,
}

impl Collector for FastPathCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let stats = match read_l4_stats(&self.pin_dir) {
            Ok(stats) => stats,
            Err(e) => {
                tracing::debug!(error = %e, "no fast-path counters for this scrape");
                return Ok(());
            }
        };
        let snapshot = self.control.get().map(|c| c.snapshot_full());
        let service_of = |port: u16| {
            snapshot
                .as_ref()
                .and_then(|s| Some(s.routes.tcp_service(port)?.0.name.clone()))
                .unwrap_or_else(|| "-".to_owned())
        };
        let relayed = |service: &str, port: &str| {
            let labels = L4Labels {
                service: service.to_owned(),
                port: port.to_owned(),
            };
            self.relayed.get(&labels).map_or(0, |c| c.get())
        };
        encode(&mut encoder, &stats, service_of, relayed)
    }
}

/// The fast path's families for `stats`, each service named by `service_of` its port;
/// `relayed` gives the relay's connections of a (service, port).
fn encode(
    encoder: &mut DescriptorEncoder,
    stats: &L4Stats,
    service_of: impl Fn(u16) -> String,
    relayed: impl Fn(&str, &str) -> u64,
) -> Result<(), std::fmt::Error> {
    let services: Vec<_> = stats
        .services
        .iter()
        .map(|s| ([service_of(s.port), s.port.to_string()], &s.counters))
        .collect();
    let mut family = encoder.encode_descriptor(
        "flowproxy_l4_fast_flows",
        "TCP-mode flows the kernel (XDP or TC) forwarded from their SYN on (the fast path), per service",
        None,
        MetricType::Counter,
    )?;
    for ([service, port], counters) in &services {
        let labels = [("service", service.as_str()), ("port", port.as_str())];
        ConstCounter::new(counters.fast_flows).encode(family.encode_family(&labels)?)?;
    }
    let mut family = encoder.encode_descriptor(
        "flowproxy_l4_slow_flows",
        "TCP-mode SYNs the fast path handed to the stack, by reason (conntrack_full, no_port, \
         no_route, no_replica, no_neighbour, return_path, other_family), and relayed connections whose SYN \
         no program saw (not_attached: it came in on an interface without one); user space \
         relays them all",
        None,
        MetricType::Counter,
    )?;
    for ([service, port], counters) in &services {
        // Counted on the socket side: relayed, minus those a program gave a reason for.
        let not_attached = relayed(service, port).saturating_sub(counters.slow_with_reason());
        let reasons = counters.slow_reasons();
        for (reason, count) in reasons.into_iter().chain([("not_attached", not_attached)]) {
            let labels = [
                ("service", service.as_str()),
                ("port", port.as_str()),
                ("reason", reason),
            ];
            ConstCounter::new(count).encode(family.encode_family(&labels)?)?;
        }
    }
    let mut family = encoder.encode_descriptor(
        "flowproxy_l4_neighbour_misses",
        "Packets of fast-path flows whose replica's link-layer address was gone (handed to \
         the stack)",
        None,
        MetricType::Counter,
    )?;
    for ([service, port], counters) in &services {
        let labels = [("service", service.as_str()), ("port", port.as_str())];
        ConstCounter::new(counters.neighbour_misses).encode(family.encode_family(&labels)?)?;
    }
    let gauges = [
        (
            "flowproxy_conntrack_entries",
            "Fast-path flows held in conntrack now (as of the last sweep)",
            stats.flows,
        ),
        (
            "flowproxy_conntrack_capacity",
            "Most fast-path flows conntrack holds (--conntrack-size; 0: fast path off)",
            stats.flow_limit,
        ),
    ];
    for (name, help, value) in gauges {
        let family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
        ConstGauge::new(value).encode(family)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use prometheus_client::registry::Registry;
    use proxy_common::fastpath::{GlobalCounters, ServiceCounters};

    use super::*;
    use crate::dataplane::L4ServiceStat;

    #[derive(Debug)]
    struct Fixed(L4Stats);

    impl Collector for Fixed {
        fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
            let service_of = |port| if port == 5432 { "db" } else { "-" }.to_owned();
            // 40 relayed, 33 of them with a reason: 7 came in where no program runs.
            encode(&mut encoder, &self.0, service_of, |service, port| {
                if (service, port) == ("db", "5432") {
                    40
                } else {
                    0
                }
            })
        }
    }

    #[test]
    fn flows_are_split_by_path_and_reason_per_service() {
        let counters = ServiceCounters {
            fast_flows: 7,
            slow_conntrack_full: 1,
            slow_no_port: 2,
            slow_no_route: 3,
            slow_no_replica: 4,
            slow_no_neighbour: 5,
            neighbour_misses: 6,
            slow_return_path: 8,
            slow_other_family: 10,
        };
        let stats = L4Stats {
            flows: 9,
            flow_limit: 65536,
            services: vec![L4ServiceStat {
                port: 5432,
                slot: 0,
                ring_size: 3,
                counters,
            }],
            global: GlobalCounters::default(),
        };
        let mut registry = Registry::default();
        registry.register_collector(Box::new(Fixed(stats)));
        let text = super::super::Format::Prometheus.encode(&registry).unwrap();
        let db = "service=\"db\",port=\"5432\"";
        for line in [
            format!("flowproxy_l4_fast_flows_total{{{db}}} 7"),
            format!("flowproxy_l4_slow_flows_total{{{db},reason=\"conntrack_full\"}} 1"),
            format!("flowproxy_l4_slow_flows_total{{{db},reason=\"no_port\"}} 2"),
            format!("flowproxy_l4_slow_flows_total{{{db},reason=\"no_route\"}} 3"),
            format!("flowproxy_l4_slow_flows_total{{{db},reason=\"no_replica\"}} 4"),
            format!("flowproxy_l4_slow_flows_total{{{db},reason=\"no_neighbour\"}} 5"),
            format!("flowproxy_l4_slow_flows_total{{{db},reason=\"return_path\"}} 8"),
            format!("flowproxy_l4_slow_flows_total{{{db},reason=\"other_family\"}} 10"),
            format!("flowproxy_l4_slow_flows_total{{{db},reason=\"not_attached\"}} 7"),
            format!("flowproxy_l4_neighbour_misses_total{{{db}}} 6"),
            "flowproxy_conntrack_entries 9".to_owned(),
            "flowproxy_conntrack_capacity 65536".to_owned(),
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
        }
    }
}

//! `flowproxy_service_replicas{service}` and `flowproxy_replica_up{service,replica}`, read from
//! the control plane's snapshot at scrape time: the replicas each service's last look-up found,
//! and whether each is in rotation or ejected after a failure (passive health checking).
use std::{
    collections::BTreeMap,
    net::SocketAddr,
    sync::{Arc, OnceLock},
};

use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeMetric as _},
    metrics::{MetricType, gauge::ConstGauge},
};

use crate::control::{ControlPlane, Snapshot};

/// The control plane, set once it exists (it is made after the metrics, whose counters it
/// takes); until then the collectors that read it export nothing. Clones share the slot.
#[derive(Clone, Default)]
pub(super) struct ControlSlot(Arc<OnceLock<Arc<ControlPlane>>>);

impl ControlSlot {
    /// The control plane, once set.
    pub(super) fn get(&self) -> Option<&Arc<ControlPlane>> {
        self.0.get()
    }

    /// Sets it; `false` if it was set already.
    pub(super) fn set(&self, control: Arc<ControlPlane>) -> bool {
        self.0.set(control).is_ok()
    }
}

impl std::fmt::Debug for ControlSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.get().is_some() {
            "ControlSlot(set)"
        } else {
            "ControlSlot(unset)"
        })
    }
}

/// Each service's replicas and whether each is in rotation, by service name, replicas in
/// address order. A replica several destinations share is up only if no set ejected it.
pub(super) fn replica_health(snapshot: &Snapshot) -> BTreeMap<String, BTreeMap<SocketAddr, bool>> {
    snapshot
        .service_sets()
        .map(|(service, sets)| {
            let mut replicas = BTreeMap::new();
            for (addr, up) in sets.iter().flat_map(|set| set.health()) {
                *replicas.entry(addr).or_insert(true) &= up;
            }
            (service.clone(), replicas)
        })
        .collect()
}

/// Exports the replica gauges of the current snapshot.
#[derive(Debug)]
pub(super) struct ReplicaCollector(pub(super) ControlSlot);

impl Collector for ReplicaCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(control) = self.0.get() else {
            return Ok(());
        };
        let health = replica_health(&control.snapshot());
        let mut family = encoder.encode_descriptor(
            "flowproxy_service_replicas",
            "Replicas the service's last look-up found (tasks.<service>, or the VIP)",
            None,
            MetricType::Gauge,
        )?;
        for (service, replicas) in &health {
            let labels = [("service", service.as_str())];
            ConstGauge::new(replicas.len() as i64).encode(family.encode_family(&labels)?)?;
        }
        let mut family = encoder.encode_descriptor(
            "flowproxy_replica_up",
            "1 while the replica is in rotation, 0 while it is ejected after a refused or \
             failed connection",
            None,
            MetricType::Gauge,
        )?;
        for (service, replicas) in &health {
            for (replica, up) in replicas {
                let labels = [
                    ("service", service.clone()),
                    ("replica", replica.to_string()),
                ];
                ConstGauge::new(i64::from(*up)).encode(family.encode_family(&labels)?)?;
            }
        }
        Ok(())
    }
}

//! Reading the fast path's pinned counters: per TCP-mode service, how many flows took the
//! fast path and why others did not; and the flows held now.
use std::path::Path;

use aya::maps::{Array, HashMap, MapData, PerCpuArray};
use proxy_common::{
    fastpath::{GlobalCounters, ServiceCounters, ServiceEntry, ServiceKey, budget},
    map_names,
};
use serde::Serialize;

use super::{error::DataPlaneError, stats::open};

/// One TCP-mode service's fast-path counters, summed over CPUs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct L4ServiceStat {
    /// `srcPort`.
    pub port: u16,
    /// The service's slot.
    pub slot: u32,
    /// Length of its Maglev ring (0: no replica).
    pub ring_size: u32,
    /// The counters.
    #[serde(flatten)]
    pub counters: ServiceCounters,
}

/// The fast path as a whole.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct L4Stats {
    /// Flows held now (created minus removed, as of the last sweep).
    pub flows: u64,
    /// The most flows at once (`--conntrack-size`; 0: fast path off).
    pub flow_limit: u64,
    /// Per service.
    pub services: Vec<L4ServiceStat>,
    /// Not tied to a service.
    pub global: GlobalCounters,
}

/// Reads the fast path's counters pinned under `dir`.
pub fn read_l4_stats(dir: &Path) -> Result<L4Stats, DataPlaneError> {
    if !dir.join(map_names::L4_SERVICES).exists() {
        return Err(DataPlaneError::NotPinned { dir: dir.into() });
    }
    let err = |map| move |source| DataPlaneError::Map { map, source };
    let services: HashMap<MapData, ServiceKey, ServiceEntry> = open(dir, map_names::L4_SERVICES)?;
    let stats: PerCpuArray<MapData, ServiceCounters> = open(dir, map_names::L4_SERVICE_STATS)?;
    let globals: PerCpuArray<MapData, GlobalCounters> = open(dir, map_names::L4_GLOBAL_STATS)?;
    let flow_budget: Array<MapData, u64> = open(dir, map_names::FLOW_BUDGET)?;
    let mut out = Vec::new();
    for entry in services.iter() {
        let (key, value) = entry.map_err(err(map_names::L4_SERVICES))?;
        let per_cpu = stats
            .get(&value.slot, 0)
            .map_err(err(map_names::L4_SERVICE_STATS))?;
        let total: ServiceCounters = proxy_common::sum(per_cpu.iter());
        out.push(L4ServiceStat {
            port: key.port,
            slot: value.slot,
            ring_size: value.ring_size,
            counters: total,
        });
    }
    out.sort_by_key(|s| s.port);
    let per_cpu = globals
        .get(&0, 0)
        .map_err(err(map_names::L4_GLOBAL_STATS))?;
    let global: GlobalCounters = proxy_common::sum(per_cpu.iter());
    let read = |slot| {
        flow_budget
            .get(&slot, 0)
            .map_err(err(map_names::FLOW_BUDGET))
    };
    let (created, removed, limit) = (
        read(budget::CREATED)?,
        read(budget::REMOVED)?,
        read(budget::LIMIT)?,
    );
    Ok(L4Stats {
        flows: created.saturating_sub(removed),
        flow_limit: limit,
        services: out,
        global,
    })
}

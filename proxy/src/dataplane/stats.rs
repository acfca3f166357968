//! Reading the pinned counters, with no running flowproxy needed.
use std::path::Path;

use aya::maps::{HashMap, Map, MapData, PerCpuArray};
use proxy_common::{
    BackendCounters, BackendKey, BackendSlot, IfaceCounters, fastpath::hook, map_names,
};
use serde::Serialize;

use super::{backends, error::DataPlaneError, netif};

/// Ingress counters of one interface, summed over CPUs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IfaceStat {
    /// The interface index the program saw.
    pub ifindex: u32,
    /// Its name, if it still exists.
    pub interface: Option<String>,
    /// The counter slot.
    pub slot: u32,
    /// Frames received.
    pub packets: u64,
    /// Bytes received.
    pub bytes: u64,
    /// The fast-path program its ingress runs: `"xdp"`, `"tc"`, or `None` (not attached now).
    pub hook: Option<&'static str>,
}

/// Reads every interface's counters from the maps pinned under `dir`.
pub fn read_iface_stats(dir: &Path) -> Result<Vec<IfaceStat>, DataPlaneError> {
    let slots_path = dir.join(map_names::IFACE_SLOTS);
    if !slots_path.exists() {
        return Err(DataPlaneError::NotPinned { dir: dir.into() });
    }
    let slots: HashMap<MapData, u32, u32> = open(dir, map_names::IFACE_SLOTS)?;
    let stats: PerCpuArray<MapData, IfaceCounters> = open(dir, map_names::IFACE_STATS)?;
    let hooks: HashMap<MapData, u32, u32> = open(dir, map_names::IFACE_HOOKS)?;
    let map_err = |source| DataPlaneError::Map {
        map: map_names::IFACE_STATS,
        source,
    };
    let mut out = Vec::new();
    for entry in slots.iter() {
        let (ifindex, slot) = entry.map_err(|source| DataPlaneError::Map {
            map: map_names::IFACE_SLOTS,
            source,
        })?;
        let total: IfaceCounters = proxy_common::sum(stats.get(&slot, 0).map_err(map_err)?.iter());
        out.push(IfaceStat {
            ifindex,
            interface: netif::name_of(ifindex),
            slot,
            packets: total.packets,
            bytes: total.bytes,
            hook: match hooks.get(&ifindex, 0) {
                Ok(hook::XDP) => Some("xdp"),
                Ok(hook::TC) => Some("tc"),
                _ => None,
            },
        });
    }
    out.sort_by_key(|s| s.slot);
    Ok(out)
}

/// Traffic of one backend, summed over CPUs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BackendStat {
    /// The service the backend serves.
    pub service: String,
    /// The replica's address and port.
    pub backend: std::net::SocketAddr,
    /// The counter slot.
    pub slot: u32,
    /// The counters.
    #[serde(flatten)]
    pub counters: BackendCounters,
}

/// Reads every counted backend's traffic from the maps pinned under `dir`.
pub fn read_backend_stats(dir: &Path) -> Result<Vec<BackendStat>, DataPlaneError> {
    if !dir.join(map_names::BACKENDS).exists() {
        return Err(DataPlaneError::NotPinned { dir: dir.into() });
    }
    let backends: HashMap<MapData, BackendKey, BackendSlot> = open(dir, map_names::BACKENDS)?;
    let stats: PerCpuArray<MapData, BackendCounters> = open(dir, map_names::BACKEND_STATS)?;
    let map_err = |map| move |source| DataPlaneError::Map { map, source };
    let mut out = Vec::new();
    for entry in backends.iter() {
        let (key, value) = entry.map_err(map_err(map_names::BACKENDS))?;
        let per_cpu = stats
            .get(&value.slot, 0)
            .map_err(map_err(map_names::BACKEND_STATS))?;
        let total: BackendCounters = proxy_common::sum(per_cpu.iter());
        out.push(BackendStat {
            service: backends::service_of(&value),
            backend: backends::addr_of(&key),
            slot: value.slot,
            counters: total,
        });
    }
    out.sort_by(|a, b| (&a.service, a.backend).cmp(&(&b.service, b.backend)));
    Ok(out)
}

/// Opens the map pinned as `name` under `dir`.
pub(super) fn open<T>(dir: &Path, name: &'static str) -> Result<T, DataPlaneError>
where
    T: TryFrom<Map, Error = aya::maps::MapError>,
{
    let path = dir.join(name);
    let data = MapData::from_pin(&path).map_err(|source| map_error(name, source))?;
    let map = Map::from_map_data(data).map_err(|source| map_error(name, source))?;
    T::try_from(map).map_err(|source| map_error(name, source))
}

fn map_error(map: &'static str, source: aya::maps::MapError) -> DataPlaneError {
    if super::caused_by_permission(&source) {
        return DataPlaneError::NoPrivilege {
            action: format!("read the pinned map {map}"),
        };
    }
    DataPlaneError::Map { map, source }
}

//! The object's maps as typed handles, taken out of the loaded object once at start: every
//! other module gets the one it writes from here instead of looking it up by name and
//! converting it again.
use aya::{
    Ebpf,
    maps::{Array, HashMap, Map, MapData, MapError, PerCpuArray},
};
use proxy_common::{
    BackendCounters, BackendKey, BackendSlot, IfaceCounters,
    fastpath::{FastPathConfig, Flow, FlowKey, ServiceCounters, ServiceEntry, ServiceKey},
    map_names,
};

use super::error::DataPlaneError;

/// The maps user space writes (the ones it only reads through pins are opened there).
pub struct Maps {
    /// `IFACE_SLOTS`: ifindex → counter slot.
    pub iface_slots: HashMap<MapData, u32, u32>,
    /// `IFACE_HOOKS`: ifindex → the fast-path program it runs.
    pub iface_hooks: HashMap<MapData, u32, u32>,
    /// `IFACE_STATS`: per-interface counters (zeroed when a slot is handed out).
    pub iface_stats: PerCpuArray<MapData, IfaceCounters>,
    /// `BACKENDS`: the counted replicas.
    pub backends: HashMap<MapData, BackendKey, BackendSlot>,
    /// `BACKEND_STATS`: per-replica counters.
    pub backend_stats: PerCpuArray<MapData, BackendCounters>,
    /// `REALS`: backend slot → address.
    pub reals: Array<MapData, BackendKey>,
    /// `L4_SERVICES`: the fast path's services.
    pub l4_services: HashMap<MapData, ServiceKey, ServiceEntry>,
    /// `L4_SERVICE_STATS`: per-service fast/slow counters.
    pub l4_service_stats: PerCpuArray<MapData, ServiceCounters>,
    /// `MAGLEV`: the rings.
    pub maglev: Array<MapData, u32>,
    /// `CONNTRACK`: the flows.
    pub conntrack: HashMap<MapData, FlowKey, Flow>,
    /// `FLOW_BUDGET`: created, removed, limit.
    pub flow_budget: Array<MapData, u64>,
    /// `L4_CONFIG`: the source-port range.
    pub l4_config: Array<MapData, FastPathConfig>,
}

impl Maps {
    /// Takes the maps out of `ebpf` (whose programs keep using them).
    pub fn take(ebpf: &mut Ebpf) -> Result<Self, DataPlaneError> {
        Ok(Self {
            iface_slots: take(ebpf, map_names::IFACE_SLOTS)?,
            iface_hooks: take(ebpf, map_names::IFACE_HOOKS)?,
            iface_stats: take(ebpf, map_names::IFACE_STATS)?,
            backends: take(ebpf, map_names::BACKENDS)?,
            backend_stats: take(ebpf, map_names::BACKEND_STATS)?,
            reals: take(ebpf, map_names::REALS)?,
            l4_services: take(ebpf, map_names::L4_SERVICES)?,
            l4_service_stats: take(ebpf, map_names::L4_SERVICE_STATS)?,
            maglev: take(ebpf, map_names::MAGLEV)?,
            conntrack: take(ebpf, map_names::CONNTRACK)?,
            flow_budget: take(ebpf, map_names::FLOW_BUDGET)?,
            l4_config: take(ebpf, map_names::L4_CONFIG)?,
        })
    }
}

fn take<M: TryFrom<Map, Error = MapError>>(
    ebpf: &mut Ebpf,
    name: &'static str,
) -> Result<M, DataPlaneError> {
    let map = ebpf.take_map(name).ok_or(DataPlaneError::NoObject)?;
    M::try_from(map).map_err(map_err(name))
}

/// The error of an operation on map `map`.
pub fn map_err(map: &'static str) -> impl Fn(MapError) -> DataPlaneError {
    move |source| DataPlaneError::Map { map, source }
}

//! Every map the programs use, as BTF maps so `bpftool map dump` shows typed keys and values.
//! Names are the pin file names under the pin directory (`proxy_common::map_names`); user space
//! pins each one by name when it loads the object.
use aya_ebpf::{
    btf_maps::{Array, HashMap, LruHashMap, PerCpuArray},
    macros::btf_map,
};
use proxy_common::{
    BackendCounters, BackendKey, BackendSlot, IfaceCounters,
    fastpath::{
        FastPathConfig, Flow, FlowKey, GlobalCounters, MAGLEV_ENTRIES, MAX_L4_SERVICES,
        ServiceCounters, ServiceEntry, ServiceKey, budget,
    },
};

/// One entry: the `MAP_LAYOUT_VERSION` of the pinned maps, written by user space. A restart
/// that finds another version replaces every pin instead of reusing one of the wrong layout.
#[btf_map]
pub static LAYOUT: Array<u32, 1> = Array::new();

/// `ifindex -> slot` in `IFACE_STATS`, written by user space when it attaches to an interface.
#[btf_map]
pub static IFACE_SLOTS: HashMap<u32, u32, 64> = HashMap::new();

/// `ifindex -> fastpath::hook`, written by user space when it attaches to an interface.
#[btf_map]
pub static IFACE_HOOKS: HashMap<u32, u32, 64> = HashMap::new();

/// Per-CPU ingress counters, one slot per attached interface.
#[btf_map]
pub static IFACE_STATS: PerCpuArray<IfaceCounters, 64> = PerCpuArray::new();

/// The backends to count, written by user space in step with replica discovery.
#[btf_map]
pub static BACKENDS: HashMap<BackendKey, BackendSlot, 4096> = HashMap::new();

/// Per-CPU counters of each backend, indexed by `BackendSlot::slot`.
#[btf_map]
pub static BACKEND_STATS: PerCpuArray<BackendCounters, 4096> = PerCpuArray::new();

/// `backend slot -> address`, so rings can hold slots (written with `BACKENDS`).
#[btf_map]
pub static REALS: Array<BackendKey, 4096> = Array::new();

/// The TCP-mode services the fast path forwards.
#[btf_map]
pub static L4_SERVICES: HashMap<ServiceKey, ServiceEntry, 128> = HashMap::new();

/// Two Maglev rings per service; an entry is a backend slot + 1, 0 meaning none.
#[btf_map]
pub static MAGLEV: Array<u32, { MAGLEV_ENTRIES as usize }> = Array::new();

/// Conntrack: a forward and a reverse entry per flow. Shared by all CPUs since replies may
/// arrive on another queue than requests. User space sets the size from `--conntrack-size`.
#[btf_map]
pub static CONNTRACK: LruHashMap<FlowKey, Flow, 65536> = LruHashMap::new();

/// Flows created (by the programs), removed (by user space's sweep) and the most at once.
#[btf_map]
pub static FLOW_BUDGET: Array<u64, { budget::LEN as usize }> = Array::new();

/// The fast path's settings.
#[btf_map]
pub static L4_CONFIG: Array<FastPathConfig, 1> = Array::new();

/// Per service: flows fast-pathed, and why others were not.
#[btf_map]
pub static L4_SERVICE_STATS: PerCpuArray<ServiceCounters, { MAX_L4_SERVICES as usize }> =
    PerCpuArray::new();

/// Fast-path counters not tied to a service.
#[btf_map]
pub static L4_GLOBAL_STATS: PerCpuArray<GlobalCounters, 1> = PerCpuArray::new();

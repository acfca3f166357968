//! Every map the programs use, as BTF maps so `bpftool map dump` shows typed keys and values.
//! Names are the pin file names under the pin directory (`proxy_common::map_names`); user space
//! pins each one by name when it loads the object.
use aya_ebpf::{
    btf_maps::{Array, HashMap, PerCpuArray},
    macros::btf_map,
};
use proxy_common::{BackendCounters, BackendKey, BackendSlot, IfaceCounters};

/// One entry: the `MAP_LAYOUT_VERSION` of the pinned maps, written by user space. A restart
/// that finds another version replaces every pin instead of reusing one of the wrong layout.
#[btf_map]
pub static LAYOUT: Array<u32, 1> = Array::new();

/// `ifindex -> slot` in `IFACE_STATS`, written by user space when it attaches to an interface.
#[btf_map]
pub static IFACE_SLOTS: HashMap<u32, u32, 64> = HashMap::new();

/// Per-CPU ingress counters, one slot per attached interface.
#[btf_map]
pub static IFACE_STATS: PerCpuArray<IfaceCounters, 64> = PerCpuArray::new();

/// The backends to count, written by user space in step with replica discovery.
#[btf_map]
pub static BACKENDS: HashMap<BackendKey, BackendSlot, 4096> = HashMap::new();

/// Per-CPU counters of each backend, indexed by `BackendSlot::slot`.
#[btf_map]
pub static BACKEND_STATS: PerCpuArray<BackendCounters, 4096> = PerCpuArray::new();

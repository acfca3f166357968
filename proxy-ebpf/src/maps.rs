//! Every map the programs use. Names are the pin file names under the pin directory
//! (`proxy_common::map_names`); user space opens them by the same names.
use aya_ebpf::{
    macros::map,
    maps::{HashMap, PerCpuArray},
};
use proxy_common::{IfaceCounters, MAX_INTERFACES};

/// `ifindex -> slot` in `IFACE_STATS`, written by user space when it attaches to an interface.
#[map(name = "IFACE_SLOTS")]
pub static IFACE_SLOTS: HashMap<u32, u32> = HashMap::pinned(MAX_INTERFACES, 0);

/// Per-CPU ingress counters, one slot per attached interface.
#[map(name = "IFACE_STATS")]
pub static IFACE_STATS: PerCpuArray<IfaceCounters> = PerCpuArray::pinned(MAX_INTERFACES, 0);

//! Per-interface ingress counting, shared by the XDP and TC ingress programs.
use crate::{
    flows::Hook,
    maps::{IFACE_SLOTS, IFACE_STATS},
    packet::Packet,
};

/// Counts the packet for the interface it arrived on, if that interface has a slot.
#[inline(always)]
pub fn count<P: Packet + Hook>(p: &P) -> Option<()> {
    let ifindex = p.ingress_ifindex();
    // Safety: the value is a plain u32 that user space writes whole.
    let slot = unsafe { IFACE_SLOTS.get(&ifindex) }.copied()?;
    let counters = IFACE_STATS.get_ptr_mut(slot)?;
    let len = p.len() as u64;
    // Safety: the per-CPU slot belongs to this CPU alone while the program runs.
    unsafe {
        (*counters).packets += 1;
        (*counters).bytes += len;
    }
    Some(())
}

//! Per-interface ingress counting, shared by the XDP and TC ingress programs.
use crate::{
    backend_count::{self, Direction},
    flows::Hook,
    maps::{IFACE_SLOTS, IFACE_STATS, LAYOUT},
    packet::Packet,
};

/// What both ingress programs do before the fast path: count the packet for its interface
/// and, if it comes from a counted backend, for that backend.
#[inline(always)]
pub fn ingress<P: Packet + Hook>(p: &P) {
    // Referencing LAYOUT keeps it in the object (and so pinned) although only user space uses it.
    let _ = LAYOUT.get_ptr(0);
    count(p);
    backend_count::count(p, Direction::FromBackend);
}

/// Counts the packet for the interface it arrived on, if that interface has a slot.
#[inline(always)]
fn count<P: Packet + Hook>(p: &P) -> Option<()> {
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

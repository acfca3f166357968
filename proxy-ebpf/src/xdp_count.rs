//! XDP ingress program: counts every frame per interface and TCP segments per backend, and
//! always passes the frame on unchanged.
use aya_ebpf::{bindings::xdp_action, macros::xdp, programs::XdpContext};

use crate::{
    backend_count::{self, Direction},
    maps::{IFACE_SLOTS, IFACE_STATS, LAYOUT},
    packet::Packet,
};

/// Entry point attached to each `--interface`. Counting must never change what the interface
/// does, so every path ends in `XDP_PASS`.
#[xdp]
pub fn flowproxy_xdp(ctx: XdpContext) -> u32 {
    // Referencing LAYOUT keeps it in the object (and so pinned) although only user space uses it.
    let _ = LAYOUT.get_ptr(0);
    count_interface(&ctx);
    backend_count::count(&ctx, Direction::FromBackend);
    xdp_action::XDP_PASS
}

fn count_interface(ctx: &XdpContext) -> Option<()> {
    // Safety: `ctx.ctx` is the kernel's `xdp_md` for this invocation, valid for its duration.
    let ifindex = unsafe { (*ctx.ctx).ingress_ifindex };
    // Safety: the value is a plain u32 that user space writes whole.
    let slot = unsafe { IFACE_SLOTS.get(&ifindex) }.copied()?;
    let counters = IFACE_STATS.get_ptr_mut(slot)?;
    let len = ctx.len() as u64;
    // Safety: the per-CPU slot belongs to this CPU alone while the program runs.
    unsafe {
        (*counters).packets += 1;
        (*counters).bytes += len;
    }
    Some(())
}

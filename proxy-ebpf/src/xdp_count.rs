//! XDP ingress program: counts every frame per interface and TCP segments per backend, then
//! forwards frames of TCP-mode fast-path flows; everything else passes on unchanged.
use aya_ebpf::{bindings::xdp_action, macros::xdp, programs::XdpContext};

use crate::{
    backend_count::{self, Direction},
    fastpath,
    maps::{IFACE_SLOTS, IFACE_STATS, LAYOUT},
    packet::Packet,
};

/// Entry point attached to each `--interface`. Counting never changes what the interface does;
/// only frames of fast-path flows (see `fastpath`) are rewritten and redirected.
#[xdp]
pub fn flowproxy_xdp(ctx: XdpContext) -> u32 {
    // Referencing LAYOUT keeps it in the object (and so pinned) although only user space uses it.
    let _ = LAYOUT.get_ptr(0);
    count_interface(&ctx);
    backend_count::count(&ctx, Direction::FromBackend);
    fastpath::forward(&ctx).unwrap_or(xdp_action::XDP_PASS)
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

//! XDP ingress program: counts every frame per interface and always passes it on.
use aya_ebpf::{bindings::xdp_action, macros::xdp, programs::XdpContext};

use crate::maps::{IFACE_SLOTS, IFACE_STATS};

/// Entry point attached to each `--interface`. Counting must never change what the interface
/// does, so every path ends in `XDP_PASS`.
#[xdp]
pub fn flowproxy_xdp(ctx: XdpContext) -> u32 {
    try_count(&ctx);
    xdp_action::XDP_PASS
}

fn try_count(ctx: &XdpContext) -> Option<()> {
    // Safety: `ctx.ctx` is the kernel's `xdp_md` for this invocation, valid for its duration.
    let ifindex = unsafe { (*ctx.ctx).ingress_ifindex };
    // Safety: the value is a plain u32 that user space writes whole; a concurrent update can
    // only make us count into the old or the new slot.
    let slot = unsafe { IFACE_SLOTS.get(&ifindex) }.copied()?;
    let counters = IFACE_STATS.get_ptr_mut(slot)?;
    let len = (ctx.data_end() - ctx.data()) as u64;
    // Safety: the per-CPU slot belongs to this CPU alone while the program runs.
    unsafe {
        (*counters).packets += 1;
        (*counters).bytes += len;
    }
    Some(())
}

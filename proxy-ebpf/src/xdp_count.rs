//! XDP ingress program: counts every frame per interface and TCP segments per backend, then
//! forwards frames of TCP-mode fast-path flows; everything else passes on unchanged. Attached
//! to physical NICs (and wherever `--l4-fastpath` forces XDP).
use aya_ebpf::{bindings::xdp_action, macros::xdp, programs::XdpContext};

use crate::{iface_count, xdp_fast};

/// Entry point attached to each XDP interface. Counting never changes what the interface does;
/// only frames of fast-path flows (see `flows`) are rewritten and redirected.
#[xdp]
pub fn flowproxy_xdp(ctx: XdpContext) -> u32 {
    iface_count::ingress(&ctx);
    xdp_fast::forward(&ctx).unwrap_or(xdp_action::XDP_PASS)
}

//! The TC programs. Egress counts TCP segments sent to each backend (and new connections).
//! Ingress, on veths and other virtual devices, does what the XDP program does on NICs:
//! counts, then forwards fast-path flows (`tc_fast`).
use aya_ebpf::{bindings::TC_ACT_UNSPEC, macros::classifier, programs::TcContext};

use crate::{
    backend_count::{self, Direction},
    iface_count, tc_fast,
};

/// Entry point attached to the egress of each interface. `TC_ACT_UNSPEC` is tcx's "next":
/// the packet goes on as if we were not there.
#[classifier]
pub fn flowproxy_tc_egress(ctx: TcContext) -> i32 {
    backend_count::count(&ctx, Direction::ToBackend);
    TC_ACT_UNSPEC
}

/// Entry point attached to the ingress of each TC-mode interface.
#[classifier]
pub fn flowproxy_tc_ingress(ctx: TcContext) -> i32 {
    iface_count::ingress(&ctx);
    tc_fast::forward(&ctx).unwrap_or(TC_ACT_UNSPEC)
}

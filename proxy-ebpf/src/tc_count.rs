//! TC egress program: counts TCP segments sent to each backend (and new connections) and
//! always lets the packet continue.
use aya_ebpf::{bindings::TC_ACT_UNSPEC, macros::classifier, programs::TcContext};

use crate::backend_count::{self, Direction};

/// Entry point attached to the egress of each `--interface`. `TC_ACT_UNSPEC` is tcx's "next":
/// the packet goes on as if we were not there.
#[classifier]
pub fn flowproxy_tc_egress(ctx: TcContext) -> i32 {
    backend_count::count(&ctx, Direction::ToBackend);
    TC_ACT_UNSPEC
}

//! The fast path at XDP, for physical NICs whose driver runs XDP natively: frames arrive from a
//! wire, so their TCP checksum is always full and the rewrite fixes it arithmetically; the
//! frame is then redirected out of the replica's (or client's) interface.
use aya_ebpf::{bindings::xdp_action, helpers::bpf_redirect, programs::XdpContext};
use proxy_common::{
    fastpath::{FLOW_FORWARD, Flow},
    nat::{Rewrite, Tuple4},
};

use crate::{
    backend_count::{self, Direction},
    flows::{self, Egress},
    headers::{self, Frame, Headers},
};

/// Forwards the frame if it belongs to (or starts) a fast-path flow. `None`: pass it on.
#[inline(always)]
pub fn forward(ctx: &XdpContext) -> Option<u32> {
    let h = match headers::classify(ctx) {
        Frame::Tcp4(h) => h,
        Frame::Ipv6 => {
            flows::global(|g| g.ipv6_passed += 1);
            return None;
        }
        Frame::Other => return None,
    };
    // Safety: `h` points at header bytes checked to lie inside the frame.
    let (tuple, tcp_flags) = unsafe { (headers::tuple(&*h), (*h).flags) };
    let flow = flows::flow_for(ctx, &tuple, tcp_flags)?;
    Some(translate(ctx, h, &tuple, flow, tcp_flags))
}

/// Rewrites the frame as `flow` says and redirects it; `XDP_PASS` leaves it unchanged.
// Not inlined: see `flows::flow_for`. At most five arguments, all in registers.
#[inline(never)]
fn translate(
    ctx: &XdpContext,
    h: *mut Headers,
    tuple: &Tuple4,
    flow: *mut Flow,
    tcp_flags: u8,
) -> u32 {
    let f = flows::update(flow, tcp_flags);
    let r = Rewrite::new(*tuple, &f);
    // Where it goes is known before the frame changes: one the stack must take stays as it came.
    let (ifindex, dmac, smac) = match flows::egress(ctx, r.to.saddr, r.to.daddr) {
        Egress::Ready {
            ifindex,
            dmac,
            smac,
        } => (ifindex, dmac, smac),
        Egress::NoNeighbour { .. } => {
            // The neighbour went away mid-flow. The stack cannot forward a frame rewritten to
            // our own address, and XDP cannot wait for ARP, so this one is lost; user space
            // sees the count and resolves the neighbour again, and TCP retransmits.
            flows::count(f.service, |c| c.neighbour_misses += 1);
            return xdp_action::XDP_DROP;
        }
        Egress::Stack => return xdp_action::XDP_PASS,
    };
    // Safety: `h` lies inside the frame.
    unsafe {
        let ip = r.ip_check(u16::from_be_bytes((*h).ip_check));
        let tcp = r.tcp_check_full(u16::from_be_bytes((*h).tcp_check));
        (*h).saddr = r.to.saddr;
        (*h).daddr = r.to.daddr;
        (*h).sport = r.to.sport.to_be_bytes();
        (*h).dport = r.to.dport.to_be_bytes();
        (*h).ip_check = ip.to_be_bytes();
        (*h).tcp_check = tcp.to_be_bytes();
    }
    if f.flags & FLOW_FORWARD != 0 {
        backend_count::count(ctx, Direction::ToBackend);
    }
    // Safety: `h` lies inside the frame.
    unsafe {
        (*h).eth_dst = dmac;
        (*h).eth_src = smac;
    }
    flows::global(|g| g.redirected += 1);
    // Safety: no preconditions.
    unsafe { bpf_redirect(ifindex, 0) as u32 }
}

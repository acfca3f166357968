//! The fast path at TC ingress, for veths, bridges, vxlan and other virtual devices. A local
//! sender's segment may carry a partial TCP checksum and be a GSO train: only the kernel knows,
//! so the fields are written with `bpf_skb_store_bytes` and the sums fixed with the
//! `bpf_l3/l4_csum_replace` helpers (the pseudo-header flag for addresses), which handle
//! every checksum state. The skb keeps its GSO, so TSO stays on end to end. It then leaves
//! through `bpf_redirect`, or `bpf_redirect_neigh` when the next hop is still unresolved.
use aya_ebpf::{
    bindings::{BPF_F_PSEUDO_HDR, TC_ACT_SHOT, TC_ACT_UNSPEC},
    helpers::{bpf_redirect, bpf_redirect_neigh},
    programs::TcContext,
};
use proxy_common::{
    fastpath::{FLOW_FORWARD, Flow},
    nat::{Rewrite, Tuple4},
};

use crate::{
    backend_count::{self, Direction},
    flows::{self, Egress},
    headers::{ETH_P_IPV6, Headers, offsets, plain_tcp4, tuple},
};

/// Forwards the packet if it belongs to (or starts) a fast-path flow. `None`: pass it on.
#[inline(always)]
pub fn forward(ctx: &TcContext) -> Option<i32> {
    let eth_type: [u8; 2] = ctx.load(12).ok()?;
    if eth_type == ETH_P_IPV6 {
        flows::global(|g| g.ipv6_passed += 1);
        return None;
    }
    let (from, tcp_flags) = read(ctx)?;
    let flow = flows::flow_for(ctx, &from, tcp_flags)?;
    Some(translate(ctx, &from, flow, tcp_flags))
}

/// The segment's tuple and TCP flags, from one bounds-checked copy of its headers; `None`
/// for anything but a plain IPv4 TCP segment (a shorter packet included).
// Not inlined, so the copy is not part of the frame that sets flows up (`flows::flow_for`).
#[inline(never)]
fn read(ctx: &TcContext) -> Option<(Tuple4, u8)> {
    let h: Headers = ctx.load(0).ok()?;
    plain_tcp4(&h).then(|| (tuple(&h), h.flags))
}

/// Rewrites the packet as `flow` says and redirects it; `TC_ACT_UNSPEC` passes it on unchanged.
// Not inlined: see `flows::flow_for`. At most five arguments, all in registers.
#[inline(never)]
fn translate(ctx: &TcContext, from: &Tuple4, flow: *mut Flow, tcp_flags: u8) -> i32 {
    let f = flows::update(flow, tcp_flags);
    let r = Rewrite::new(*from, &f);
    // Where it goes is known before the packet changes: one the stack must take stays intact.
    // `macs`: the next hop's and ours, or `None` for `bpf_redirect_neigh` to resolve.
    let (ifindex, macs) = match flows::egress(ctx, r.to.saddr, r.to.daddr) {
        Egress::Ready {
            ifindex,
            dmac,
            smac,
        } => (ifindex, Some((dmac, smac))),
        Egress::NoNeighbour { ifindex } => (ifindex, None),
        Egress::Stack => return TC_ACT_UNSPEC,
    };
    if rewrite(ctx, &r).is_none() {
        // Half rewritten is worse than lost: TCP retransmits a dropped segment.
        flows::global(|g| g.rewrite_failed += 1);
        return TC_ACT_SHOT;
    }
    if f.flags & FLOW_FORWARD != 0 {
        backend_count::count(ctx, Direction::ToBackend);
    }
    flows::global(|g| g.redirected += 1);
    // Safety: helpers without preconditions; a NULL neighbour means "look it up".
    match macs {
        Some((dmac, smac)) => {
            let mut both = [0u8; 12];
            both[..6].copy_from_slice(&dmac);
            both[6..].copy_from_slice(&smac);
            if ctx.store(0, &both, 0).is_err() {
                flows::global(|g| g.rewrite_failed += 1);
                return TC_ACT_SHOT;
            }
            unsafe { bpf_redirect(ifindex, 0) as i32 }
        }
        None => unsafe { bpf_redirect_neigh(ifindex, core::ptr::null_mut(), 0, 0) as i32 },
    }
}

/// Writes the new tuple and lets the kernel fix both checksums for whatever state they are in.
#[inline(always)]
fn rewrite(ctx: &TcContext, r: &Rewrite) -> Option<()> {
    // The helpers take the old and new field values as they lie in the packet.
    let word = |a: [u8; 4]| u32::from_ne_bytes(a) as u64;
    let half = |p: u16| u16::from_ne_bytes(p.to_be_bytes()) as u64;
    let pseudo = BPF_F_PSEUDO_HDR as u64;
    let (from, to) = (&r.from, &r.to);
    ctx.l4_csum_replace(
        offsets::TCP_CHECK,
        word(from.saddr),
        word(to.saddr),
        pseudo | 4,
    )
    .ok()?;
    ctx.l4_csum_replace(
        offsets::TCP_CHECK,
        word(from.daddr),
        word(to.daddr),
        pseudo | 4,
    )
    .ok()?;
    ctx.l4_csum_replace(offsets::TCP_CHECK, half(from.sport), half(to.sport), 2)
        .ok()?;
    ctx.l4_csum_replace(offsets::TCP_CHECK, half(from.dport), half(to.dport), 2)
        .ok()?;
    ctx.l3_csum_replace(offsets::IP_CHECK, word(from.saddr), word(to.saddr), 4)
        .ok()?;
    ctx.l3_csum_replace(offsets::IP_CHECK, word(from.daddr), word(to.daddr), 4)
        .ok()?;
    let mut addrs = [0u8; 8];
    addrs[..4].copy_from_slice(&to.saddr);
    addrs[4..].copy_from_slice(&to.daddr);
    ctx.store(offsets::SADDR, &addrs, 0).ok()?;
    let mut ports = [0u8; 4];
    ports[..2].copy_from_slice(&to.sport.to_be_bytes());
    ports[2..].copy_from_slice(&to.dport.to_be_bytes());
    ctx.store(offsets::SPORT, &ports, 0).ok()
}

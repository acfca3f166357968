//! The fast path at TC ingress, for veths, bridges, vxlan and other virtual devices. A local
//! sender's segment may carry a partial TCP checksum and be a GSO train: only the kernel knows,
//! so the fields are written with `bpf_skb_store_bytes` and the sums fixed with the
//! `bpf_l3/l4_csum_replace` helpers (the pseudo-header flag for addresses), which handle
//! every checksum state. The skb keeps its GSO, so TSO stays on end to end. It then leaves
//! through `bpf_redirect`, or `bpf_redirect_neigh` when the next hop is still unresolved.
//! IPv4 and IPv6 alike; only the fields and the IPv4 header checksum differ.
use aya_ebpf::{
    bindings::{BPF_F_PSEUDO_HDR, TC_ACT_SHOT, TC_ACT_UNSPEC},
    helpers::{bpf_redirect, bpf_redirect_neigh},
    programs::TcContext,
};
use proxy_common::{
    fastpath::{FLOW_FORWARD, Flow, FlowKey, v4_of},
    nat::{Rewrite, Tuple4},
    nat6::{Rewrite6, Tuple6},
};

use crate::{
    backend_count::{self, Direction},
    flows::{self, Egress, Hop},
    headers::{
        ETH_P_IP, ETH_P_IPV6, Headers, Headers6, is_extension, offsets, offsets6, plain_tcp4,
        plain_tcp6, tuple, tuple6,
    },
};

/// Forwards the packet if it belongs to (or starts) a fast-path flow. `None`: pass it on.
#[inline(always)]
pub fn forward(ctx: &TcContext) -> Option<i32> {
    let eth_type: [u8; 2] = ctx.load(12).ok()?;
    let v4 = eth_type == ETH_P_IP;
    if !v4 && eth_type != ETH_P_IPV6 {
        return None;
    }
    // One key in this frame, filled by the family's reader: stack is scarce.
    let mut key = FlowKey::default();
    let read = if v4 {
        read(ctx, &mut key)
    } else {
        read6(ctx, &mut key)
    };
    // Negative: not a segment the fast path takes.
    let tcp_flags = u8::try_from(read).ok()?;
    let flow = flows::flow_for(ctx, &key, tcp_flags)?;
    Some(if v4 {
        translate(ctx, &key, flow, tcp_flags)
    } else {
        translate6(ctx, &key, flow, tcp_flags)
    })
}

/// The segment's conntrack key (into `key`) and TCP flags, from one bounds-checked copy of
/// its headers; -1 for anything but a plain IPv4 TCP segment (a shorter packet included).
// Not inlined, so the copy is not part of the frame that sets flows up (`flows::flow_for`).
// A plain integer comes back: a BPF call returns one register, never an `Option`'s pair.
#[inline(never)]
fn read(ctx: &TcContext, key: &mut FlowKey) -> i32 {
    let Ok(h) = ctx.load::<Headers>(0) else {
        return -1;
    };
    if !plain_tcp4(&h) {
        return -1;
    }
    *key = flows::key_of(&tuple(&h));
    h.tcp.flags as i32
}

/// [`read`] for IPv6: a segment whose next header is TCP. One with extension headers is
/// counted and left to the stack.
#[inline(never)]
fn read6(ctx: &TcContext, key: &mut FlowKey) -> i32 {
    let Ok(h) = ctx.load::<Headers6>(0) else {
        return -1;
    };
    if plain_tcp6(&h) {
        *key = flows::key_of6(&tuple6(&h));
        return h.tcp.flags as i32;
    }
    if is_extension(h.next_header) {
        flows::global(|g| g.ipv6_passed += 1);
    }
    -1
}

/// Rewrites the IPv4 packet that arrived as `key` as `flow` says and redirects it;
/// `TC_ACT_UNSPEC` passes it on unchanged.
// Not inlined: see `flows::flow_for`. At most five arguments, all in registers.
#[inline(never)]
fn translate(ctx: &TcContext, key: &FlowKey, flow: *mut Flow, tcp_flags: u8) -> i32 {
    let f = flows::update(flow, tcp_flags);
    let from = Tuple4 {
        saddr: v4_of(&key.src),
        daddr: v4_of(&key.dst),
        sport: key.sport,
        dport: key.dport,
    };
    let r = Rewrite::new(from, &f);
    send(ctx, &f, || rewrite4(ctx, &r))
}

/// [`translate`] for an IPv6 packet.
#[inline(never)]
fn translate6(ctx: &TcContext, key: &FlowKey, flow: *mut Flow, tcp_flags: u8) -> i32 {
    let f = flows::update(flow, tcp_flags);
    let from = Tuple6 {
        saddr: key.src,
        daddr: key.dst,
        sport: key.sport,
        dport: key.dport,
    };
    let r = Rewrite6::new(&from, &f);
    send(ctx, &f, || rewrite6(ctx, &r))
}

/// Finds where the packet goes (the conntrack entry `f` holds its new source and
/// destination), rewrites it with `rewrite` and redirects it there.
#[inline(always)]
fn send(ctx: &TcContext, f: &Flow, rewrite: impl FnOnce() -> Option<()>) -> i32 {
    // Where it goes is known before the packet changes: one the stack must take stays intact.
    let mut hop = Hop::default();
    let resolved = match flows::egress(ctx, &f.src, &f.dst, &mut hop) {
        Egress::Ready => true,
        Egress::NoNeighbour => false,
        Egress::Stack => return TC_ACT_UNSPEC,
    };
    if rewrite().is_none() {
        // Half rewritten is worse than lost: TCP retransmits a dropped segment.
        flows::global(|g| g.rewrite_failed += 1);
        return TC_ACT_SHOT;
    }
    if f.flags & FLOW_FORWARD != 0 {
        backend_count::count(ctx, Direction::ToBackend);
    }
    flows::global(|g| g.redirected += 1);
    // Safety: helpers without preconditions; a NULL neighbour means "look it up".
    if !resolved {
        return unsafe { bpf_redirect_neigh(hop.ifindex, core::ptr::null_mut(), 0, 0) as i32 };
    }
    let mut both = [0u8; 12];
    both[..6].copy_from_slice(&hop.dmac);
    both[6..].copy_from_slice(&hop.smac);
    if ctx.store(0, &both, 0).is_err() {
        flows::global(|g| g.rewrite_failed += 1);
        return TC_ACT_SHOT;
    }
    unsafe { bpf_redirect(hop.ifindex, 0) as i32 }
}

/// Writes the new IPv6 tuple and lets the kernel fix the TCP checksum for whatever state it
/// is in, four address bytes at a time (the helper's widest step).
// Not inlined: its copies of both addresses need a frame of their own.
#[inline(never)]
fn rewrite6(ctx: &TcContext, r: &Rewrite6) -> Option<()> {
    let half = |p: u16| u16::from_ne_bytes(p.to_be_bytes()) as u64;
    let (from, to) = (&r.from, &r.to);
    for (old, new) in [(from.saddr, to.saddr), (from.daddr, to.daddr)] {
        address_word::<0>(ctx, old, new)?;
        address_word::<4>(ctx, old, new)?;
        address_word::<8>(ctx, old, new)?;
        address_word::<12>(ctx, old, new)?;
    }
    ctx.l4_csum_replace(offsets6::TCP_CHECK, half(from.sport), half(to.sport), 2)
        .ok()?;
    ctx.l4_csum_replace(offsets6::TCP_CHECK, half(from.dport), half(to.dport), 2)
        .ok()?;
    let mut addrs = [0u8; 32];
    addrs[..16].copy_from_slice(to.saddr);
    addrs[16..].copy_from_slice(to.daddr);
    ctx.store(offsets6::SADDR, &addrs, 0).ok()?;
    let mut ports = [0u8; 4];
    ports[..2].copy_from_slice(&to.sport.to_be_bytes());
    ports[2..].copy_from_slice(&to.dport.to_be_bytes());
    ctx.store(offsets6::SPORT, &ports, 0).ok()
}

/// Writes the new tuple and lets the kernel fix both checksums for whatever state they are in.
#[inline(always)]
fn rewrite4(ctx: &TcContext, r: &Rewrite) -> Option<()> {
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

/// Folds the change of the four address bytes at `I` into the TCP checksum (pseudo-header).
// `I` a constant, so the indexing needs no bounds check (the BPF target cannot panic).
#[inline(always)]
fn address_word<const I: usize>(ctx: &TcContext, old: &[u8; 16], new: &[u8; 16]) -> Option<()> {
    let word = |a: &[u8; 16]| u32::from_ne_bytes([a[I], a[I + 1], a[I + 2], a[I + 3]]) as u64;
    ctx.l4_csum_replace(
        offsets6::TCP_CHECK,
        word(old),
        word(new),
        BPF_F_PSEUDO_HDR as u64 | 4,
    )
    .ok()
}

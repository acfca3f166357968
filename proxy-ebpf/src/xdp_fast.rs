//! The fast path at XDP, for physical NICs whose driver runs XDP natively: frames arrive from a
//! wire, so their TCP checksum is always full and the rewrite fixes it arithmetically; the
//! frame is then redirected out of the replica's (or client's) interface. IPv4 and IPv6 alike.
use aya_ebpf::{bindings::xdp_action, helpers::bpf_redirect, programs::XdpContext};
use proxy_common::{
    fastpath::{FLOW_FORWARD, Flow, FlowKey},
    nat::Rewrite,
    nat6::{Ends6, Rewrite6},
};

use crate::{
    backend_count::{self, Direction},
    flows::{self, Egress, Hop},
    headers::{self, Frame, Headers, Headers6},
};

/// Forwards the frame if it belongs to (or starts) a fast-path flow. `None`: pass it on.
#[inline(always)]
pub fn forward(ctx: &XdpContext) -> Option<u32> {
    let frame = headers::classify(ctx);
    // One key in this frame, filled by the family's reader: stack is scarce.
    let mut key = FlowKey::default();
    let tcp_flags = match frame {
        Frame::Tcp4(h) => read(h, &mut key),
        Frame::Tcp6(h) => read6(h, &mut key),
        Frame::Ipv6Extended => {
            flows::global(|g| g.ipv6_passed += 1);
            return None;
        }
        Frame::Other => return None,
    };
    let flow = flows::flow_for(ctx, &key, tcp_flags)?;
    Some(match frame {
        Frame::Tcp4(h) => translate(ctx, h, flow, tcp_flags),
        Frame::Tcp6(h) => translate6(ctx, h, flow, tcp_flags),
        Frame::Ipv6Extended | Frame::Other => xdp_action::XDP_PASS,
    })
}

/// The IPv4 segment's conntrack key (into `key`) and TCP flags.
// Not inlined, like the other readers: copies of the addresses stay out of the entry's frame.
#[inline(never)]
fn read(h: *mut Headers, key: &mut FlowKey) -> u8 {
    // Safety: `h` points at header bytes checked to lie inside the frame.
    unsafe {
        *key = flows::key_of(&headers::tuple(&*h));
        (*h).tcp.flags
    }
}

/// [`read`] for an IPv6 segment.
#[inline(never)]
fn read6(h: *mut Headers6, key: &mut FlowKey) -> u8 {
    // Safety: as in `read`.
    unsafe {
        *key = flows::key_of6(&headers::tuple6(&*h));
        (*h).tcp.flags
    }
}

/// Where the rewritten frame leaves (the conntrack entry `f` holds its new source and
/// destination): the hop, or the action to return with the frame unchanged.
#[inline(always)]
fn next_hop(ctx: &XdpContext, f: &Flow, hop: &mut Hop) -> Result<(), u32> {
    match flows::egress(ctx, &f.src, &f.dst, hop) {
        Egress::Ready => Ok(()),
        Egress::NoNeighbour => {
            // The neighbour went away mid-flow. The stack cannot forward a frame rewritten to
            // our own address, and XDP cannot wait for ARP/ND, so this one is lost; user space
            // sees the count and resolves the neighbour again, and TCP retransmits.
            flows::count(f.service, |c| c.neighbour_misses += 1);
            Err(xdp_action::XDP_DROP)
        }
        Egress::Stack => Err(xdp_action::XDP_PASS),
    }
}

/// Counts the rewritten frame and redirects it out of `ifindex`.
#[inline(always)]
fn send(ctx: &XdpContext, f: &Flow, ifindex: u32) -> u32 {
    if f.flags & FLOW_FORWARD != 0 {
        backend_count::count(ctx, Direction::ToBackend);
    }
    flows::global(|g| g.redirected += 1);
    // Safety: no preconditions.
    unsafe { bpf_redirect(ifindex, 0) as u32 }
}

/// Rewrites the IPv4 frame as `flow` says and redirects it; `XDP_PASS` leaves it unchanged.
// Not inlined: see `flows::flow_for`. At most five arguments, all in registers.
#[inline(never)]
fn translate(ctx: &XdpContext, h: *mut Headers, flow: *mut Flow, tcp_flags: u8) -> u32 {
    let f = flows::update(flow, tcp_flags);
    // Where it goes is known before the frame changes: one the stack must take stays as it came.
    let mut hop = Hop::default();
    if let Err(action) = next_hop(ctx, &f, &mut hop) {
        return action;
    }
    // Safety: `h` lies inside the frame.
    unsafe {
        let r = Rewrite::new(headers::tuple(&*h), &f);
        let ip = r.ip_check(u16::from_be_bytes((*h).ip_check));
        let tcp = r.tcp_check_full(u16::from_be_bytes((*h).tcp.check));
        (*h).saddr = r.to.saddr;
        (*h).daddr = r.to.daddr;
        (*h).tcp.sport = r.to.sport.to_be_bytes();
        (*h).tcp.dport = r.to.dport.to_be_bytes();
        (*h).ip_check = ip.to_be_bytes();
        (*h).tcp.check = tcp.to_be_bytes();
        (*h).eth_dst = hop.dmac;
        (*h).eth_src = hop.smac;
    }
    send(ctx, &f, hop.ifindex)
}

/// [`translate`] for an IPv6 frame: no header checksum, the TCP one covers the addresses.
#[inline(never)]
fn translate6(ctx: &XdpContext, h: *mut Headers6, flow: *mut Flow, tcp_flags: u8) -> u32 {
    let f = flows::update(flow, tcp_flags);
    let mut hop = Hop::default();
    if let Err(action) = next_hop(ctx, &f, &mut hop) {
        return action;
    }
    rewrite6(h, &f);
    // Safety: `h` lies inside the frame.
    unsafe {
        (*h).eth_dst = hop.dmac;
        (*h).eth_src = hop.smac;
    }
    send(ctx, &f, hop.ifindex)
}

/// Writes the new IPv6 tuple (from the conntrack entry `f`) and its TCP checksum.
// Not inlined: the sum over two 16-byte addresses needs a frame of its own.
#[inline(never)]
fn rewrite6(h: *mut Headers6, f: &Flow) {
    // Safety: `h` lies inside the frame. The sum reads the addresses where they lie: copies of
    // them would not fit the frame.
    unsafe {
        let from = Ends6 {
            saddr: &(*h).saddr,
            daddr: &(*h).daddr,
            sport: u16::from_be_bytes((*h).tcp.sport),
            dport: u16::from_be_bytes((*h).tcp.dport),
        };
        let tcp = Rewrite6 {
            from,
            to: Ends6::of(f),
        }
        .tcp_check_full(u16::from_be_bytes((*h).tcp.check));
        (*h).saddr = f.src;
        (*h).daddr = f.dst;
        (*h).tcp.sport = f.sport.to_be_bytes();
        (*h).tcp.dport = f.dport.to_be_bytes();
        (*h).tcp.check = tcp.to_be_bytes();
    }
}

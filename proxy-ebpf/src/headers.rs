//! The fixed Ethernet + IPv4 (no options) or IPv6 (no extension headers) + TCP headers the
//! fast path rewrites: writable in place in an XDP frame, copied out of a TC skb with one
//! bounds-checked load.
use aya_ebpf::programs::XdpContext;
use proxy_common::{nat::Tuple4, nat6::Tuple6};

/// EtherType of IPv4.
pub const ETH_P_IP: [u8; 2] = [0x08, 0x00];
/// EtherType of IPv6.
pub const ETH_P_IPV6: [u8; 2] = [0x86, 0xdd];

/// A TCP header without options, as both frame layouts end.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct Tcp {
    pub sport: [u8; 2],
    pub dport: [u8; 2],
    pub seq: [u8; 4],
    pub ack: [u8; 4],
    pub data_off: u8,
    pub flags: u8,
    pub window: [u8; 2],
    pub check: [u8; 2],
    pub urgent: [u8; 2],
}

/// The first 54 bytes of an IPv4/TCP frame without IP options. Byte arrays only, so the
/// struct has alignment 1 and matches the wire exactly.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct Headers {
    pub eth_dst: [u8; 6],
    pub eth_src: [u8; 6],
    pub eth_type: [u8; 2],
    pub ver_ihl: u8,
    pub tos: u8,
    pub tot_len: [u8; 2],
    pub id: [u8; 2],
    pub frag: [u8; 2],
    pub ttl: u8,
    pub proto: u8,
    pub ip_check: [u8; 2],
    pub saddr: [u8; 4],
    pub daddr: [u8; 4],
    pub tcp: Tcp,
}

/// The first 74 bytes of an IPv6/TCP frame whose next header is TCP itself.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct Headers6 {
    pub eth_dst: [u8; 6],
    pub eth_src: [u8; 6],
    pub eth_type: [u8; 2],
    pub ver_class_flow: [u8; 4],
    pub payload_len: [u8; 2],
    pub next_header: u8,
    pub hop_limit: u8,
    pub saddr: [u8; 16],
    pub daddr: [u8; 16],
    pub tcp: Tcp,
}

/// What the fast path sees in a frame.
#[derive(Clone, Copy)]
pub enum Frame {
    /// An unfragmented IPv4 TCP segment without IP options.
    Tcp4(*mut Headers),
    /// An IPv6 TCP segment without extension headers.
    Tcp6(*mut Headers6),
    /// An IPv6 packet with an extension header before its payload.
    Ipv6Extended,
    /// Anything else (including truncated frames).
    Other,
}

/// IPv6 next-header values of the extension headers the fast path does not walk: hop-by-hop,
/// routing, fragment and destination options.
#[inline(always)]
pub fn is_extension(next_header: u8) -> bool {
    matches!(next_header, 0 | 43 | 44 | 60)
}

/// Classifies the frame. Reads single bytes only: the verifier rejects the shifts LLVM emits
/// when it merges wider unaligned packet reads.
#[inline(always)]
pub fn classify(ctx: &XdpContext) -> Frame {
    let start = ctx.data();
    if start + 14 > ctx.data_end() {
        return Frame::Other;
    }
    // Safety: 14 bytes were checked against data_end.
    let (t0, t1) = unsafe { (*((start + 12) as *const u8), *((start + 13) as *const u8)) };
    if [t0, t1] == ETH_P_IPV6 {
        return classify6(ctx);
    }
    if [t0, t1] != ETH_P_IP || start + size_of::<Headers>() > ctx.data_end() {
        return Frame::Other;
    }
    let h = start as *mut Headers;
    // Safety: the whole struct lies within the frame (checked above); fields are bytes.
    if unsafe { !plain_tcp4(&*h) } {
        return Frame::Other;
    }
    Frame::Tcp4(h)
}

#[inline(always)]
fn classify6(ctx: &XdpContext) -> Frame {
    let start = ctx.data();
    if start + size_of::<Headers6>() > ctx.data_end() {
        return Frame::Other;
    }
    let h = start as *mut Headers6;
    // Safety: the whole struct lies within the frame (checked above); fields are bytes.
    let h6 = unsafe { &*h };
    if plain_tcp6(h6) {
        Frame::Tcp6(h)
    } else if h6.ver_class_flow[0] >> 4 == 6 && is_extension(h6.next_header) {
        Frame::Ipv6Extended
    } else {
        Frame::Other
    }
}

/// Offsets of the IPv6 fields the TC program rewrites through kernel helpers.
pub mod offsets6 {
    use super::Headers6;
    use core::mem::offset_of;

    /// The source address (the destination follows).
    pub const SADDR: usize = offset_of!(Headers6, saddr);
    /// The source port (the destination port follows).
    pub const SPORT: usize = offset_of!(Headers6, tcp) + offset_of!(super::Tcp, sport);
    /// The TCP checksum.
    pub const TCP_CHECK: usize = offset_of!(Headers6, tcp) + offset_of!(super::Tcp, check);
}

/// True for an IPv6 segment whose next header is TCP, the only kind of IPv6 rewritten.
#[inline(always)]
pub fn plain_tcp6(h: &Headers6) -> bool {
    h.eth_type == ETH_P_IPV6 && h.ver_class_flow[0] >> 4 == 6 && h.next_header == 6
}

/// The IPv6 segment's addresses and ports.
#[inline(always)]
pub fn tuple6(h: &Headers6) -> Tuple6 {
    Tuple6 {
        saddr: h.saddr,
        daddr: h.daddr,
        sport: u16::from_be_bytes(h.tcp.sport),
        dport: u16::from_be_bytes(h.tcp.dport),
    }
}

/// Offsets of the fields the TC program rewrites through kernel helpers.
pub mod offsets {
    use super::Headers;
    use core::mem::offset_of;

    /// The IPv4 header checksum.
    pub const IP_CHECK: usize = offset_of!(Headers, ip_check);
    /// The source address (the destination follows).
    pub const SADDR: usize = offset_of!(Headers, saddr);
    /// The source port (the destination port follows).
    pub const SPORT: usize = offset_of!(Headers, tcp) + offset_of!(super::Tcp, sport);
    /// The TCP checksum.
    pub const TCP_CHECK: usize = offset_of!(Headers, tcp) + offset_of!(super::Tcp, check);
}

/// True for an unfragmented IPv4 TCP segment without IP options, the only kind rewritten.
#[inline(always)]
pub fn plain_tcp4(h: &Headers) -> bool {
    // More-fragments or an offset: not a whole segment.
    h.eth_type == ETH_P_IP
        && h.ver_ihl == 0x45
        && h.proto == 6
        && (h.frag[0] & 0x3f) == 0
        && h.frag[1] == 0
}

/// The segment's addresses and ports.
#[inline(always)]
pub fn tuple(h: &Headers) -> Tuple4 {
    Tuple4 {
        saddr: h.saddr,
        daddr: h.daddr,
        sport: u16::from_be_bytes(h.tcp.sport),
        dport: u16::from_be_bytes(h.tcp.dport),
    }
}

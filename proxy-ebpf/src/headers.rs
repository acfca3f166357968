//! The fixed Ethernet + IPv4 (no options) + TCP headers the fast path rewrites: writable in
//! place in an XDP frame, copied out of a TC skb with one bounds-checked load.
use aya_ebpf::programs::XdpContext;
use proxy_common::nat::Tuple4;

/// EtherType of IPv4.
pub const ETH_P_IP: [u8; 2] = [0x08, 0x00];
/// EtherType of IPv6.
pub const ETH_P_IPV6: [u8; 2] = [0x86, 0xdd];

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
    pub sport: [u8; 2],
    pub dport: [u8; 2],
    pub seq: [u8; 4],
    pub ack: [u8; 4],
    pub data_off: u8,
    pub flags: u8,
    pub window: [u8; 2],
    pub tcp_check: [u8; 2],
    pub urgent: [u8; 2],
}

/// What the fast path sees in a frame.
pub enum Frame {
    /// An unfragmented IPv4 TCP segment without IP options.
    Tcp4(*mut Headers),
    /// An IPv6 packet.
    Ipv6,
    /// Anything else (including truncated frames).
    Other,
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
        return Frame::Ipv6;
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

/// Offsets of the fields the TC program rewrites through kernel helpers.
pub mod offsets {
    use super::Headers;
    use core::mem::offset_of;

    /// The IPv4 header checksum.
    pub const IP_CHECK: usize = offset_of!(Headers, ip_check);
    /// The source address (the destination follows).
    pub const SADDR: usize = offset_of!(Headers, saddr);
    /// The source port (the destination port follows).
    pub const SPORT: usize = offset_of!(Headers, sport);
    /// The TCP checksum.
    pub const TCP_CHECK: usize = offset_of!(Headers, tcp_check);
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
        sport: u16::from_be_bytes(h.sport),
        dport: u16::from_be_bytes(h.dport),
    }
}

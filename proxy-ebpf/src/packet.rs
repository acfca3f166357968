//! Reading packets. Every read goes through [`Packet::read`], which checks bounds first, so a
//! truncated frame can only make a parse return `None`.
use aya_ebpf::programs::{TcContext, XdpContext};

/// EtherType of IPv4, as it appears on the wire.
const ETH_P_IP: [u8; 2] = [0x08, 0x00];
/// IP protocol number of TCP.
const IPPROTO_TCP: u8 = 6;
const ETH_HLEN: usize = 14;

/// TCP flag bits (byte 13 of the header).
pub const TCP_SYN: u8 = 0x02;
/// RST flag.
pub const TCP_RST: u8 = 0x04;
/// ACK flag.
pub const TCP_ACK: u8 = 0x10;

/// A packet the programs can read from, whatever the hook.
pub trait Packet {
    /// Copies a `T` from `offset`, or `None` if it would run past the end.
    fn read<T: Copy>(&self, offset: usize) -> Option<T>;
    /// The frame's length in bytes.
    fn len(&self) -> usize;
}

impl Packet for XdpContext {
    #[inline(always)]
    fn read<T: Copy>(&self, offset: usize) -> Option<T> {
        let start = self.data();
        if start + offset + size_of::<T>() > self.data_end() {
            return None;
        }
        // Safety: the range was checked against data_end just above.
        Some(unsafe { core::ptr::read_unaligned((start + offset) as *const T) })
    }

    #[inline(always)]
    fn len(&self) -> usize {
        self.data_end() - self.data()
    }
}

impl Packet for TcContext {
    #[inline(always)]
    fn read<T: Copy>(&self, offset: usize) -> Option<T> {
        // bpf_skb_load_bytes checks bounds itself and fails past the end.
        self.load::<T>(offset).ok()
    }

    #[inline(always)]
    fn len(&self) -> usize {
        self.len() as usize
    }
}

/// The parts of an IPv4/TCP segment the counters need.
pub struct Tcp4 {
    /// Source address, network byte order.
    pub saddr: [u8; 4],
    /// Destination address, network byte order.
    pub daddr: [u8; 4],
    /// Source port, host byte order.
    pub sport: u16,
    /// Destination port, host byte order.
    pub dport: u16,
    /// TCP flags byte.
    pub flags: u8,
}

/// Parses Ethernet + IPv4 + TCP. Anything else (IPv6, other protocols, fragments, truncated
/// headers) is `None` and left alone.
#[inline(always)]
pub fn parse_tcp4<P: Packet>(p: &P) -> Option<Tcp4> {
    if p.read::<[u8; 2]>(12)? != ETH_P_IP {
        return None;
    }
    let version_ihl: u8 = p.read(ETH_HLEN)?;
    let ihl = ((version_ihl & 0x0f) as usize) * 4;
    if version_ihl >> 4 != 4 || ihl < 20 {
        return None;
    }
    if p.read::<u8>(ETH_HLEN + 9)? != IPPROTO_TCP {
        return None;
    }
    // More-fragments flag or a fragment offset: ports are only in the first fragment, and
    // counting some fragments of a datagram but not others would be wrong either way.
    let frag = u16::from_be_bytes(p.read::<[u8; 2]>(ETH_HLEN + 6)?);
    if frag & 0x3fff != 0 {
        return None;
    }
    let saddr = p.read::<[u8; 4]>(ETH_HLEN + 12)?;
    let daddr = p.read::<[u8; 4]>(ETH_HLEN + 16)?;
    let tcp = ETH_HLEN + ihl;
    let ports = p.read::<[u8; 4]>(tcp)?;
    let flags = p.read::<u8>(tcp + 13)?;
    Some(Tcp4 {
        saddr,
        daddr,
        sport: u16::from_be_bytes([ports[0], ports[1]]),
        dport: u16::from_be_bytes([ports[2], ports[3]]),
        flags,
    })
}

//! Reading packets. Every read goes through [`Packet::read`], which checks bounds first, so a
//! truncated frame can only make a parse return `None`.
use aya_ebpf::programs::{TcContext, XdpContext};

/// EtherType of IPv4, as it appears on the wire.
const ETH_P_IP: [u8; 2] = [0x08, 0x00];
/// EtherType of IPv6.
const ETH_P_IPV6: [u8; 2] = [0x86, 0xdd];
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

/// Where the parts of a TCP segment the counters need lie in the packet: the counters read
/// only the one address they key on, straight into the key (copies of two IPv6 addresses
/// would not fit the programs' stack).
pub struct Segment {
    /// IPv6 (16-byte addresses) or IPv4.
    pub v6: bool,
    /// Offset of the source address (the destination follows).
    pub saddr_at: usize,
    /// Offset of the TCP header (source port, then destination port).
    pub tcp_at: usize,
    /// TCP flags byte.
    pub flags: u8,
}

impl Segment {
    /// The source (`source`) or destination address in key form (IPv4-mapped for IPv4).
    #[inline(always)]
    pub fn addr<P: Packet>(&self, p: &P, source: bool, into: &mut [u8; 16]) -> Option<()> {
        if self.v6 {
            *into = p.read::<[u8; 16]>(self.saddr_at + if source { 0 } else { 16 })?;
        } else {
            let a = p.read::<[u8; 4]>(self.saddr_at + if source { 0 } else { 4 })?;
            into[10] = 0xff;
            into[11] = 0xff;
            into[12..].copy_from_slice(&a);
        }
        Some(())
    }

    /// The source (`source`) or destination port.
    #[inline(always)]
    pub fn port<P: Packet>(&self, p: &P, source: bool) -> Option<u16> {
        let at = self.tcp_at + if source { 0 } else { 2 };
        Some(u16::from_be_bytes(p.read::<[u8; 2]>(at)?))
    }
}

/// Finds Ethernet + IPv4 or IPv6 + TCP. Anything else (other protocols, fragments, IPv6
/// extension headers, truncated headers) is `None` and left alone.
#[inline(always)]
pub fn parse_tcp<P: Packet>(p: &P) -> Option<Segment> {
    let eth_type = p.read::<[u8; 2]>(12)?;
    if eth_type == ETH_P_IPV6 {
        const IP6_HLEN: usize = 40;
        if p.read::<u8>(ETH_HLEN)? >> 4 != 6 || p.read::<u8>(ETH_HLEN + 6)? != IPPROTO_TCP {
            return None;
        }
        let tcp_at = ETH_HLEN + IP6_HLEN;
        return Some(Segment {
            v6: true,
            saddr_at: ETH_HLEN + 8,
            tcp_at,
            flags: p.read::<u8>(tcp_at + 13)?,
        });
    }
    if eth_type != ETH_P_IP {
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
    let tcp_at = ETH_HLEN + ihl;
    Some(Segment {
        v6: false,
        saddr_at: ETH_HLEN + 12,
        tcp_at,
        flags: p.read::<u8>(tcp_at + 13)?,
    })
}

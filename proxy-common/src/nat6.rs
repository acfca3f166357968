//! The fast path's NAT rewrite for IPv6, as [`crate::nat`] is for IPv4: pure functions over
//! the fields it touches, shared by the XDP and TC programs and unit-tested on the host. IPv6
//! has no header checksum, so only the TCP checksum changes: by the addresses (pseudo-header)
//! and the ports.
use crate::{csum, fastpath::Flow};

/// The IPv6/TCP fields a rewrite reads and writes. Addresses in network byte order, ports in
/// host byte order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tuple6 {
    /// Source address.
    pub saddr: [u8; 16],
    /// Destination address.
    pub daddr: [u8; 16],
    /// Source port.
    pub sport: u16,
    /// Destination port.
    pub dport: u16,
}

/// One side of a rewrite, borrowing the addresses where they lie (in a frame, a tuple or a
/// conntrack entry): the programs' stack has no room for copies of four IPv6 addresses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ends6<'a> {
    /// Source address.
    pub saddr: &'a [u8; 16],
    /// Destination address.
    pub daddr: &'a [u8; 16],
    /// Source port.
    pub sport: u16,
    /// Destination port.
    pub dport: u16,
}

impl<'a> Ends6<'a> {
    /// The ends a tuple holds.
    #[inline(always)]
    pub const fn from_tuple(t: &'a Tuple6) -> Self {
        Self {
            saddr: &t.saddr,
            daddr: &t.daddr,
            sport: t.sport,
            dport: t.dport,
        }
    }

    /// The ends a conntrack entry rewrites a packet to.
    #[inline(always)]
    pub const fn of(flow: &'a Flow) -> Self {
        Self {
            saddr: &flow.src,
            daddr: &flow.dst,
            sport: flow.sport,
            dport: flow.dport,
        }
    }
}

/// A rewrite: the ends a packet arrived with and the ones it leaves with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rewrite6<'a> {
    /// As the packet arrived.
    pub from: Ends6<'a>,
    /// As it leaves.
    pub to: Ends6<'a>,
}

impl<'a> Rewrite6<'a> {
    /// The rewrite a conntrack entry asks of a packet that arrived as `from`.
    #[inline(always)]
    pub const fn new(from: &'a Tuple6, flow: &'a Flow) -> Self {
        Self {
            from: Ends6::from_tuple(from),
            to: Ends6::of(flow),
        }
    }

    /// The pseudo-header part of the change: both addresses.
    #[inline(always)]
    const fn addresses(&self, check: u16) -> u16 {
        let check = csum::replace128(check, self.from.saddr, self.to.saddr);
        csum::replace128(check, self.from.daddr, self.to.daddr)
    }

    /// The TCP checksum after the rewrite when the field holds the full sum (a frame from a
    /// wire): addresses and ports both count.
    #[inline(always)]
    pub const fn tcp_check_full(&self, check: u16) -> u16 {
        let check = self.addresses(check);
        let check = csum::replace16(check, self.from.sport, self.to.sport);
        csum::replace16(check, self.from.dport, self.to.dport)
    }

    /// The TCP checksum field after the rewrite when it holds only the folded pseudo-header
    /// sum (a local sender's `CHECKSUM_PARTIAL` segment): only the addresses count, and the
    /// field is not complemented (see [`crate::nat::Rewrite::tcp_check_partial`]).
    #[inline(always)]
    pub const fn tcp_check_partial(&self, check: u16) -> u16 {
        !self.addresses(!check)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    const IP6_LEN: usize = 40;

    /// An IPv6 + TCP packet (40 + 20 bytes + payload) with a valid TCP checksum.
    fn packet(t: &Tuple6, payload: &[u8]) -> Vec<u8> {
        let mut p = Vec::new();
        let len = (20 + payload.len()) as u16;
        p.extend_from_slice(&[0x60, 0, 0, 0]);
        p.extend_from_slice(&len.to_be_bytes());
        p.extend_from_slice(&[6, 64]);
        p.extend_from_slice(&t.saddr);
        p.extend_from_slice(&t.daddr);
        p.extend_from_slice(&t.sport.to_be_bytes());
        p.extend_from_slice(&t.dport.to_be_bytes());
        p.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 2, 0x50, 0x18, 0xff, 0xff, 0, 0, 0, 0]);
        p.extend_from_slice(payload);
        let tcp = csum::checksum(&pseudo_and_segment(&p));
        p[IP6_LEN + 16..IP6_LEN + 18].copy_from_slice(&tcp.to_be_bytes());
        p
    }

    fn pseudo(p: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&p[8..40]);
        v.extend_from_slice(&((p.len() - IP6_LEN) as u32).to_be_bytes());
        v.extend_from_slice(&[0, 0, 0, 6]);
        v
    }

    fn pseudo_and_segment(p: &[u8]) -> Vec<u8> {
        let mut v = pseudo(p);
        v.extend_from_slice(&p[IP6_LEN..]);
        v
    }

    fn field(p: &[u8]) -> u16 {
        u16::from_be_bytes([p[IP6_LEN + 16], p[IP6_LEN + 17]])
    }

    fn apply(p: &mut [u8], r: &Rewrite6, partial: bool) {
        let tcp = if partial {
            r.tcp_check_partial(field(p))
        } else {
            r.tcp_check_full(field(p))
        };
        p[8..24].copy_from_slice(r.to.saddr);
        p[24..40].copy_from_slice(r.to.daddr);
        p[40..42].copy_from_slice(&r.to.sport.to_be_bytes());
        p[42..44].copy_from_slice(&r.to.dport.to_be_bytes());
        p[IP6_LEN + 16..IP6_LEN + 18].copy_from_slice(&tcp.to_be_bytes());
    }

    fn addr(last: u8) -> [u8; 16] {
        [0x20, 0x01, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, last]
    }

    fn cases() -> [(Tuple6, Tuple6); 2] {
        [
            (
                Tuple6 {
                    saddr: addr(2),
                    daddr: addr(1),
                    sport: 40_000,
                    dport: 15_000,
                },
                Tuple6 {
                    saddr: addr(0x11),
                    daddr: [0xfd, 0, 0xff, 0xff, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12],
                    sport: 61_001,
                    dport: 5432,
                },
            ),
            (
                Tuple6 {
                    saddr: [0; 16],
                    daddr: [0xff; 16],
                    sport: 0,
                    dport: 0xffff,
                },
                Tuple6 {
                    saddr: [0xff; 16],
                    daddr: addr(0),
                    sport: 0xffff,
                    dport: 0,
                },
            ),
        ]
    }

    fn flow_to(t: &Tuple6) -> Flow {
        Flow {
            src: t.saddr,
            dst: t.daddr,
            sport: t.sport,
            dport: t.dport,
            ..Flow::default()
        }
    }

    #[test]
    fn a_full_checksum_rewrite_leaves_the_tcp_sum_valid() {
        for (from, to) in cases() {
            for payload in [&b""[..], b"x", b"hello, replica"] {
                let mut p = packet(&from, payload);
                let flow = flow_to(&to);
                let r = Rewrite6::new(&from, &flow);
                assert_eq!(r.to, Ends6::from_tuple(&to));
                apply(&mut p, &r, false);
                assert_eq!(p, packet(&to, payload), "{from:?} -> {to:?}");
                assert_eq!(csum::checksum(&pseudo_and_segment(&p)), 0);
            }
        }
    }

    #[test]
    fn a_partial_checksum_rewrite_leaves_the_new_pseudo_header_sum() {
        for (from, to) in cases() {
            let mut p = packet(&from, b"partial");
            let partial = !csum::checksum(&pseudo(&p));
            p[IP6_LEN + 16..IP6_LEN + 18].copy_from_slice(&partial.to_be_bytes());
            let flow = flow_to(&to);
            apply(&mut p, &Rewrite6::new(&from, &flow), true);
            assert_eq!(field(&p), !csum::checksum(&pseudo(&p)));
        }
    }
}

//! The fast path's NAT rewrite as pure functions over the fields it touches, shared by the XDP
//! program (which writes the frame and both checksums itself) and the TC program (which writes
//! the fields and lets the kernel's checksum helpers fix the sums, because only the kernel
//! knows whether the skb carries a full or a partial TCP checksum). Unit-tested on the host.
use crate::{
    csum,
    fastpath::{Flow, v4_of},
};

/// The IPv4/TCP fields a rewrite reads and writes. Addresses in network byte order, ports in
/// host byte order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tuple4 {
    /// Source address.
    pub saddr: [u8; 4],
    /// Destination address.
    pub daddr: [u8; 4],
    /// Source port.
    pub sport: u16,
    /// Destination port.
    pub dport: u16,
}

/// A rewrite: the tuple a packet arrived with and the one it leaves with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rewrite {
    /// As the packet arrived.
    pub from: Tuple4,
    /// As it leaves.
    pub to: Tuple4,
}

impl Rewrite {
    /// The rewrite a conntrack entry asks of a packet that arrived as `from`.
    #[inline(always)]
    pub const fn new(from: Tuple4, flow: &Flow) -> Self {
        Self {
            from,
            to: Tuple4 {
                saddr: v4_of(&flow.src),
                daddr: v4_of(&flow.dst),
                sport: flow.sport,
                dport: flow.dport,
            },
        }
    }

    /// The IPv4 header checksum after the rewrite (it always holds the full sum).
    #[inline(always)]
    pub const fn ip_check(&self, check: u16) -> u16 {
        let check = csum::replace32(check, self.from.saddr, self.to.saddr);
        csum::replace32(check, self.from.daddr, self.to.daddr)
    }

    /// The TCP checksum after the rewrite when the field holds the full sum, as every frame
    /// received from a wire does: addresses (pseudo-header) and ports both count.
    #[inline(always)]
    pub const fn tcp_check_full(&self, check: u16) -> u16 {
        let check = self.ip_check(check);
        let check = csum::replace16(check, self.from.sport, self.to.sport);
        csum::replace16(check, self.from.dport, self.to.dport)
    }

    /// The TCP checksum field after the rewrite when it holds only the folded pseudo-header
    /// sum (a local sender's `CHECKSUM_PARTIAL` segment, finished later by the stack or the
    /// NIC over the rewritten ports): only the addresses count, and the field is not
    /// complemented. This is what the kernel's `bpf_l4_csum_replace` does for such an skb;
    /// the XDP program cannot tell such frames apart, which is why veths get the TC program.
    #[inline(always)]
    pub const fn tcp_check_partial(&self, check: u16) -> u16 {
        // RFC 1624's rule works on complemented sums: complement in, apply, complement out.
        !self.ip_check(!check)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fastpath::v4_mapped;
    use std::vec::Vec;

    /// An IPv4 + TCP packet (20 + 20 bytes + payload) with both checksums valid.
    fn packet(t: &Tuple4, payload: &[u8]) -> Vec<u8> {
        let mut p = Vec::new();
        let total = (40 + payload.len()) as u16;
        p.extend_from_slice(&[0x45, 0, 0, 0, 0x12, 0x34, 0x40, 0, 64, 6, 0, 0]);
        p[2..4].copy_from_slice(&total.to_be_bytes());
        p.extend_from_slice(&t.saddr);
        p.extend_from_slice(&t.daddr);
        p.extend_from_slice(&t.sport.to_be_bytes());
        p.extend_from_slice(&t.dport.to_be_bytes());
        p.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 2, 0x50, 0x18, 0xff, 0xff, 0, 0, 0, 0]);
        p.extend_from_slice(payload);
        let ip = csum::checksum(&p[..20]);
        p[10..12].copy_from_slice(&ip.to_be_bytes());
        let tcp = csum::checksum(&pseudo_and_segment(&p));
        p[36..38].copy_from_slice(&tcp.to_be_bytes());
        p
    }

    fn pseudo_and_segment(p: &[u8]) -> Vec<u8> {
        let mut v = pseudo(p);
        v.extend_from_slice(&p[20..]);
        v
    }

    fn pseudo(p: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&p[12..20]);
        v.extend_from_slice(&[0, 6]);
        v.extend_from_slice(&((p.len() - 20) as u16).to_be_bytes());
        v
    }

    /// What a local sender with TX checksum offload leaves in the field: the folded,
    /// uncomplemented pseudo-header sum.
    fn partial_field(p: &[u8]) -> u16 {
        !csum::checksum(&pseudo(p))
    }

    fn flow_to(t: &Tuple4) -> Flow {
        Flow {
            src: v4_mapped(t.saddr),
            dst: v4_mapped(t.daddr),
            sport: t.sport,
            dport: t.dport,
            ..Flow::default()
        }
    }

    fn apply(p: &mut [u8], r: &Rewrite, partial: bool) {
        let ip = r.ip_check(u16::from_be_bytes([p[10], p[11]]));
        let field = u16::from_be_bytes([p[36], p[37]]);
        let tcp = if partial {
            r.tcp_check_partial(field)
        } else {
            r.tcp_check_full(field)
        };
        p[10..12].copy_from_slice(&ip.to_be_bytes());
        p[12..16].copy_from_slice(&r.to.saddr);
        p[16..20].copy_from_slice(&r.to.daddr);
        p[20..22].copy_from_slice(&r.to.sport.to_be_bytes());
        p[22..24].copy_from_slice(&r.to.dport.to_be_bytes());
        p[36..38].copy_from_slice(&tcp.to_be_bytes());
    }

    const CASES: [(Tuple4, Tuple4); 3] = [
        (
            Tuple4 {
                saddr: [198, 18, 100, 2],
                daddr: [198, 18, 100, 1],
                sport: 40_000,
                dport: 15_000,
            },
            Tuple4 {
                saddr: [198, 18, 200, 1],
                daddr: [198, 18, 200, 12],
                sport: 61_001,
                dport: 5432,
            },
        ),
        (
            Tuple4 {
                saddr: [0, 0, 0, 0],
                daddr: [255, 255, 255, 255],
                sport: 0,
                dport: 0xffff,
            },
            Tuple4 {
                saddr: [255, 255, 255, 255],
                daddr: [0, 0, 0, 1],
                sport: 0xffff,
                dport: 0,
            },
        ),
        (
            Tuple4 {
                saddr: [1, 2, 3, 4],
                daddr: [5, 6, 7, 8],
                sport: 1,
                dport: 2,
            },
            Tuple4 {
                saddr: [1, 2, 3, 4],
                daddr: [5, 6, 7, 8],
                sport: 1,
                dport: 2,
            },
        ),
    ];

    #[test]
    fn a_full_checksum_rewrite_leaves_both_sums_valid() {
        for (from, to) in CASES {
            for payload in [&b""[..], b"x", b"hello, replica"] {
                let mut p = packet(&from, payload);
                let r = Rewrite::new(from, &flow_to(&to));
                assert_eq!(r.to, to);
                apply(&mut p, &r, false);
                assert_eq!(p, packet(&to, payload), "{from:?} -> {to:?}");
                assert_eq!(csum::checksum(&p[..20]), 0);
                assert_eq!(csum::checksum(&pseudo_and_segment(&p)), 0);
            }
        }
    }

    #[test]
    fn a_partial_checksum_rewrite_leaves_the_new_pseudo_header_sum() {
        for (from, to) in CASES {
            let mut p = packet(&from, b"partial");
            let field = partial_field(&p);
            p[36..38].copy_from_slice(&field.to_be_bytes());
            let r = Rewrite::new(from, &flow_to(&to));
            apply(&mut p, &r, true);
            assert_eq!(u16::from_be_bytes([p[36], p[37]]), partial_field(&p));
            assert_eq!(csum::checksum(&p[..20]), 0);
        }
    }

    #[test]
    fn the_full_rule_on_a_partial_field_would_corrupt_it() {
        // Why veths need the TC program: XDP's rule applied to a partial field is wrong.
        let (from, to) = CASES[0];
        let mut p = packet(&from, b"partial");
        let field = partial_field(&p);
        p[36..38].copy_from_slice(&field.to_be_bytes());
        let r = Rewrite::new(from, &flow_to(&to));
        apply(&mut p, &r, false);
        assert_ne!(u16::from_be_bytes([p[36], p[37]]), partial_field(&p));
    }
}

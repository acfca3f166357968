//! Incremental Internet checksum updates (RFC 1624): when a header field changes from `old` to
//! `new`, the checksum is fixed from the difference alone instead of summing the packet again.
//!
//! Words are 16-bit values in network byte order, as read with `u16::from_be_bytes`.

/// The checksum `check` after one 16-bit word changed from `old` to `new`:
/// `HC' = ~(~HC + ~m + m')`.
#[inline(always)]
pub const fn replace16(check: u16, old: u16, new: u16) -> u16 {
    let sum = (!check as u32) + (!old as u32) + new as u32;
    !fold(sum)
}

/// The checksum `check` after a 32-bit field (an IPv4 address) changed from `old` to `new`.
#[inline(always)]
pub const fn replace32(check: u16, old: [u8; 4], new: [u8; 4]) -> u16 {
    let sum = (!check as u32)
        + (!u16::from_be_bytes([old[0], old[1]]) as u32)
        + (!u16::from_be_bytes([old[2], old[3]]) as u32)
        + u16::from_be_bytes([new[0], new[1]]) as u32
        + u16::from_be_bytes([new[2], new[3]]) as u32;
    !fold(sum)
}

/// The checksum `check` after a 128-bit field (an IPv6 address) changed from `old` to `new`:
/// the same rule with `m` and `m'` the folded sums of the field's eight words.
#[inline(always)]
pub const fn replace128(check: u16, old: &[u8; 16], new: &[u8; 16]) -> u16 {
    let sum = (!check as u32) + (!fold(words_sum(old)) as u32) + fold(words_sum(new)) as u32;
    !fold(sum)
}

/// The plain sum of the eight 16-bit words of `a` (at most 8 × 0xffff, no overflow).
// Not inlined: inlined four times, LLVM hoists all 64 byte loads first and the BPF stack
// cannot hold their spills. A call takes a pointer, so `a` is read where it lies.
#[inline(never)]
const fn words_sum(a: &[u8; 16]) -> u32 {
    let mut sum = 0u32;
    let mut i = 0;
    while i < 16 {
        sum += u16::from_be_bytes([a[i], a[i + 1]]) as u32;
        i += 2;
    }
    sum
}

/// Folds a 32-bit one's-complement sum into 16 bits.
#[inline(always)]
const fn fold(mut sum: u32) -> u16 {
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    sum as u16
}

/// The full Internet checksum of `data` (for tests and user space; the programs only update).
pub fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    let mut words = data.chunks_exact(2);
    for w in &mut words {
        sum += u16::from_be_bytes([w[0], w[1]]) as u32;
        sum = (sum & 0xffff) + (sum >> 16);
    }
    if let [last] = words.remainder() {
        sum += (*last as u32) << 8;
    }
    !fold(sum)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An IPv4 header with a valid checksum.
    fn header(src: [u8; 4], dst: [u8; 4]) -> [u8; 20] {
        let mut h = [
            0x45, 0, 0, 60, 0x1c, 0x46, 0x40, 0, 0x40, 6, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        ];
        h[12..16].copy_from_slice(&src);
        h[16..20].copy_from_slice(&dst);
        let c = checksum(&h);
        h[10..12].copy_from_slice(&c.to_be_bytes());
        h
    }

    #[test]
    fn a_valid_header_sums_to_zero() {
        assert_eq!(checksum(&header([10, 0, 0, 1], [10, 0, 0, 2])), 0);
    }

    #[test]
    fn replacing_addresses_matches_a_full_recompute() {
        let cases = [
            (
                [198, 18, 0, 1],
                [198, 18, 1, 1],
                [198, 18, 2, 1],
                [198, 18, 3, 7],
            ),
            (
                [0, 0, 0, 0],
                [255, 255, 255, 255],
                [255, 255, 255, 255],
                [0, 0, 0, 1],
            ),
            ([1, 2, 3, 4], [5, 6, 7, 8], [1, 2, 3, 4], [5, 6, 7, 8]),
        ];
        for (src, dst, new_src, new_dst) in cases {
            let h = header(src, dst);
            let mut check = u16::from_be_bytes([h[10], h[11]]);
            check = replace32(check, src, new_src);
            check = replace32(check, dst, new_dst);
            assert_eq!(
                check,
                u16::from_be_bytes(header(new_src, new_dst)[10..12].try_into().unwrap())
            );
        }
    }

    #[test]
    fn replacing_a_port_matches_a_full_recompute() {
        // A TCP-like buffer: the checksum covers a port word and payload.
        let mut seg = [0x1f, 0x90, 0xab, 0xcd, 0, 0, 1, 2, 3];
        let c = checksum(&seg);
        seg[4..6].copy_from_slice(&c.to_be_bytes());
        for new_port in [0u16, 1, 80, 0xffff, 61000] {
            let mut updated = seg;
            updated[0..2].copy_from_slice(&new_port.to_be_bytes());
            let fixed = replace16(c, 0x1f90, new_port);
            updated[4..6].copy_from_slice(&fixed.to_be_bytes());
            assert_eq!(checksum(&updated), 0, "port {new_port}");
        }
    }
}

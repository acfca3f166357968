//! The source ports the fast path uses towards replicas. They must never be ports the kernel
//! hands out itself, or a reply to one of the proxy's own connections (the slow path's, say)
//! would be taken for a fast-path flow: so they are chosen outside `ip_local_port_range`.
use std::ops::RangeInclusive;

/// The fewest ports worth running a fast path with.
const MIN_PORTS: u32 = 1024;

/// The ports left for the fast path given the kernel's ephemeral range: above it if there
/// are enough, else below it (but above the well-known ports).
pub fn fast_path_ports(ephemeral: RangeInclusive<u16>) -> Option<RangeInclusive<u16>> {
    let above = (*ephemeral.end() as u32 + 1)..=65535u32;
    let below = 1024u32..=(*ephemeral.start() as u32).saturating_sub(1);
    [above, below]
        .into_iter()
        .find(|r| r.end() >= r.start() && r.end() - r.start() + 1 >= MIN_PORTS)
        .map(|r| (*r.start() as u16)..=(*r.end() as u16))
}

/// Parses `/proc/sys/net/ipv4/ip_local_port_range` ("32768\t60999").
pub fn parse_port_range(text: &str) -> Option<RangeInclusive<u16>> {
    let mut parts = text.split_whitespace().map(str::parse::<u16>);
    let (lo, hi) = (parts.next()?.ok()?, parts.next()?.ok()?);
    (lo <= hi).then_some(lo..=hi)
}

/// The kernel's ephemeral port range of this network namespace.
pub fn ephemeral_ports() -> Option<RangeInclusive<u16>> {
    parse_port_range(&std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_range_leaves_the_ports_above_it() {
        assert_eq!(fast_path_ports(32768..=60999), Some(61000..=65535));
    }

    #[test]
    fn a_range_up_to_the_top_leaves_the_ports_below_it() {
        assert_eq!(fast_path_ports(10000..=65535), Some(1024..=9999));
    }

    #[test]
    fn no_room_on_either_side_is_none() {
        assert_eq!(fast_path_ports(1500..=65000), None);
    }

    #[test]
    fn the_proc_file_parses() {
        assert_eq!(parse_port_range("32768\t60999\n"), Some(32768..=60999));
        assert_eq!(parse_port_range("9 1"), None);
        assert_eq!(parse_port_range("x"), None);
    }
}

//! Which interface the kernel would send a packet for an address out of, from the IPv4 main
//! routing table (`/proc/net/route`). Used by `--interface auto` to attach where replicas are.
use std::net::Ipv4Addr;

/// `RTF_UP`: the route is usable.
const RTF_UP: u32 = 0x1;

/// One usable route.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Route {
    interface: String,
    destination: u32,
    mask: u32,
    metric: u32,
}

/// The interface of the most specific route to `addr` in `table` (the text of
/// `/proc/net/route`), ignoring loopback; ties go to the lowest metric.
pub fn interface_for(table: &str, addr: Ipv4Addr) -> Option<String> {
    let target = u32::from(addr);
    parse(table)
        .filter(|r| r.interface != "lo" && target & r.mask == r.destination & r.mask)
        .max_by_key(|r| (r.mask.count_ones(), std::cmp::Reverse(r.metric)))
        .map(|r| r.interface)
}

/// Reads the live table and looks `addr` up in it. Loopback addresses are routed by the local
/// table, which `/proc/net/route` does not show, so they never name an interface.
pub fn live_interface_for(addr: Ipv4Addr) -> Option<String> {
    if addr.is_loopback() {
        return None;
    }
    interface_for(&std::fs::read_to_string("/proc/net/route").ok()?, addr)
}

fn parse(table: &str) -> impl Iterator<Item = Route> + '_ {
    // The kernel prints each __be32 as a host-order (little-endian here) hex number.
    let addr = |hex: &str| u32::from_str_radix(hex, 16).ok();
    table.lines().skip(1).filter_map(move |line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        let flags = u32::from_str_radix(f.get(3)?, 16).ok()?;
        (flags & RTF_UP != 0).then_some(())?;
        Some(Route {
            interface: (*f.first()?).to_owned(),
            destination: u32::from_be_bytes(addr(f.get(1)?)?.to_le_bytes()),
            mask: u32::from_be_bytes(addr(f.get(7)?)?.to_le_bytes()),
            metric: f.get(6)?.parse().ok()?,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE: &str =
        "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT
eth0\t00000000\t0100A8C0\t0003\t0\t0\t100\t00000000\t0\t0\t0
eth0\t0000A8C0\t00000000\t0001\t0\t0\t100\t00FFFFFF\t0\t0\t0
veth1\t000012C6\t00000000\t0001\t0\t0\t0\tFCFFFFFF\t0\t0\t0
down0\t040012C6\t00000000\t0000\t0\t0\t0\tFCFFFFFF\t0\t0\t0
";

    #[test]
    fn the_most_specific_route_wins() {
        assert_eq!(
            interface_for(TABLE, Ipv4Addr::new(198, 18, 0, 2)).as_deref(),
            Some("veth1")
        );
        assert_eq!(
            interface_for(TABLE, Ipv4Addr::new(192, 168, 0, 9)).as_deref(),
            Some("eth0")
        );
        assert_eq!(
            interface_for(TABLE, Ipv4Addr::new(8, 8, 8, 8)).as_deref(),
            Some("eth0"),
            "default route"
        );
    }

    #[test]
    fn routes_that_are_down_are_ignored() {
        let only_down = "h\ndown0\t040012C6\t00000000\t0000\t0\t0\t0\tFCFFFFFF\t0\t0\t0\n";
        assert_eq!(interface_for(only_down, Ipv4Addr::new(198, 18, 0, 5)), None);
    }

    #[test]
    fn the_live_table_routes_loopback_nowhere() {
        assert_eq!(live_interface_for(Ipv4Addr::LOCALHOST), None);
    }
}

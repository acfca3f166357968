//! Neighbour warm-up for the fast path. XDP can only forward to a replica whose link-layer
//! address the kernel knows; a SYN to an unknown one goes to the slow path instead. So before a
//! replica enters a ring, and whenever its neighbour entry is gone, user space opens (and at
//! once closes) a TCP connection to it: the kernel resolves the address on the way, and the
//! replica sees what looks like a health check.
use std::{
    collections::{BTreeSet, HashMap},
    net::{IpAddr, Ipv4Addr, SocketAddr},
    time::{Duration, Instant},
};

/// How long one warm-up connection may take.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
/// The least time between two warm-ups of the same replica.
const REWARM_AFTER: Duration = Duration::from_secs(30);

/// IPv4 neighbours the kernel has resolved, from `/proc/net/arp` text.
pub fn resolved_neighbours(arp: &str) -> BTreeSet<Ipv4Addr> {
    arp.lines()
        .skip(1)
        .filter_map(|line| {
            let mut cols = line.split_whitespace();
            let ip = cols.next()?.parse().ok()?;
            let flags = u32::from_str_radix(cols.nth(1)?.trim_start_matches("0x"), 16).ok()?;
            // ATF_COM: the entry is complete.
            (flags & 0x2 != 0).then_some(ip)
        })
        .collect()
}

/// The complete IPv4 neighbour entries of `device` in `/proc/net/arp` text, with their MACs.
pub fn resolved_on(arp: &str, device: &str) -> Vec<(Ipv4Addr, [u8; 6])> {
    arp.lines()
        .skip(1)
        .filter_map(|line| {
            let cols: Vec<&str> = line.split_whitespace().collect();
            let [ip, _, flags, hw, _, dev] = cols[..] else {
                return None;
            };
            let flags = u32::from_str_radix(flags.trim_start_matches("0x"), 16).ok()?;
            if dev != device || flags & 0x2 == 0 {
                return None;
            }
            let mut mac = [0u8; 6];
            let mut parts = hw.split(':');
            for m in &mut mac {
                *m = u8::from_str_radix(parts.next()?, 16).ok()?;
            }
            Some((ip.parse().ok()?, mac))
        })
        .collect()
}

/// Remembers which replicas were warmed up, and when.
#[derive(Debug, Default)]
pub struct Warmer {
    last: HashMap<SocketAddr, Instant>,
}

impl Warmer {
    /// Connects to each IPv4 replica of `replicas` whose neighbour is not resolved (and that
    /// was not tried in the last 30 s), concurrently, and waits for all of them.
    pub async fn warm_up(&mut self, replicas: impl IntoIterator<Item = SocketAddr>) {
        let resolved = std::fs::read_to_string("/proc/net/arp")
            .map(|t| resolved_neighbours(&t))
            .unwrap_or_default();
        let now = Instant::now();
        let due: Vec<SocketAddr> = replicas
            .into_iter()
            .filter(|a| matches!(a.ip(), IpAddr::V4(ip) if !resolved.contains(&ip)))
            .filter(|a| self.last.get(a).is_none_or(|t| now - *t > REWARM_AFTER))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        for addr in &due {
            self.last.insert(*addr, now);
        }
        let tries = due.into_iter().map(|addr| async move {
            let result =
                tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect(addr)).await;
            tracing::debug!(%addr, ok = matches!(result, Ok(Ok(_))), "neighbour warm-up");
        });
        futures_util::future::join_all(tries).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_complete_entries_count() {
        let arp = "IP address       HW type     Flags       HW address            Mask     Device\n\
                   198.18.200.11    0x1         0x2         aa:bb:cc:dd:ee:ff     *        eth0\n\
                   198.18.200.12    0x1         0x0         00:00:00:00:00:00     *        eth0\n";
        let resolved = resolved_neighbours(arp);
        assert!(resolved.contains(&Ipv4Addr::new(198, 18, 200, 11)));
        assert!(!resolved.contains(&Ipv4Addr::new(198, 18, 200, 12)));
        assert_eq!(
            resolved_on(arp, "eth0"),
            [(
                Ipv4Addr::new(198, 18, 200, 11),
                [0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff]
            )]
        );
        assert!(resolved_on(arp, "eth1").is_empty());
    }
}

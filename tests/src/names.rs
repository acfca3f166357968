//! Unique names and addresses, so that tests running at once (and runs after a crash) never
//! collide. Everything the harness creates carries this process's id.
use std::{
    net::Ipv4Addr,
    path::PathBuf,
    sync::atomic::{AtomicU32, Ordering},
};

/// Prefix of every network namespace, link and pin directory the harness creates.
pub const PREFIX: &str = "fp";

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A fresh set of names for one host and its link.
#[derive(Debug, Clone)]
pub struct Ids {
    pid: u32,
    n: u32,
}

impl Ids {
    /// Takes the next unused number of this process.
    pub fn next() -> Self {
        Self {
            pid: std::process::id(),
            n: NEXT.fetch_add(1, Ordering::Relaxed),
        }
    }

    /// The network namespace name: `fp-<pid>-<n>`.
    pub fn netns(&self) -> String {
        format!("{PREFIX}-{}-{}", self.pid, self.n)
    }

    /// A veth name of at most 15 bytes: `fp<pid base36>x<n><side>`.
    pub fn veth(&self, side: char) -> String {
        format!("{PREFIX}{}x{}{side}", base36(self.pid), self.n)
    }

    /// A pin directory under the BPF filesystem for this test's own maps.
    pub fn pin_dir(&self) -> PathBuf {
        PathBuf::from(format!("/sys/fs/bpf/{PREFIX}-{}-{}", self.pid, self.n))
    }
}

/// /30 networks this process takes from 198.18.0.0/15: 64 per process (processes spread by
/// pid), counted apart from names so that only what needs addresses uses them up, and a
/// subnet is reused only after 64 more have been taken.
static NEXT_SLOT: AtomicU32 = AtomicU32::new(0);

/// Consecutive /30 slots of the benchmark range 198.18.0.0/15.
#[derive(Debug, Clone, Copy)]
pub struct Slots {
    first: u32,
    count: u32,
}

impl Slots {
    /// Takes `count` (a power of two, at most 64) slots, aligned so that together they make
    /// one subnet ([`Slots::network`]).
    pub fn take(count: u32) -> Self {
        assert!(
            count.is_power_of_two() && count <= 64,
            "bad slot count {count}"
        );
        let mut current = NEXT_SLOT.load(Ordering::Relaxed);
        let start = loop {
            let start = current.next_multiple_of(count);
            match NEXT_SLOT.compare_exchange_weak(
                current,
                start + count,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => break start,
                Err(actual) => current = actual,
            }
        };
        Self::at(std::process::id(), start, count)
    }

    fn at(pid: u32, start: u32, count: u32) -> Self {
        // 32768 /30 networks: spread processes apart, then number this process's slots.
        let first = ((pid % 512) * 64 + start % 64) % 32768;
        Self { first, count }
    }

    /// The two addresses of the first /30 (root side, host side).
    pub fn pair(&self) -> (Ipv4Addr, Ipv4Addr) {
        let base = u32::from(Ipv4Addr::new(198, 18, 0, 0)) + self.first * 4;
        (Ipv4Addr::from(base + 1), Ipv4Addr::from(base + 2))
    }

    /// The subnet all the slots make: network address and prefix length.
    pub fn network(&self) -> (Ipv4Addr, u8) {
        let base = u32::from(Ipv4Addr::new(198, 18, 0, 0)) + self.first * 4;
        (
            Ipv4Addr::from(base),
            32 - (self.count * 4).trailing_zeros() as u8,
        )
    }
}

/// The process id encoded in a harness name, if the name is one of ours.
pub fn owner_pid(name: &str) -> Option<u32> {
    let rest = name.strip_prefix(PREFIX)?;
    if let Some(rest) = rest.strip_prefix('-') {
        return rest.split('-').next()?.parse().ok();
    }
    let encoded = rest.split('x').next()?;
    u32::from_str_radix(encoded, 36).ok()
}

fn base36(mut n: u32) -> String {
    let digits = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = Vec::new();
    loop {
        out.push(digits[(n % 36) as usize]);
        n /= 36;
        if n == 0 {
            break;
        }
    }
    out.reverse();
    String::from_utf8(out).expect("ASCII digits")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fit_and_lead_back_to_their_process() {
        let ids = Ids {
            pid: 4_194_303,
            n: 63,
        };
        assert!(ids.veth('a').len() <= 15, "{}", ids.veth('a'));
        assert_eq!(owner_pid(&ids.veth('b')), Some(4_194_303));
        assert_eq!(owner_pid(&ids.netns()), Some(4_194_303));
        assert_eq!(owner_pid("eth0"), None);
    }

    #[test]
    fn slots_make_aligned_subnets_and_are_not_taken_twice() {
        let block = Slots::take(4);
        let (network, prefix) = block.network();
        assert_eq!(prefix, 28);
        assert_eq!(u32::from(network) % 16, 0);
        assert_eq!(block.pair().0, Ipv4Addr::from(u32::from(network) + 1));
        let next = Slots::take(1);
        assert_ne!(next.pair(), block.pair());
    }

    #[test]
    fn subnets_stay_in_the_benchmark_range() {
        let (a, b) = Slots::at(511, 63, 1).pair();
        assert_eq!(u32::from(b) - u32::from(a), 1);
        assert!(a.octets()[0] == 198 && (18..=19).contains(&a.octets()[1]));
    }
}

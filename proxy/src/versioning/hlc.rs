//! A hybrid logical clock: versions that follow wall-clock time where clocks agree and still
//! order every change correctly where they do not. A version is (physical ms, logical counter,
//! replica id); each new one is greater than every version this replica has made or seen, so
//! a change made after seeing another always wins over it, whatever the clocks say.
use std::{
    fmt,
    sync::{Mutex, PoisonError},
};

use serde::{Deserialize, Serialize};

/// The furthest ahead of this replica's clock a peer's version may be: a day.
pub const MAX_SKEW_MS: u64 = 24 * 3600 * 1000;

/// One entry's version. Ordered by physical time, then counter, then replica id (the
/// tie-break that makes two replicas' concurrent versions differ).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Version {
    /// Milliseconds since the Unix epoch, as the clock of the replica that made it said
    /// (or later, if it had seen a later version).
    #[serde(rename = "Ms")]
    pub ms: u64,
    /// Distinguishes versions made within one millisecond.
    #[serde(rename = "Counter")]
    pub counter: u32,
    /// The replica that made it.
    #[serde(rename = "Replica")]
    pub replica: u64,
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}@{:016x}", self.ms, self.counter, self.replica)
    }
}

/// A version written otherwise than `MS.COUNTER@REPLICA` (replica in hex).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a version (MS.COUNTER@REPLICA, the replica in hex)")]
pub struct BadVersion(String);

impl std::str::FromStr for Version {
    type Err = BadVersion;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = || BadVersion(text.to_owned());
        let (time, replica) = text.split_once('@').ok_or_else(bad)?;
        let (ms, counter) = time.split_once('.').ok_or_else(bad)?;
        Ok(Self {
            ms: ms.parse().map_err(|_| bad())?,
            counter: counter.parse().map_err(|_| bad())?,
            replica: u64::from_str_radix(replica, 16).map_err(|_| bad())?,
        })
    }
}

/// The clock of one replica.
#[derive(Debug)]
pub struct Hlc {
    replica: u64,
    /// Added to the system clock (a test hook: `--clock-offset-ms`).
    offset_ms: i64,
    last: Mutex<(u64, u32)>,
}

impl Hlc {
    /// A clock for `replica` whose physical part is the system clock plus `offset_ms`.
    pub fn new(replica: u64, offset_ms: i64) -> Self {
        Self {
            replica,
            offset_ms,
            last: Mutex::new((0, 0)),
        }
    }

    /// A clock with a random replica id (unique among replicas with overwhelming odds).
    pub fn random(offset_ms: i64) -> Self {
        let mut id = [0u8; 8];
        // The system's random source; if it fails, time and pid still tell replicas apart.
        let replica =
            match ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut id) {
                Ok(()) => u64::from_le_bytes(id),
                Err(_) => system_ms() ^ (u64::from(std::process::id()) << 40),
            };
        Self::new(replica, offset_ms)
    }

    /// This replica's id.
    pub fn replica(&self) -> u64 {
        self.replica
    }

    /// The physical clock: system time plus the offset.
    pub fn physical_ms(&self) -> u64 {
        system_ms().saturating_add_signed(self.offset_ms)
    }

    /// A new version, greater than every one made or seen before.
    pub fn now(&self) -> Version {
        self.tick(self.physical_ms())
    }

    fn tick(&self, physical: u64) -> Version {
        let mut last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
        let (ms, counter) = if physical > last.0 {
            (physical, 0)
        } else {
            (last.0, last.1.saturating_add(1))
        };
        *last = (ms, counter);
        Version {
            ms,
            counter,
            replica: self.replica,
        }
    }

    /// Whether `seen` could come from a replica whose clock is off by less than
    /// [`MAX_SKEW_MS`]: a version further ahead is refused rather than observed, since it
    /// would pull this clock (and every later version) that far into the future.
    pub fn plausible(&self, seen: Version) -> bool {
        seen.ms <= self.physical_ms().saturating_add(MAX_SKEW_MS)
    }

    /// Takes `seen` (a peer's, or a restored one) into account: later versions made here are
    /// greater. A clock minutes behind thus never makes a change lose to an older one.
    pub fn observe(&self, seen: Version) {
        let mut last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
        if (seen.ms, seen.counter) > *last {
            *last = (seen.ms, seen.counter);
        }
    }
}

fn system_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_only_grow_even_when_the_clock_stands_still_or_goes_back() {
        let clock = Hlc::new(7, 0);
        let a = clock.tick(100);
        let b = clock.tick(100);
        let c = clock.tick(50);
        assert!(a < b && b < c, "{a} {b} {c}");
        assert_eq!(c.ms, 100, "the physical part never goes back");
        assert_eq!(
            clock.tick(200),
            Version {
                ms: 200,
                counter: 0,
                replica: 7
            }
        );
    }

    #[test]
    fn a_clock_behind_still_makes_versions_after_what_it_has_seen() {
        let behind = Hlc::new(1, -600_000);
        let ahead = Hlc::new(2, 0);
        let peer = ahead.now();
        assert!(
            behind.now() < peer,
            "without seeing it, the lagging clock is older"
        );
        behind.observe(peer);
        let after = behind.now();
        assert!(after > peer, "{after} must follow {peer}");
    }

    #[test]
    fn a_version_reads_back_from_its_text() {
        let v = Version {
            ms: 1_700_000_000_123,
            counter: 4,
            replica: u64::MAX - 1,
        };
        assert_eq!(v.to_string().parse::<Version>(), Ok(v));
        assert!("12.x@ff".parse::<Version>().is_err());
        assert!("12".parse::<Version>().is_err());
    }

    #[test]
    fn a_version_a_day_ahead_is_not_plausible() {
        let clock = Hlc::new(1, 0);
        let mut seen = clock.now();
        assert!(clock.plausible(seen));
        seen.ms += MAX_SKEW_MS + 60_000;
        assert!(!clock.plausible(seen));
    }

    #[test]
    fn equal_times_are_told_apart_by_the_replica() {
        let (a, b) = (Hlc::new(1, 0).tick(5), Hlc::new(2, 0).tick(5));
        assert_ne!(a, b);
        assert!(a < b);
    }
}

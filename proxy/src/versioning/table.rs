//! The version of every entry this replica holds (services and API certificates, live or
//! removed), kept beside the routes in each snapshot, and the digest replicas compare.
//!
//! The digest is the XOR of one SHA-256 per entry (kind, name, version, live), so a change
//! updates it in O(1) (out with the old entry's hash, in with the new one's) instead of
//! rehashing everything on every change or every poll, and equal sets of entries always give
//! equal digests. Versions are unique per change, so any change moves the digest.
use serde::{Deserialize, Serialize};

use super::hlc::Version;

/// What an entry names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A service (its reconfigure parameters).
    Service,
    /// A certificate added through the API.
    Cert,
}

/// An entry's version and whether it is live (else a tombstone).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stamp {
    /// Its version.
    pub version: Version,
    /// False for a tombstone (the entry was removed at `version`).
    pub live: bool,
}

/// Every entry's stamp, by kind and name, with their digest.
#[derive(Debug, Clone, Default)]
pub struct Versions {
    services: imbl::OrdMap<String, Stamp>,
    certs: imbl::OrdMap<String, Stamp>,
    digest: [u8; 32],
}

impl Versions {
    fn map(&self, kind: Kind) -> &imbl::OrdMap<String, Stamp> {
        match kind {
            Kind::Service => &self.services,
            Kind::Cert => &self.certs,
        }
    }

    fn map_mut(&mut self, kind: Kind) -> &mut imbl::OrdMap<String, Stamp> {
        match kind {
            Kind::Service => &mut self.services,
            Kind::Cert => &mut self.certs,
        }
    }

    /// The stamp of `name`, if this replica has ever heard of it (and not collected it).
    pub fn get(&self, kind: Kind, name: &str) -> Option<Stamp> {
        self.map(kind).get(name).copied()
    }

    /// Records `stamp` for `name`, replacing what was there.
    pub fn set(&mut self, kind: Kind, name: &str, stamp: Stamp) {
        let old = self.map_mut(kind).insert(name.to_owned(), stamp);
        if let Some(old) = old {
            self.toggle(kind, name, old);
        }
        self.toggle(kind, name, stamp);
    }

    /// Forgets `name` (a collected tombstone).
    pub fn forget(&mut self, kind: Kind, name: &str) {
        if let Some(old) = self.map_mut(kind).remove(name) {
            self.toggle(kind, name, old);
        }
    }

    /// Every entry of `kind`, by name.
    pub fn entries(&self, kind: Kind) -> impl Iterator<Item = (&String, &Stamp)> {
        self.map(kind).iter()
    }

    /// The tombstones made before `before_ms`.
    pub fn tombstones_before(&self, before_ms: u64) -> Vec<(Kind, String)> {
        [Kind::Service, Kind::Cert]
            .into_iter()
            .flat_map(|kind| {
                self.entries(kind)
                    .filter(move |(_, s)| !s.live && s.version.ms < before_ms)
                    .map(move |(name, _)| (kind, name.clone()))
            })
            .collect()
    }

    /// The greatest version recorded (for the clock at start).
    pub fn max_version(&self) -> Option<Version> {
        self.services
            .values()
            .chain(self.certs.values())
            .map(|s| s.version)
            .max()
    }

    /// The digest, lowercase hex.
    pub fn digest(&self) -> String {
        self.digest.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn toggle(&mut self, kind: Kind, name: &str, stamp: Stamp) {
        let tag = match kind {
            Kind::Service => "service",
            Kind::Cert => "cert",
        };
        let text = format!(
            "{tag}\0{name}\0{}\0{}\0{}\0{}",
            stamp.version.ms, stamp.version.counter, stamp.version.replica, stamp.live
        );
        let hash = ring::digest::digest(&ring::digest::SHA256, text.as_bytes());
        for (d, h) in self.digest.iter_mut().zip(hash.as_ref()) {
            *d ^= h;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp(ms: u64, live: bool) -> Stamp {
        Stamp {
            version: Version {
                ms,
                counter: 0,
                replica: 1,
            },
            live,
        }
    }

    #[test]
    fn the_digest_follows_the_entries_not_the_order_they_came_in() {
        let mut a = Versions::default();
        a.set(Kind::Service, "x", stamp(1, true));
        a.set(Kind::Cert, "site", stamp(2, true));
        let mut b = Versions::default();
        b.set(Kind::Cert, "site", stamp(2, true));
        b.set(Kind::Service, "x", stamp(9, true));
        assert_ne!(a.digest(), b.digest());
        b.set(Kind::Service, "x", stamp(1, true));
        assert_eq!(a.digest(), b.digest());
        let before = a.digest();
        a.set(Kind::Service, "x", stamp(3, false));
        assert_ne!(a.digest(), before, "a removal moves it");
        a.forget(Kind::Service, "x");
        a.forget(Kind::Cert, "site");
        assert_eq!(a.digest(), Versions::default().digest());
    }

    #[test]
    fn a_service_and_a_certificate_of_one_name_differ() {
        let (mut a, mut b) = (Versions::default(), Versions::default());
        a.set(Kind::Service, "x", stamp(1, true));
        b.set(Kind::Cert, "x", stamp(1, true));
        assert_ne!(a.digest(), b.digest());
    }

    #[test]
    fn old_tombstones_are_listed_for_collection() {
        let mut a = Versions::default();
        a.set(Kind::Service, "gone", stamp(5, false));
        a.set(Kind::Service, "live", stamp(1, true));
        a.set(Kind::Cert, "fresh", stamp(50, false));
        assert_eq!(
            a.tombstones_before(10),
            [(Kind::Service, "gone".to_owned())]
        );
        assert_eq!(a.max_version().map(|v| v.ms), Some(50));
    }
}

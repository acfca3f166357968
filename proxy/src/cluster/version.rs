//! Which of two replicas' configurations is newer. A configuration (every service's
//! parameters and the certificates added through the API) has a version: when it last changed
//! (unix milliseconds, on the replica where the change was made) and a SHA-256 of its content.
//!
//! The rule: equal hashes are the same configuration, whatever the times. Otherwise the later
//! change wins (last writer wins, for the whole configuration), and at equal times the greater
//! hash, so that every replica picks the same winner.
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A configuration's version, as replicas exchange it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigVersion {
    /// When the configuration last changed, unix milliseconds.
    #[serde(rename = "ChangedAt")]
    pub changed_at_ms: u64,
    /// SHA-256 of the content, lowercase hex.
    #[serde(rename = "Hash")]
    pub hash: String,
}

impl ConfigVersion {
    /// Whether a replica at `other` should adopt the configuration at `self`.
    pub fn supersedes(&self, other: &ConfigVersion) -> bool {
        self.hash != other.hash
            && (self.changed_at_ms, &self.hash) > (other.changed_at_ms, &other.hash)
    }
}

/// The hash of a configuration: services (their parameters) by name, certificates by name.
/// Maps are ordered, so equal content always gives the same bytes and the same hash.
pub fn content_hash(
    services: &BTreeMap<String, BTreeMap<String, String>>,
    certs: &BTreeMap<String, String>,
) -> String {
    #[derive(Serialize)]
    struct Content<'a> {
        services: &'a BTreeMap<String, BTreeMap<String, String>>,
        certs: &'a BTreeMap<String, String>,
    }
    let bytes = serde_json::to_vec(&Content { services, certs }).expect("string maps serialise");
    let digest = ring::digest::digest(&ring::digest::SHA256, &bytes);
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// The newest of `candidates` that supersedes `own`, if any.
pub fn newest<'a, T>(
    own: &ConfigVersion,
    candidates: impl IntoIterator<Item = (&'a ConfigVersion, T)>,
) -> Option<(&'a ConfigVersion, T)> {
    candidates
        .into_iter()
        .filter(|(v, _)| v.supersedes(own))
        .max_by(|(a, _), (b, _)| (a.changed_at_ms, &a.hash).cmp(&(b.changed_at_ms, &b.hash)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(at: u64, hash: &str) -> ConfigVersion {
        ConfigVersion {
            changed_at_ms: at,
            hash: hash.into(),
        }
    }

    fn service(path: &str) -> BTreeMap<String, BTreeMap<String, String>> {
        BTreeMap::from([(
            "go-demo".to_owned(),
            BTreeMap::from([
                ("serviceName".to_owned(), "go-demo".to_owned()),
                ("servicePath".to_owned(), path.to_owned()),
            ]),
        )])
    }

    #[test]
    fn the_later_change_wins_and_equal_content_never_moves() {
        assert!(v(2, "aa").supersedes(&v(1, "bb")));
        assert!(!v(1, "bb").supersedes(&v(2, "aa")));
        assert!(
            !v(9, "aa").supersedes(&v(1, "aa")),
            "same hash: already converged"
        );
    }

    #[test]
    fn at_equal_times_the_greater_hash_wins_on_both_sides() {
        let (a, b) = (v(5, "aa"), v(5, "bb"));
        assert!(b.supersedes(&a));
        assert!(!a.supersedes(&b), "exactly one side adopts");
    }

    #[test]
    fn the_newest_of_several_peers_is_chosen_and_none_when_we_are_newest() {
        let own = v(10, "00");
        let peers = [v(11, "aa"), v(30, "bb"), v(30, "cc"), v(5, "dd")];
        let best = newest(&own, peers.iter().map(|p| (p, ()))).unwrap();
        assert_eq!(best.0, &v(30, "cc"));
        assert!(newest(&v(40, "ee"), peers.iter().map(|p| (p, ()))).is_none());
    }

    #[test]
    fn the_hash_follows_content_only() {
        let certs = BTreeMap::new();
        let a = content_hash(&service("/demo"), &certs);
        assert_eq!(a, content_hash(&service("/demo"), &certs));
        assert_eq!(a.len(), 64);
        assert_ne!(a, content_hash(&service("/other"), &certs));
        let with_cert = BTreeMap::from([("site".to_owned(), "PEM".to_owned())]);
        assert_ne!(a, content_hash(&service("/demo"), &with_cert));
        // A known answer, so that a change of hashing (which would make replicas of two
        // versions disagree forever) cannot go unnoticed.
        assert_eq!(
            content_hash(&BTreeMap::new(), &BTreeMap::new()),
            "30fb539e2cb2e94f9011bef3fd59cc3a2738135a0ae78f5b1c1ae0a1ba9b122a"
        );
    }
}

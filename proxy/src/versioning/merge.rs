//! The merge of two replicas' entries: per name, the entry with the higher version wins, and
//! a removal is an entry too (a tombstone), so it wins over what it removed and loses to a
//! later re-add. Pure: it is commutative, associative and idempotent (tested below with
//! proptest), which is what makes replicas that merged the same changes in any order, any
//! number of times, equal.
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::hlc::Version;

/// One named entry (a service, a certificate) at a version; `value` is `None` for a tombstone.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Entry<T> {
    /// When and where it was made.
    #[serde(rename = "Version")]
    pub version: Version,
    /// Its content, or `None` once removed.
    #[serde(rename = "Value")]
    pub value: Option<T>,
}

/// Entries by name.
pub type Entries<T> = BTreeMap<String, Entry<T>>;

/// Whether `candidate` wins over `current`: a higher version, or (only possible if two
/// replicas made the same version, which the replica id prevents) the greater content, so
/// that the choice never depends on which side merges.
fn wins<T: Ord>(candidate: &Entry<T>, current: &Entry<T>) -> bool {
    (candidate.version, &candidate.value) > (current.version, &current.value)
}

/// The merge of `a` and `b`: every name of either, with the winning entry.
pub fn merge<T: Ord + Clone>(a: &Entries<T>, b: &Entries<T>) -> Entries<T> {
    let mut merged = a.clone();
    for (name, entry) in b {
        match merged.get(name) {
            Some(current) if !wins(entry, current) => {}
            _ => {
                merged.insert(name.clone(), entry.clone());
            }
        }
    }
    merged
}

/// What `local` must take from `peer` to become `merge(local, peer)`: the peer's entries
/// that win, by name.
pub fn changes_from<'a, T: Ord + Clone>(
    local: &Entries<T>,
    peer: &'a Entries<T>,
) -> Vec<(&'a String, &'a Entry<T>)> {
    let merged = merge(local, peer);
    peer.iter()
        .filter(|(name, entry)| {
            merged.get(*name) == Some(*entry) && local.get(*name) != Some(*entry)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn v(ms: u64, replica: u64) -> Version {
        Version {
            ms,
            counter: 0,
            replica,
        }
    }

    fn put(ms: u64, replica: u64, value: &str) -> Entry<String> {
        Entry {
            version: v(ms, replica),
            value: Some(value.to_owned()),
        }
    }

    fn gone(ms: u64, replica: u64) -> Entry<String> {
        Entry {
            version: v(ms, replica),
            value: None,
        }
    }

    fn entries(list: &[(&str, Entry<String>)]) -> Entries<String> {
        list.iter()
            .map(|(n, e)| ((*n).to_owned(), e.clone()))
            .collect()
    }

    #[test]
    fn changes_to_different_services_both_survive() {
        let a = entries(&[("svca", put(10, 1, "a"))]);
        let b = entries(&[("svcb", put(11, 2, "b"))]);
        let merged = merge(&a, &b);
        assert_eq!(merged.len(), 2);
        assert_eq!(merged, merge(&b, &a));
    }

    #[test]
    fn a_remove_is_not_undone_and_a_later_re_add_wins() {
        let added = entries(&[("svc", put(10, 1, "old"))]);
        let removed = entries(&[("svc", gone(20, 2))]);
        assert_eq!(merge(&added, &removed)["svc"], gone(20, 2));
        assert_eq!(merge(&removed, &added)["svc"], gone(20, 2));
        let re_added = entries(&[("svc", put(30, 3, "new"))]);
        assert_eq!(merge(&removed, &re_added)["svc"], put(30, 3, "new"));
    }

    #[test]
    fn concurrent_changes_to_one_service_pick_the_same_winner_everywhere() {
        let a = entries(&[("svc", put(10, 1, "a"))]);
        let b = entries(&[("svc", put(10, 2, "b"))]);
        assert_eq!(merge(&a, &b)["svc"], put(10, 2, "b"));
        assert_eq!(merge(&b, &a)["svc"], put(10, 2, "b"));
    }

    #[test]
    fn the_changes_taken_are_the_peers_winning_entries() {
        let local = entries(&[("a", put(10, 1, "a")), ("b", put(30, 1, "b"))]);
        let peer = entries(&[
            ("a", put(20, 2, "a2")),
            ("b", gone(25, 2)),
            ("c", gone(5, 2)),
        ]);
        let taken: Vec<&str> = changes_from(&local, &peer)
            .into_iter()
            .map(|(n, _)| n.as_str())
            .collect();
        assert_eq!(taken, ["a", "c"]);
        assert!(
            changes_from(&local, &local).is_empty(),
            "nothing to take from an equal replica"
        );
    }

    fn arb_entries() -> impl Strategy<Value = Entries<String>> {
        // Few names, versions and values, so that the same name at equal versions (with
        // different content) is generated too.
        let entry = (0u64..4, 0u32..2, 0u64..3, proptest::option::of("[ab]")).prop_map(
            |(ms, counter, replica, value)| Entry {
                version: Version {
                    ms,
                    counter,
                    replica,
                },
                value,
            },
        );
        proptest::collection::btree_map("[a-d]", entry, 0..5)
    }

    proptest! {
        #[test]
        fn merge_is_commutative(a in arb_entries(), b in arb_entries()) {
            prop_assert_eq!(merge(&a, &b), merge(&b, &a));
        }

        #[test]
        fn merge_is_associative(a in arb_entries(), b in arb_entries(), c in arb_entries()) {
            prop_assert_eq!(merge(&merge(&a, &b), &c), merge(&a, &merge(&b, &c)));
        }

        #[test]
        fn merge_is_idempotent(a in arb_entries(), b in arb_entries()) {
            prop_assert_eq!(merge(&a, &a), a.clone());
            let once = merge(&a, &b);
            prop_assert_eq!(merge(&once, &b), once);
        }

        #[test]
        fn applying_the_changes_taken_gives_the_merge(a in arb_entries(), b in arb_entries()) {
            let mut applied = a.clone();
            for (name, entry) in changes_from(&a, &b) {
                applied.insert(name.clone(), entry.clone());
            }
            prop_assert_eq!(applied, merge(&a, &b));
        }
    }
}

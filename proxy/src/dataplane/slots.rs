//! Which counter slot each interface (or backend) uses. Pure bookkeeping, so it is tested
//! without a kernel.
use std::collections::{BTreeMap, BTreeSet};

/// What to change in a `key -> slot` map so that every wanted key has a slot.
#[derive(Debug, PartialEq, Eq)]
pub struct SlotPlan<K> {
    /// New `key -> slot` entries; their slots may be recycled, so their counters must be zeroed.
    pub add: Vec<(K, u32)>,
    /// Entries to delete.
    pub remove: Vec<K>,
}

/// Plans slots for `wanted` keys given the pinned `existing` entries. A key that already has a
/// slot keeps it, so counters survive a restart; entries that are neither wanted nor `alive`
/// are dropped and their slots reused. Returns `None` when slots run out.
pub fn plan_slots<K: Ord + Copy>(
    existing: &BTreeMap<K, u32>,
    wanted: &[K],
    max_slots: u32,
    alive: impl Fn(K) -> bool,
) -> Option<SlotPlan<K>> {
    let mut plan = SlotPlan {
        add: Vec::new(),
        remove: Vec::new(),
    };
    let mut used = BTreeSet::new();
    for (&ifindex, &slot) in existing {
        if wanted.contains(&ifindex) || alive(ifindex) {
            used.insert(slot);
        } else {
            plan.remove.push(ifindex);
        }
    }
    let mut free = (0..max_slots).filter(|s| !used.contains(s));
    let mut seen = BTreeSet::new();
    for &ifindex in wanted {
        if existing.contains_key(&ifindex) || !seen.insert(ifindex) {
            continue;
        }
        plan.add.push((ifindex, free.next()?));
    }
    Some(plan)
}

/// Zeroes the per-CPU counters of `slots` in `stats` (the map `name`), so a slot handed to a
/// new interface or backend starts from nothing.
pub fn zero_slots<T: aya::Pod + Default>(
    stats: &mut aya::maps::PerCpuArray<aya::maps::MapData, T>,
    name: &'static str,
    slots: impl IntoIterator<Item = u32>,
) -> Result<(), super::DataPlaneError> {
    use super::DataPlaneError;
    let map_err = |source| DataPlaneError::Map { map: name, source };
    let cpus = aya::util::nr_cpus()
        .map_err(|(path, e)| DataPlaneError::from_io("count CPUs in", path, e))?;
    for slot in slots {
        let zero = aya::maps::PerCpuValues::try_from(
            std::iter::repeat_with(T::default)
                .take(cpus)
                .collect::<Vec<_>>(),
        )
        .map_err(|e| DataPlaneError::from_io("zero", name, e))?;
        stats.set(slot, zero, 0).map_err(map_err)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_interfaces_get_the_lowest_free_slots() {
        let plan = plan_slots(&BTreeMap::<u32, u32>::new(), &[7, 9], 4, |_| true).unwrap();
        assert_eq!(plan.add, vec![(7, 0), (9, 1)]);
        assert!(plan.remove.is_empty());
    }

    #[test]
    fn an_interface_keeps_its_slot_across_restarts() {
        let existing = BTreeMap::from([(9, 3)]);
        let plan = plan_slots(&existing, &[9, 11], 4, |_| true).unwrap();
        assert_eq!(plan.add, vec![(11, 0)]);
    }

    #[test]
    fn slots_of_vanished_interfaces_are_recycled() {
        let existing = BTreeMap::from([(5, 0), (6, 1)]);
        let plan = plan_slots(&existing, &[8], 2, |i| i == 6).unwrap();
        assert_eq!(plan.remove, vec![5]);
        assert_eq!(plan.add, vec![(8, 0)]);
        assert!(
            plan_slots(&existing, &[8, 9], 2, |i| i == 6).is_none(),
            "one slot is free"
        );
    }

    #[test]
    fn a_repeated_interface_gets_one_slot() {
        let plan = plan_slots(&BTreeMap::<u32, u32>::new(), &[4, 4], 4, |_| true).unwrap();
        assert_eq!(plan.add, vec![(4, 0)]);
    }
}

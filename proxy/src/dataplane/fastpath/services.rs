//! Programming TCP-mode services into the kernel: a slot per service, its Maglev ring written
//! into the ring half not in use, then the service entry flipped to it in one map update, so
//! the program never sees a half-written ring.
use std::{
    collections::{BTreeMap, BTreeSet},
    net::SocketAddr,
};

use proxy_common::{
    BackendKey,
    fastpath::{MAX_L4_SERVICES, ServiceEntry, ServiceKey, ring_index},
    map_names,
};

use super::{super::backends::key_of, L4Service, maglev};
use crate::dataplane::{
    error::DataPlaneError,
    maps::{Maps, map_err},
    slots,
};

/// What was programmed for one service: its slot and the backends its ring holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Programmed {
    /// The service's slot.
    pub slot: u32,
    /// Its replicas' keys, as written into the ring.
    pub replicas: BTreeSet<BackendKey>,
    /// What was asked for, to skip rewriting unchanged rings.
    pub service: L4Service,
}

/// Makes the fast path's services exactly `wanted`. `previous` is what the last call
/// programmed; unchanged services keep their ring. Returns what is programmed now.
pub fn sync(
    maps: &mut Maps,
    wanted: &[L4Service],
    previous: &BTreeMap<ServiceKey, Programmed>,
) -> Result<BTreeMap<ServiceKey, Programmed>, DataPlaneError> {
    let existing: BTreeMap<ServiceKey, ServiceEntry> =
        maps.l4_services.iter().filter_map(Result::ok).collect();
    let keys: Vec<ServiceKey> = wanted.iter().map(L4Service::key).collect();
    let slots_now: BTreeMap<ServiceKey, u32> = existing.iter().map(|(k, e)| (*k, e.slot)).collect();
    // The last slot is the self-test's probe's.
    let max = MAX_L4_SERVICES - 1;
    let plan =
        slots::plan_slots(&slots_now, &keys, max, |_| false).ok_or(DataPlaneError::OutOfSlots {
            what: "TCP-mode services",
            max,
        })?;
    slots::zero_slots(
        &mut maps.l4_service_stats,
        map_names::L4_SERVICE_STATS,
        plan.add.iter().map(|&(_, slot)| slot),
    )?;
    let backend_slots: BTreeMap<BackendKey, u32> = maps
        .backends
        .iter()
        .filter_map(Result::ok)
        .map(|(k, v)| (k, v.slot))
        .collect();
    let new_slots: BTreeMap<ServiceKey, u32> = plan.add.iter().copied().collect();
    let mut programmed = BTreeMap::new();
    for (service, key) in wanted.iter().zip(&keys) {
        let slot = match existing.get(key) {
            Some(e) => e.slot,
            None => new_slots[key],
        };
        let replicas: Vec<(SocketAddr, u32)> = service
            .replicas
            .iter()
            .filter_map(|&addr| Some((addr, *backend_slots.get(&key_of(addr))?)))
            .collect();
        let done = Programmed {
            slot,
            replicas: replicas.iter().map(|(a, _)| key_of(*a)).collect(),
            service: service.clone(),
        };
        let unchanged = previous.get(key).is_some_and(|p| p == &done)
            && existing.get(key).is_some_and(|e| e.slot == slot);
        if !unchanged {
            let half = existing.get(key).map_or(0, |e| 1 - e.ring_half.min(1));
            let entry = write_ring(maps, slot, half, &replicas, service)?;
            maps.l4_services
                .insert(key, entry, 0)
                .map_err(map_err(map_names::L4_SERVICES))?;
            tracing::info!(
                service = %service.name,
                port = service.port,
                replicas = replicas.len(),
                ring = entry.ring_size,
                "TCP-mode service programmed into the fast path"
            );
        }
        programmed.insert(*key, done);
    }
    for key in &plan.remove {
        maps.l4_services
            .remove(key)
            .map_err(map_err(map_names::L4_SERVICES))?;
        tracing::info!(
            port = key.port,
            "TCP-mode service removed from the fast path"
        );
    }
    Ok(programmed)
}

/// Writes the ring of `replicas` into ring `half` of `slot`; returns the entry that makes it live.
fn write_ring(
    maps: &mut Maps,
    slot: u32,
    half: u32,
    replicas: &[(SocketAddr, u32)],
    service: &L4Service,
) -> Result<ServiceEntry, DataPlaneError> {
    let ids: Vec<String> = replicas.iter().map(|(a, _)| a.to_string()).collect();
    let m = maglev::ring_size(ids.len());
    let ring = maglev::build(&ids, m);
    for (h, &backend) in ring.iter().enumerate() {
        let value = replicas[backend as usize].1 + 1;
        maps.maglev
            .set(ring_index(slot, half, h as u32), value, 0)
            .map_err(map_err(map_names::MAGLEV))?;
    }
    Ok(ServiceEntry {
        slot,
        ring_half: half,
        ring_size: if ring.is_empty() { 0 } else { m },
        idle_timeout_s: service.idle_timeout.as_secs().clamp(1, u32::MAX as u64) as u32,
    })
}

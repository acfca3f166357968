//! Keeping `BACKENDS` in step with discovery: every replica user space balances to gets a
//! counter slot, a replica that goes away gives its slot back, and a recycled slot starts at zero.
use std::{
    collections::BTreeMap,
    net::{IpAddr, SocketAddr},
};

use proxy_common::{BackendKey, BackendSlot, MAX_BACKENDS, SERVICE_NAME_LEN, map_names};

use super::{
    error::DataPlaneError,
    maps::{Maps, map_err},
    slots,
};

/// A replica the proxy sends traffic to, and the service it belongs to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Backend {
    /// The replica's address and port.
    pub addr: SocketAddr,
    /// The service it serves.
    pub service: String,
}

/// The map key of a backend (IPv4 addresses IPv4-mapped, as the programs key them).
pub fn key_of(addr: SocketAddr) -> BackendKey {
    match addr.ip() {
        IpAddr::V4(v4) => BackendKey::v4(v4.octets(), addr.port()),
        IpAddr::V6(v6) => BackendKey::new(v6.octets(), addr.port()),
    }
}

/// The address a key stands for.
pub fn addr_of(key: &BackendKey) -> SocketAddr {
    let ip = std::net::Ipv6Addr::from(key.addr);
    let ip = ip.to_ipv4_mapped().map_or(IpAddr::V6(ip), IpAddr::V4);
    SocketAddr::new(ip, key.port)
}

/// The service name as stored in a map value.
pub fn service_of(slot: &BackendSlot) -> String {
    let end = slot
        .service
        .iter()
        .position(|&b| b == 0)
        .unwrap_or(SERVICE_NAME_LEN);
    String::from_utf8_lossy(&slot.service[..end]).into_owned()
}

fn slot_value(slot: u32, service: &str) -> BackendSlot {
    let mut name = [0u8; SERVICE_NAME_LEN];
    let bytes = service.as_bytes();
    let n = bytes.len().min(SERVICE_NAME_LEN);
    name[..n].copy_from_slice(&bytes[..n]);
    BackendSlot {
        slot,
        service: name,
    }
}

/// Makes `BACKENDS` hold `wanted` (IPv4 ones), zeroing the counters of new slots and writing
/// their addresses into `REALS`. With `keep_stale`, backends no longer wanted keep their slots
/// for now: the fast path's rings may still point at them until they are rewritten, so their
/// slots must not be handed to another backend yet.
pub fn sync(maps: &mut Maps, wanted: &[Backend], keep_stale: bool) -> Result<(), DataPlaneError> {
    let services: BTreeMap<BackendKey, &str> = wanted
        .iter()
        .map(|b| (key_of(b.addr), b.service.as_str()))
        .collect();
    let keys: Vec<BackendKey> = services.keys().copied().collect();
    let plan = {
        let existing: BTreeMap<BackendKey, u32> = maps
            .backends
            .iter()
            .filter_map(Result::ok)
            .map(|(k, v)| (k, v.slot))
            .collect();
        // The last slot is the self-test's probe replica's.
        let max = MAX_BACKENDS - 1;
        slots::plan_slots(&existing, &keys, max, |_| keep_stale).ok_or(
            DataPlaneError::OutOfSlots {
                what: "backends",
                max,
            },
        )?
    };
    slots::zero_slots(
        &mut maps.backend_stats,
        map_names::BACKEND_STATS,
        plan.add.iter().map(|&(_, slot)| slot),
    )?;
    for (key, slot) in &plan.add {
        maps.reals
            .set(*slot, key, 0)
            .map_err(map_err(map_names::REALS))?;
    }
    let backends = &mut maps.backends;
    for key in &plan.remove {
        backends.remove(key).map_err(map_err(map_names::BACKENDS))?;
        tracing::debug!(backend = %addr_of(key), "backend no longer counted");
    }
    for (key, slot) in &plan.add {
        let service = services.get(key).copied().unwrap_or_default();
        backends
            .insert(key, slot_value(*slot, service), 0)
            .map_err(map_err(map_names::BACKENDS))?;
        tracing::debug!(backend = %addr_of(key), service, slot, "backend counted");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_to_addresses() {
        let addr: SocketAddr = "198.18.0.2:8080".parse().unwrap();
        assert_eq!(addr_of(&key_of(addr)), addr);
        let v6: SocketAddr = "[2001:2::11]:5432".parse().unwrap();
        assert_eq!(addr_of(&key_of(v6)), v6);
    }

    #[test]
    fn service_names_are_padded_and_cut() {
        assert_eq!(service_of(&slot_value(3, "go-demo")), "go-demo");
        let long = "s".repeat(100);
        assert_eq!(service_of(&slot_value(3, &long)).len(), SERVICE_NAME_LEN);
    }
}

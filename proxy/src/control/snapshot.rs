//! The snapshot requests read: the routes, every entry's version, and the replica sets the
//! routes point to, and how the next snapshot is derived from the last one.
use std::{net::IpAddr, sync::Arc};

use crate::{
    dataplane::{Backend, L4Service},
    routes::{Destination, RouteTable, Service},
    upstream::{ReplicaSet, UpstreamKey},
    versioning::Versions,
};

/// One consistent view of the configuration: the routes and the replica sets they point to.
///
/// Like the route table, it is made of persistent maps: the snapshot after a change shares
/// everything but that change with the one before, so a change costs O(log n) however many
/// services there are.
#[derive(Clone, Default)]
pub struct Snapshot {
    /// The route table.
    pub routes: RouteTable,
    /// The version of every service (live or removed) and API certificate, and their digest.
    pub versions: Versions,
    /// Per service, the replica set of each destination (by position).
    sets: imbl::HashMap<String, Arc<[Arc<ReplicaSet>]>>,
    /// Every replica set in use, with the services that use it.
    upstreams: imbl::HashMap<UpstreamKey, Upstream>,
}

/// A replica set and its users (a set is shared by every destination with the same key).
#[derive(Clone)]
struct Upstream {
    set: Arc<ReplicaSet>,
    users: imbl::OrdSet<String>,
}

impl Snapshot {
    /// The replica set serving `dest` of `service`.
    pub fn upstream(&self, service: &Service, dest: &Destination) -> Option<&Arc<ReplicaSet>> {
        let sets = self.sets.get(&service.name)?;
        // `dest` is one of the snapshot's own destinations: find it by address first.
        let pos = service
            .destinations
            .iter()
            .position(|d| std::ptr::eq(d, dest))
            .or_else(|| service.destinations.iter().position(|d| d == dest))?;
        sets.get(pos)
    }

    /// Every service with the replica sets of its destinations (by position), in no order.
    pub fn service_sets(&self) -> impl Iterator<Item = (&String, &[Arc<ReplicaSet>])> {
        self.sets.iter().map(|(name, sets)| (name, &sets[..]))
    }

    /// Every replica set, for refreshing.
    pub fn upstreams(&self) -> impl Iterator<Item = &Arc<ReplicaSet>> {
        self.upstreams.values().map(|u| &u.set)
    }

    /// The TCP-mode services with their replicas now, as the fast path programs them; their
    /// listeners are bound to `listen`.
    pub fn l4_services(&self, listen: IpAddr) -> Vec<L4Service> {
        self.routes
            .tcp_services()
            .filter_map(|(service, dest)| {
                Some(L4Service {
                    name: service.name.clone(),
                    listen,
                    port: dest.src_port?,
                    replicas: self
                        .upstream(service, dest)
                        .map(|set| set.addrs())
                        .unwrap_or_default(),
                    idle_timeout: dest.timeout_tunnel,
                })
            })
            .collect()
    }

    /// Every replica known now, with its service, sorted (what the data plane should count).
    /// A replica several services share is counted for the first of them by name.
    pub fn backends(&self) -> Vec<Backend> {
        let mut backends: Vec<Backend> = self
            .upstreams
            .values()
            .filter_map(|u| Some((u, u.users.get_min()?)))
            .flat_map(|(u, service)| {
                u.set.addrs().into_iter().map(move |addr| Backend {
                    addr,
                    service: service.clone(),
                })
            })
            .collect();
        backends.sort();
        backends.dedup_by(|a, b| a.addr == b.addr);
        backends
    }

    /// The snapshot for `routes` and `versions`, whose routes differ from this snapshot's in
    /// the services named in `changed` only. Replica sets (and what they know) are kept for
    /// every key still in use; returns the sets created for the change too.
    pub(super) fn with_changes(
        &self,
        routes: RouteTable,
        versions: Versions,
        changed: &[String],
        make_set: &impl Fn(UpstreamKey) -> Arc<ReplicaSet>,
    ) -> (Snapshot, Vec<Arc<ReplicaSet>>) {
        let mut next = Snapshot {
            routes,
            versions,
            sets: self.sets.clone(),
            upstreams: self.upstreams.clone(),
        };
        let old_keys: Vec<(&String, Vec<UpstreamKey>)> = changed
            .iter()
            .map(|name| {
                let keys = self.routes.services().get(name).map(|s| keys_of(s));
                (name, keys.unwrap_or_default())
            })
            .collect();
        for (name, keys) in &old_keys {
            for key in keys {
                if let Some(u) = next.upstreams.get_mut(key) {
                    u.users.remove(*name);
                }
            }
        }
        let mut created = Vec::new();
        for name in changed {
            let Some(service) = next.routes.services().get(name).cloned() else {
                next.sets.remove(name);
                continue;
            };
            let sets: Vec<Arc<ReplicaSet>> = keys_of(&service)
                .into_iter()
                .map(|key| match next.upstreams.get_mut(&key) {
                    Some(u) => {
                        u.users.insert(name.clone());
                        Arc::clone(&u.set)
                    }
                    None => {
                        let set = make_set(key.clone());
                        created.push(Arc::clone(&set));
                        let upstream = Upstream {
                            set: Arc::clone(&set),
                            users: imbl::OrdSet::unit(name.clone()),
                        };
                        next.upstreams.insert(key, upstream);
                        set
                    }
                })
                .collect();
            next.sets.insert(name.clone(), sets.into());
        }
        for key in old_keys.iter().flat_map(|(_, keys)| keys) {
            if next.upstreams.get(key).is_some_and(|u| u.users.is_empty()) {
                next.upstreams.remove(key);
            }
        }
        (next, created)
    }
}

/// The upstream key of each of `service`'s destinations, in order.
fn keys_of(service: &Service) -> Vec<UpstreamKey> {
    service
        .destinations
        .iter()
        .map(|dest| upstream_key(service, dest))
        .collect()
}

fn upstream_key(service: &Service, dest: &Destination) -> UpstreamKey {
    UpstreamKey {
        host: service.upstream_host(dest).to_owned(),
        port: dest.port,
        direct: dest.outbound_hostname.is_some(),
    }
}

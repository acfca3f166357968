//! Applies configuration changes: validate, build a whole new snapshot, persist it, then swap
//! it in. The request path only `load()`s the snapshot; a rejected change never touches it.
use std::{net::IpAddr, sync::Arc, time::Duration};

use arc_swap::{ArcSwap, Guard};
use futures_util::future::join_all;
use prometheus_client::metrics::counter::Counter;
use tokio::sync::Notify;

use crate::{
    dataplane::{Backend, L4Service},
    routes::{Destination, RouteError, RouteTable, Service},
    state::{Change, Saved, StateError, StateFile},
    upstream::{ReplicaResolver, ReplicaSet, UpstreamKey},
};

/// How long a reconfigure waits for a new service's first DNS answer before replying (the
/// article's curl follows the reconfigure at once). A slower answer is not an error.
const FIRST_RESOLVE_WAIT: Duration = Duration::from_secs(2);

/// One consistent view of the configuration: the routes and the replica sets they point to.
///
/// Like the route table, it is made of persistent maps: the snapshot after a change shares
/// everything but that change with the one before, so a change costs O(log n) however many
/// services there are.
#[derive(Clone, Default)]
pub struct Snapshot {
    /// The route table.
    pub routes: RouteTable,
    /// When the configuration last changed (unix milliseconds): here, or on the peer it was
    /// adopted from.
    pub changed_at_ms: u64,
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

    /// The snapshot for `routes`, changed at `changed_at_ms`, which differ from this
    /// snapshot's in the services named in `changed` only. Replica sets (and what they know)
    /// are kept for every key still in use; returns the sets created for the change too.
    fn with_changes(
        &self,
        routes: RouteTable,
        changed_at_ms: u64,
        changed: &[String],
        make_set: &impl Fn(UpstreamKey) -> Arc<ReplicaSet>,
    ) -> (Snapshot, Vec<Arc<ReplicaSet>>) {
        let mut next = Snapshot {
            routes,
            changed_at_ms,
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

/// What the control plane tells the rest of the process.
#[derive(Clone, Default)]
pub struct ControlHooks {
    /// Counts applied changes (`flowproxy_config_reloads_total`).
    pub reloads: Counter,
    /// Notified when routes or replicas change.
    pub changed: Arc<Notify>,
}

/// Why a change was refused.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// The change is invalid (status 400/409).
    #[error(transparent)]
    Route(#[from] RouteError),
    /// The change could not be saved, so it was not applied (status 500).
    #[error(transparent)]
    Persist(#[from] StateError),
}

impl ControlError {
    /// The HTTP status for this error.
    pub fn status(&self) -> u16 {
        match self {
            Self::Route(e) => e.status(),
            Self::Persist(_) => 500,
        }
    }
}

/// Owner of the running configuration.
pub struct ControlPlane {
    current: ArcSwap<Snapshot>,
    writer: tokio::sync::Mutex<()>,
    state: StateFile,
    resolver: ReplicaResolver,
    hooks: ControlHooks,
}

impl ControlPlane {
    /// Starts from what the state file held.
    pub fn new(
        saved: Saved,
        state: StateFile,
        resolver: ReplicaResolver,
        hooks: ControlHooks,
    ) -> Self {
        let make_set =
            |key: UpstreamKey| ReplicaSet::new(key, resolver.clone(), Arc::clone(&hooks.changed));
        let names: Vec<String> = saved.routes.services().keys().cloned().collect();
        let (snapshot, _) =
            Snapshot::default().with_changes(saved.routes, saved.changed_at_ms, &names, &make_set);
        Self {
            current: ArcSwap::from_pointee(snapshot),
            writer: tokio::sync::Mutex::new(()),
            state,
            resolver,
            hooks,
        }
    }

    /// The current snapshot (lock-free).
    pub fn snapshot(&self) -> Guard<Arc<Snapshot>> {
        self.current.load()
    }

    /// The current snapshot, owned, for holding across awaits.
    pub fn snapshot_full(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    /// Adds or replaces `service`.
    pub async fn reconfigure(&self, service: Service) -> Result<(), ControlError> {
        let name = service.name.clone();
        self.apply(Stamp::Now, |old| {
            let change = Change::Put(service.params.clone());
            let routes = old.routes.with_service(service)?;
            Ok(Some(Edit::One {
                name,
                change,
                routes,
            }))
        })
        .await
        .map(drop)
    }

    /// Removes the service called `name`; returns whether it existed.
    pub async fn remove(&self, name: &str) -> Result<bool, ControlError> {
        let mut removed = false;
        self.apply(Stamp::Now, |old| {
            let (routes, existed) = old.routes.without_service(name);
            removed = existed;
            let (name, change) = (name.to_owned(), Change::Remove(name.to_owned()));
            Ok(Some(Edit::One {
                name,
                change,
                routes,
            }))
        })
        .await?;
        Ok(removed)
    }

    /// Marks the configuration as changed now without changing the routes (a certificate,
    /// which is part of what replicas compare, was added).
    pub async fn touch(&self) -> Result<(), ControlError> {
        self.apply(Stamp::Now, |old| Ok(Some(Edit::All(old.routes.clone()))))
            .await
            .map(drop)
    }

    /// Replaces every service with `routes`, keeping the change time of the replica they come
    /// from, unless the configuration changed since `expected_changed_at_ms` (then nothing
    /// happens and `false` is returned: a newer local change wins over the adoption).
    pub async fn adopt(
        &self,
        routes: RouteTable,
        changed_at_ms: u64,
        expected_changed_at_ms: u64,
    ) -> Result<bool, ControlError> {
        self.apply(Stamp::At(changed_at_ms), |old| {
            Ok((old.changed_at_ms == expected_changed_at_ms).then_some(Edit::All(routes)))
        })
        .await
    }

    /// Makes new routes from the current snapshot with `edit` (`None`: nothing to do), saves
    /// them, then swaps them in; returns whether anything was applied.
    async fn apply(
        &self,
        stamp: Stamp,
        edit: impl FnOnce(&Snapshot) -> Result<Option<Edit>, ControlError>,
    ) -> Result<bool, ControlError> {
        let writer = self.writer.lock().await;
        let old = self.current.load_full();
        let Some(edit) = edit(&old)? else {
            return Ok(false);
        };
        let changed_at_ms = match stamp {
            // Strictly after the previous change, even if the clock went back.
            Stamp::Now => unix_millis().max(old.changed_at_ms + 1),
            Stamp::At(ms) => ms,
        };
        let (routes, journal, changed) = match edit {
            Edit::One {
                name,
                change,
                routes,
            } => (routes, Some(change), vec![name]),
            Edit::All(routes) => {
                let changed = changed_services(&old.routes, &routes);
                (routes, None, changed)
            }
        };
        // An fsync: off the runtime's worker threads. The table is a cheap clone.
        let state = self.state.clone();
        let saved = routes.clone();
        tokio::task::spawn_blocking(move || state.record(journal.as_ref(), &saved, changed_at_ms))
            .await
            .map_err(|e| ControlError::Persist(StateError::Task(e.to_string())))??;
        let make_set = |key: UpstreamKey| {
            ReplicaSet::new(key, self.resolver.clone(), Arc::clone(&self.hooks.changed))
        };
        let (snapshot, fresh) = old.with_changes(routes, changed_at_ms, &changed, &make_set);
        self.current.store(Arc::new(snapshot));
        self.hooks.reloads.inc();
        self.hooks.changed.notify_one();
        // The change is in place: later changes need not wait for this one's DNS answers.
        drop(writer);
        let fresh = fresh.iter().map(|set| set.ensure_resolved());
        let _ = tokio::time::timeout(FIRST_RESOLVE_WAIT, join_all(fresh)).await;
        Ok(true)
    }

    /// Re-resolves every service now (`/reload`).
    pub async fn refresh_all(&self) {
        let snapshot = self.current.load_full();
        join_all(snapshot.upstreams().map(|set| set.refresh())).await;
    }

    /// Re-resolves every service every `interval`, forever.
    pub async fn refresh_periodically(&self, interval: Duration) {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            self.refresh_all().await;
        }
    }
}

fn upstream_key(service: &Service, dest: &Destination) -> UpstreamKey {
    UpstreamKey {
        host: service.upstream_host(dest).to_owned(),
        port: dest.port,
        direct: dest.outbound_hostname.is_some(),
    }
}

/// What a change does to the routes.
enum Edit {
    /// One service added, replaced or removed (`change` is what the state journal records).
    One {
        name: String,
        change: Change,
        routes: RouteTable,
    },
    /// Every service replaced at once (the state file is written whole).
    All(RouteTable),
}

/// The names of the services that differ between `old` and `new`.
fn changed_services(old: &RouteTable, new: &RouteTable) -> Vec<String> {
    let (old, new) = (old.services(), new.services());
    let gone = old.keys().filter(|name| !new.contains_key(*name));
    let differing = new
        .iter()
        .filter(|(name, service)| old.get(*name).is_none_or(|o| o.params != service.params))
        .map(|(name, _)| name);
    gone.chain(differing).cloned().collect()
}

/// The change time a change records.
enum Stamp {
    /// This replica's clock.
    Now,
    /// The change time of the replica the configuration was adopted from.
    At(u64),
}

/// Milliseconds since the Unix epoch.
pub fn unix_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

//! Applies configuration changes: validate, build a whole new snapshot, persist it, then swap
//! it in. The request path only `load()`s the snapshot; a rejected change never touches it.
use std::{sync::Arc, time::Duration};

use arc_swap::{ArcSwap, Guard};
use futures_util::future::join_all;
use prometheus_client::metrics::counter::Counter;
use tokio::sync::Notify;

use crate::{
    dataplane::Backend,
    routes::{Destination, RouteError, RouteTable, Service},
    state::{Change, StateError, StateFile},
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
#[derive(Clone)]
pub struct Snapshot {
    /// The route table.
    pub routes: RouteTable,
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

    /// The snapshot for `routes`, which differ from this snapshot's in the service `changed`
    /// only. Replica sets (and what they know) are kept for every key still in use; returns
    /// the sets created for the change too.
    fn with_change(
        &self,
        routes: RouteTable,
        changed: &str,
        make_set: &impl Fn(UpstreamKey) -> Arc<ReplicaSet>,
    ) -> (Snapshot, Vec<Arc<ReplicaSet>>) {
        let mut next = Snapshot {
            routes,
            sets: self.sets.clone(),
            upstreams: self.upstreams.clone(),
        };
        let old_keys: Vec<UpstreamKey> = self
            .routes
            .services()
            .get(changed)
            .map(|s| keys_of(s))
            .unwrap_or_default();
        for key in &old_keys {
            if let Some(u) = next.upstreams.get_mut(key) {
                u.users.remove(changed);
            }
        }
        let mut created = Vec::new();
        match next.routes.services().get(changed).cloned() {
            Some(service) => {
                let sets: Vec<Arc<ReplicaSet>> = keys_of(&service)
                    .into_iter()
                    .map(|key| match next.upstreams.get_mut(&key) {
                        Some(u) => {
                            u.users.insert(changed.to_owned());
                            Arc::clone(&u.set)
                        }
                        None => {
                            let set = make_set(key.clone());
                            created.push(Arc::clone(&set));
                            let users = imbl::OrdSet::unit(changed.to_owned());
                            let upstream = Upstream {
                                set: Arc::clone(&set),
                                users,
                            };
                            next.upstreams.insert(key, upstream);
                            set
                        }
                    })
                    .collect();
                next.sets.insert(changed.to_owned(), sets.into());
            }
            None => {
                next.sets.remove(changed);
            }
        }
        for key in &old_keys {
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
    /// Starts from `routes` (restored from the state file).
    pub fn new(
        routes: RouteTable,
        state: StateFile,
        resolver: ReplicaResolver,
        hooks: ControlHooks,
    ) -> Self {
        let make_set =
            |key: UpstreamKey| ReplicaSet::new(key, resolver.clone(), Arc::clone(&hooks.changed));
        let mut snapshot = Snapshot {
            routes: routes.clone(),
            sets: imbl::HashMap::new(),
            upstreams: imbl::HashMap::new(),
        };
        for name in routes.services().keys() {
            snapshot = snapshot.with_change(routes.clone(), name, &make_set).0;
        }
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
        let change = Change::Put(service.params.clone());
        self.apply(&name, change, |routes| Ok(routes.with_service(service)?))
            .await
    }

    /// Removes the service called `name`; returns whether it existed.
    pub async fn remove(&self, name: &str) -> Result<bool, ControlError> {
        let mut removed = false;
        self.apply(name, Change::Remove(name.to_owned()), |routes| {
            let (table, existed) = routes.without_service(name);
            removed = existed;
            Ok(table)
        })
        .await?;
        Ok(removed)
    }

    /// Applies a change to the service `name`: the new table, saved (`change` is what the
    /// state file records), then swapped in.
    async fn apply(
        &self,
        name: &str,
        change: Change,
        update: impl FnOnce(&RouteTable) -> Result<RouteTable, ControlError>,
    ) -> Result<(), ControlError> {
        let writer = self.writer.lock().await;
        let old = self.current.load_full();
        let routes = update(&old.routes)?;
        // An fsync: off the runtime's worker threads. The table is a cheap clone.
        let state = self.state.clone();
        let saved = routes.clone();
        tokio::task::spawn_blocking(move || state.record(&change, &saved))
            .await
            .map_err(|e| ControlError::Persist(StateError::Task(e.to_string())))??;
        let make_set = |key: UpstreamKey| {
            ReplicaSet::new(key, self.resolver.clone(), Arc::clone(&self.hooks.changed))
        };
        let (snapshot, fresh) = old.with_change(routes, name, &make_set);
        self.current.store(Arc::new(snapshot));
        self.hooks.reloads.inc();
        self.hooks.changed.notify_one();
        // The change is in place: later changes need not wait for this one's DNS answers.
        drop(writer);
        let fresh = fresh.iter().map(|set| set.ensure_resolved());
        let _ = tokio::time::timeout(FIRST_RESOLVE_WAIT, join_all(fresh)).await;
        Ok(())
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

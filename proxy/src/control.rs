//! Applies configuration changes: validate, build a whole new snapshot, persist it, then swap
//! it in. The request path only `load()`s the snapshot; a rejected change never touches it.
use std::{collections::HashMap, net::IpAddr, sync::Arc, time::Duration};

use arc_swap::{ArcSwap, Guard};
use futures_util::future::join_all;
use prometheus_client::metrics::counter::Counter;
use tokio::sync::Notify;

use crate::{
    dataplane::{Backend, L4Service},
    routes::{Destination, RouteError, RouteTable, Service},
    state::{Saved, StateError, StateFile},
    upstream::{ReplicaResolver, ReplicaSet, UpstreamKey},
};

/// How long a reconfigure waits for a new service's first DNS answer before replying (the
/// article's curl follows the reconfigure at once). A slower answer is not an error.
const FIRST_RESOLVE_WAIT: Duration = Duration::from_secs(2);

/// One consistent view of the configuration: the routes and the replica sets they point to.
pub struct Snapshot {
    /// The route table.
    pub routes: RouteTable,
    /// When the configuration last changed (unix milliseconds): here, or on the peer it was
    /// adopted from.
    pub changed_at_ms: u64,
    upstreams: HashMap<UpstreamKey, Arc<ReplicaSet>>,
}

impl Snapshot {
    /// The replica set serving `dest` of `service`.
    pub fn upstream(&self, service: &Service, dest: &Destination) -> Option<&Arc<ReplicaSet>> {
        self.upstreams.get(&upstream_key(service, dest))
    }

    /// Every replica set, for refreshing.
    pub fn upstreams(&self) -> impl Iterator<Item = &Arc<ReplicaSet>> {
        self.upstreams.values()
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
    pub fn backends(&self) -> Vec<Backend> {
        let mut backends: Vec<Backend> = self
            .routes
            .services()
            .values()
            .flat_map(|service| {
                service
                    .destinations
                    .iter()
                    .filter_map(move |dest| self.upstream(service, dest))
                    .flat_map(move |set| {
                        set.addrs().into_iter().map(move |addr| Backend {
                            addr,
                            service: service.name.clone(),
                        })
                    })
            })
            .collect();
        backends.sort();
        backends.dedup_by(|a, b| a.addr == b.addr);
        backends
    }
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
        let snapshot = build_snapshot(
            saved.routes,
            saved.changed_at_ms,
            &HashMap::new(),
            &resolver,
            &hooks.changed,
        );
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
        self.apply(Stamp::Now, |old| {
            Ok(Some(old.routes.with_service(service)?))
        })
        .await
        .map(drop)
    }

    /// Removes the service called `name`; returns whether it existed.
    pub async fn remove(&self, name: &str) -> Result<bool, ControlError> {
        let mut removed = false;
        self.apply(Stamp::Now, |old| {
            let (table, existed) = old.routes.without_service(name);
            removed = existed;
            Ok(Some(table))
        })
        .await?;
        Ok(removed)
    }

    /// Marks the configuration as changed now without changing the routes (a certificate,
    /// which is part of what replicas compare, was added).
    pub async fn touch(&self) -> Result<(), ControlError> {
        self.apply(Stamp::Now, |old| Ok(Some(old.routes.clone())))
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
            Ok((old.changed_at_ms == expected_changed_at_ms).then_some(routes))
        })
        .await
    }

    /// Makes new routes from the current snapshot with `change` (`None`: nothing to do), saves
    /// them, then swaps them in; returns whether anything was applied.
    async fn apply(
        &self,
        stamp: Stamp,
        change: impl FnOnce(&Snapshot) -> Result<Option<RouteTable>, ControlError>,
    ) -> Result<bool, ControlError> {
        let writer = self.writer.lock().await;
        let old = self.current.load_full();
        let Some(routes) = change(&old)? else {
            return Ok(false);
        };
        let changed_at_ms = match stamp {
            // Strictly after the previous change, even if the clock went back.
            Stamp::Now => unix_millis().max(old.changed_at_ms + 1),
            Stamp::At(ms) => ms,
        };
        // Two fsyncs: off the runtime's worker threads.
        let state = self.state.clone();
        let routes = tokio::task::spawn_blocking(move || {
            state.save(&routes, changed_at_ms).map(|()| routes)
        })
        .await
        .map_err(|e| ControlError::Persist(StateError::Task(e.to_string())))??;
        let snapshot = Arc::new(build_snapshot(
            routes,
            changed_at_ms,
            &old.upstreams,
            &self.resolver,
            &self.hooks.changed,
        ));
        self.current.store(Arc::clone(&snapshot));
        self.hooks.reloads.inc();
        self.hooks.changed.notify_one();
        // The change is in place: later changes need not wait for this one's DNS answers.
        drop(writer);
        let fresh = snapshot
            .upstreams()
            .filter(|set| !old.upstreams.contains_key(set.key()))
            .map(|set| set.ensure_resolved());
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

/// Builds the snapshot for `routes`, reusing the replica sets (and what they know) of `previous`.
fn build_snapshot(
    routes: RouteTable,
    changed_at_ms: u64,
    previous: &HashMap<UpstreamKey, Arc<ReplicaSet>>,
    resolver: &ReplicaResolver,
    changed: &Arc<Notify>,
) -> Snapshot {
    let mut upstreams = HashMap::new();
    for service in routes.services().values() {
        for dest in &service.destinations {
            let key = upstream_key(service, dest);
            let set = previous.get(&key).cloned().unwrap_or_else(|| {
                ReplicaSet::new(key.clone(), resolver.clone(), Arc::clone(changed))
            });
            upstreams.insert(key, set);
        }
    }
    Snapshot {
        routes,
        changed_at_ms,
        upstreams,
    }
}

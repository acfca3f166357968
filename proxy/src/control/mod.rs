//! Applies configuration changes: validate, build a whole new snapshot, persist it, then swap
//! it in. The request path only `load()`s the snapshot; a rejected change never touches it.
//!
//! Every change to a service or an API certificate gets a version from this replica's hybrid
//! logical clock, kept in the snapshot beside the routes (`versioning::Versions`); a removal
//! leaves a tombstone. A peer's entry is applied only if its version wins over the one here,
//! so replicas merge instead of replacing each other.
mod edit;
mod hooks;
mod snapshot;

use std::{sync::Arc, time::Duration};

use arc_swap::{ArcSwap, Guard};
use futures_util::future::join_all;

use self::edit::{Edit, assign_missing, cert, newer_here, put, remove};
pub use self::{
    hooks::{ChangeCounters, ControlHooks},
    snapshot::Snapshot,
};
use crate::{
    routes::{RouteError, Service},
    state::{Record, Saved, StateError, StateFile},
    upstream::{ReplicaResolver, ReplicaSet, UpstreamKey},
    versioning::{Hlc, Kind, Stamp, Version},
};

/// How long a reconfigure waits for a new service's first DNS answer before replying (the
/// article's curl follows the reconfigure at once). A slower answer is not an error.
const FIRST_RESOLVE_WAIT: Duration = Duration::from_secs(2);

/// Whether applying a change waits for its new services' first DNS answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dns {
    /// Wait (at most [`FIRST_RESOLVE_WAIT`]): the caller answers a person who curls next.
    Wait,
    /// Do not: the caller refreshes every replica set once it has applied a batch.
    Later,
}

/// Waits, at most [`FIRST_RESOLVE_WAIT`], for the first answers of `fresh` replica sets.
async fn first_answers(fresh: Vec<Arc<ReplicaSet>>) {
    let fresh = fresh.iter().map(|set| set.ensure_resolved());
    let _ = tokio::time::timeout(FIRST_RESOLVE_WAIT, join_all(fresh)).await;
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
    clock: Arc<Hlc>,
}

impl ControlPlane {
    /// Starts from what the state file held, with `api_certs` the API certificates on disk.
    /// Entries saved without a version (state written before versions existed, or a
    /// certificate file saved just before a crash) get one now, at the saved change time so
    /// that any newer change on a peer still wins, and the state is rewritten with them.
    pub fn new(
        saved: Saved,
        api_certs: &[String],
        state: StateFile,
        resolver: ReplicaResolver,
        hooks: ControlHooks,
        clock: Arc<Hlc>,
    ) -> Result<Self, StateError> {
        let make_set =
            |key: UpstreamKey| ReplicaSet::new(key, resolver.clone(), Arc::clone(&hooks.changed));
        let mut versions = saved.versions;
        let legacy = Stamp {
            version: Version {
                ms: saved.changed_at_ms,
                counter: 0,
                replica: clock.replica(),
            },
            live: true,
        };
        let assigned = assign_missing(
            &mut versions,
            Kind::Service,
            saved.routes.services().keys(),
            legacy,
        ) + assign_missing(&mut versions, Kind::Cert, api_certs.iter(), legacy);
        if let Some(max) = versions.max_version() {
            clock.observe(max);
        }
        if assigned > 0 {
            tracing::info!(
                entries = assigned,
                "versions assigned to entries saved without one"
            );
            state.save(&saved.routes, &versions)?;
        }
        let names: Vec<String> = saved.routes.services().keys().cloned().collect();
        let (snapshot, _) =
            Snapshot::default().with_changes(saved.routes, versions, &names, &make_set);
        hooks.changes.touch();
        Ok(Self {
            current: ArcSwap::from_pointee(snapshot),
            writer: tokio::sync::Mutex::new(()),
            state,
            resolver,
            hooks,
            clock,
        })
    }

    /// The current snapshot (lock-free).
    pub fn snapshot(&self) -> Guard<Arc<Snapshot>> {
        self.current.load()
    }

    /// The current snapshot, owned, for holding across awaits.
    pub fn snapshot_full(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    /// The counters of changes applied and refused, for refusals made before a change gets
    /// here (a request that does not parse, a port that cannot be bound).
    pub fn change_counters(&self) -> &ChangeCounters {
        &self.hooks.changes
    }

    /// This replica's clock (peers' versions are observed through it).
    pub fn clock(&self) -> &Hlc {
        &self.clock
    }

    /// Adds or replaces `service`, at a new version.
    pub async fn reconfigure(&self, service: Service) -> Result<(), ControlError> {
        self.apply(|old| put(old, service, None)).await.map(drop)
    }

    /// Removes the service called `name`, leaving a tombstone; returns whether it existed.
    pub async fn remove(&self, name: &str) -> Result<bool, ControlError> {
        self.apply(|old| Ok(remove(old, name, None))).await
    }

    /// Records that the API certificate `name` was added or replaced (its file is written).
    pub async fn cert_changed(&self, name: &str) -> Result<(), ControlError> {
        self.apply(|old| Ok(Some(cert(old, name, true, None))))
            .await
            .map(drop)
    }

    /// Applies a peer's entry for the service `name` (`None`: a tombstone) made at `version`,
    /// unless the entry here is newer. Returns whether it applied. Like a reconfigure, it
    /// waits (briefly) for a new service's first DNS answer when `dns` is [`Dns::Wait`].
    pub async fn merge_service(
        &self,
        name: &str,
        service: Option<Service>,
        version: Version,
        dns: Dns,
    ) -> Result<bool, ControlError> {
        let fresh = self
            .apply_edit(|old| {
                if newer_here(old, Kind::Service, name, version) {
                    return Ok(None);
                }
                match service {
                    Some(service) => put(old, service, Some(version)),
                    None => Ok(remove(old, name, Some(version))),
                }
            })
            .await?;
        let Some(fresh) = fresh else {
            return Ok(false);
        };
        match dns {
            Dns::Wait => first_answers(fresh).await,
            // A merge of many entries must not wait for each: the caller refreshes once.
            Dns::Later => drop(fresh),
        }
        Ok(true)
    }

    /// Records a peer's version of the API certificate `name` (its file is already written
    /// or removed), unless the one here is newer. Returns whether it applied.
    pub async fn merge_cert(
        &self,
        name: &str,
        live: bool,
        version: Version,
    ) -> Result<bool, ControlError> {
        self.apply(|old| {
            Ok((!newer_here(old, Kind::Cert, name, version))
                .then(|| cert(old, name, live, Some(version))))
        })
        .await
    }

    /// Forgets tombstones made more than `ttl` ago; returns how many.
    pub async fn collect_tombstones(&self, ttl: Duration) -> Result<usize, ControlError> {
        let before = self
            .clock
            .physical_ms()
            .saturating_sub(ttl.as_millis() as u64);
        let mut count = 0;
        self.apply(|old| {
            let forget = old.versions.tombstones_before(before);
            count = forget.len();
            Ok((!forget.is_empty()).then(|| Edit {
                routes: old.routes.clone(),
                changed: Vec::new(),
                entry: None,
                forget,
            }))
        })
        .await?;
        Ok(count)
    }

    /// [`ControlPlane::apply_edit`], then a brief wait for the first DNS answers of the
    /// replica sets it made; returns whether anything was applied.
    async fn apply(
        &self,
        edit: impl FnOnce(&Snapshot) -> Result<Option<Edit>, ControlError>,
    ) -> Result<bool, ControlError> {
        match self.apply_edit(edit).await? {
            Some(fresh) => {
                first_answers(fresh).await;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Makes new routes and versions from the current snapshot with `edit` (`None`: nothing
    /// to do), saves them, then swaps them in; returns the replica sets made for it (not yet
    /// resolved), or `None` if nothing was applied.
    async fn apply_edit(
        &self,
        edit: impl FnOnce(&Snapshot) -> Result<Option<Edit>, ControlError>,
    ) -> Result<Option<Vec<Arc<ReplicaSet>>>, ControlError> {
        let writer = self.writer.lock().await;
        let old = self.current.load_full();
        let edit = match edit(&old) {
            Ok(Some(edit)) => edit,
            Ok(None) => return Ok(None),
            Err(e) => {
                self.count_refusal(&e);
                return Err(e);
            }
        };
        let mut versions = old.versions.clone();
        // Taken under the writer lock: versions made here follow the order changes apply in.
        // Forgetting old tombstones changes what is stored, not the configuration.
        let is_change = edit.entry.is_some();
        let record = edit.entry.map(|(change, version)| {
            let version = version.unwrap_or_else(|| self.clock.now());
            let (kind, name, live) = change.entry();
            versions.set(kind, &name, Stamp { version, live });
            Record { change, version }
        });
        for (kind, name) in &edit.forget {
            versions.forget(*kind, name);
        }
        // An fsync: off the runtime's worker threads. The table and versions are cheap clones.
        let state = self.state.clone();
        let (saved, saved_versions) = (edit.routes.clone(), versions.clone());
        let saved = tokio::task::spawn_blocking(move || {
            state.record(record.as_ref(), &saved, &saved_versions)
        })
        .await
        .map_err(|e| ControlError::Persist(StateError::Task(e.to_string())))
        .and_then(|saved| saved.map_err(ControlError::from));
        if let Err(e) = saved {
            self.count_refusal(&e);
            return Err(e);
        }
        let make_set = |key: UpstreamKey| {
            ReplicaSet::new(key, self.resolver.clone(), Arc::clone(&self.hooks.changed))
        };
        let (snapshot, fresh) = old.with_changes(edit.routes, versions, &edit.changed, &make_set);
        self.current.store(Arc::new(snapshot));
        self.hooks.reloads.inc();
        if is_change {
            self.hooks.changes.applied();
        }
        self.hooks.changed.notify_one();
        // The change is in place: later changes need not wait for this one's DNS answers.
        drop(writer);
        Ok(Some(fresh))
    }

    /// Counts a change that was not applied: `rejected` when it was invalid, `failed` when it
    /// could not be saved.
    fn count_refusal(&self, error: &ControlError) {
        match error {
            ControlError::Route(_) => self.hooks.changes.rejected.inc(),
            ControlError::Persist(_) => self.hooks.changes.failed.inc(),
        };
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

#[cfg(test)]
mod tests;

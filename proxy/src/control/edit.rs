//! The edits a change makes to the last snapshot: what the routes become, which entry is
//! recorded at which version, and which tombstones are forgotten.
use std::collections::BTreeSet;

use super::{ControlError, Snapshot};
use crate::{
    routes::{RouteTable, Service},
    state::Change,
    versioning::{Kind, Stamp, Version, Versions},
};

/// What a change does: the routes after it, the services whose routes changed, the entry it
/// records (its version: `None` for a new one from this replica's clock), and the entries it
/// forgets (collected tombstones; the state file is then written whole).
pub(super) struct Edit {
    pub routes: RouteTable,
    pub changed: Vec<String>,
    pub entry: Option<(Change, Option<Version>)>,
    pub forget: Vec<(Kind, String)>,
}

/// The edit adding or replacing `service`.
pub(super) fn put(
    old: &Snapshot,
    service: Service,
    version: Option<Version>,
) -> Result<Option<Edit>, ControlError> {
    let name = service.name.clone();
    let change = Change::Put(service.params.clone());
    let routes = old.routes.with_service(service)?;
    Ok(Some(Edit {
        routes,
        changed: vec![name],
        entry: Some((change, version)),
        forget: Vec::new(),
    }))
}

/// The edit removing `name`: from this replica's API only if it exists, from a peer always
/// (its tombstone must be kept even for a service never seen here).
pub(super) fn remove(old: &Snapshot, name: &str, version: Option<Version>) -> Option<Edit> {
    let (routes, existed) = old.routes.without_service(name);
    (existed || version.is_some()).then(|| Edit {
        routes,
        changed: vec![name.to_owned()],
        entry: Some((Change::Remove(name.to_owned()), version)),
        forget: Vec::new(),
    })
}

/// The edit recording an API certificate's new version.
pub(super) fn cert(old: &Snapshot, name: &str, live: bool, version: Option<Version>) -> Edit {
    let change = if live {
        Change::Cert(name.to_owned())
    } else {
        Change::CertRemove(name.to_owned())
    };
    Edit {
        routes: old.routes.clone(),
        changed: Vec::new(),
        entry: Some((change, version)),
        forget: Vec::new(),
    }
}

/// Whether the entry here is newer than a peer's at `version` (then the peer's loses).
pub(super) fn newer_here(old: &Snapshot, kind: Kind, name: &str, version: Version) -> bool {
    old.versions
        .get(kind, name)
        .is_some_and(|here| here.version > version)
}

/// Gives `stamp` to each of `names` without a live stamp (and drops live stamps of entries
/// that are not there); returns how many were given one.
pub(super) fn assign_missing<'a>(
    versions: &mut Versions,
    kind: Kind,
    names: impl Iterator<Item = &'a String>,
    stamp: Stamp,
) -> usize {
    let present: BTreeSet<&String> = names.collect();
    let stale: Vec<String> = versions
        .entries(kind)
        .filter(|(name, s)| s.live && !present.contains(name))
        .map(|(name, _)| name.clone())
        .collect();
    for name in stale {
        versions.forget(kind, &name);
    }
    let mut assigned = 0;
    for name in present {
        if !versions.get(kind, name).is_some_and(|s| s.live) {
            versions.set(kind, name, stamp);
            assigned += 1;
        }
    }
    assigned
}

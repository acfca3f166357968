use std::{
    collections::BTreeMap,
    fs,
    path::{Path, PathBuf},
};

use super::*;
use crate::{routes::parse_reconfigure, state::StateFile};

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("flowproxy-control-{}-{name}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    dir
}

fn http(name: &str, path: &str) -> Service {
    let query: Vec<(String, String)> =
        [("serviceName", name), ("servicePath", path), ("port", "80")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
    parse_reconfigure(&query).unwrap()
}

/// A control plane over `dir`, whose DNS answers nothing at once (a closed local port).
fn plane(dir: &Path, replica: u64) -> ControlPlane {
    let state = StateFile::open(dir).unwrap();
    let saved = state.load().unwrap();
    let resolver = ReplicaResolver::new(Some("127.0.0.1:9".parse().unwrap())).unwrap();
    let clock = Arc::new(Hlc::new(replica, 0));
    ControlPlane::new(saved, &[], state, resolver, ControlHooks::default(), clock).unwrap()
}

fn stamp(plane: &ControlPlane, name: &str) -> Option<Stamp> {
    plane.snapshot().versions.get(Kind::Service, name)
}

#[tokio::test]
async fn a_removal_leaves_a_tombstone_that_only_a_later_version_beats() {
    let dir = temp_dir("tombstone");
    let plane = plane(&dir, 1);
    plane.reconfigure(http("a", "/a")).await.unwrap();
    let added = stamp(&plane, "a").unwrap();
    assert!(plane.remove("a").await.unwrap());
    let removed = stamp(&plane, "a").unwrap();
    assert!(!removed.live && removed.version > added.version);
    // A peer's copy from before the removal does not bring it back.
    assert!(
        !plane
            .merge_service("a", Some(http("a", "/a")), added.version, Dns::Later)
            .await
            .unwrap()
    );
    assert!(plane.snapshot().routes.services().is_empty());
    // A later re-add does.
    let later = Version {
        ms: removed.version.ms + 1,
        counter: 0,
        replica: 2,
    };
    assert!(
        plane
            .merge_service("a", Some(http("a", "/again")), later, Dns::Wait)
            .await
            .unwrap()
    );
    assert_eq!(stamp(&plane, "a").map(|s| s.version), Some(later));
    assert_eq!(plane.snapshot().routes.services().len(), 1);
    fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn versions_and_tombstones_survive_a_restart_and_old_ones_are_collected() {
    let dir = temp_dir("restart");
    let before = {
        let plane = plane(&dir, 1);
        plane.reconfigure(http("kept", "/kept")).await.unwrap();
        plane.reconfigure(http("gone", "/gone")).await.unwrap();
        plane.remove("gone").await.unwrap();
        plane.snapshot().versions.digest()
    };
    let plane = plane(&dir, 7);
    assert_eq!(
        plane.snapshot().versions.digest(),
        before,
        "the same entries back"
    );
    assert!(stamp(&plane, "gone").is_some_and(|s| !s.live));
    // The restored versions are behind the clock: a new change follows them.
    plane.reconfigure(http("kept", "/kept2")).await.unwrap();
    assert_eq!(stamp(&plane, "kept").map(|s| s.version.replica), Some(7));
    assert_eq!(
        plane
            .collect_tombstones(Duration::from_secs(3600))
            .await
            .unwrap(),
        0
    );
    assert_eq!(plane.collect_tombstones(Duration::ZERO).await.unwrap(), 1);
    assert_eq!(stamp(&plane, "gone"), None);
    fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn services_saved_without_versions_get_them_at_their_saved_time() {
    let dir = temp_dir("legacy");
    fs::create_dir_all(&dir).unwrap();
    let service = BTreeMap::from([
        ("serviceName", "old"),
        ("servicePath", "/old"),
        ("port", "80"),
    ]);
    let doc = serde_json::json!({"version": 1, "changed_at_ms": 1234, "services": [service]});
    fs::write(dir.join("services.json"), doc.to_string()).unwrap();
    let first = plane(&dir, 3);
    let version = stamp(&first, "old").unwrap().version;
    assert_eq!((version.ms, version.replica), (1234, 3));
    drop(first);
    // Written back at start, so another start (another replica id) keeps the same version.
    let again = plane(&dir, 4);
    assert_eq!(stamp(&again, "old").map(|s| s.version), Some(version));
    fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn changes_are_counted_by_result_and_the_last_applied_one_is_timed() {
    let dir = temp_dir("counted");
    let plane = plane(&dir, 1);
    let counters = plane.change_counters().clone();
    let restored = counters.last_applied.get();
    assert!(
        restored > 1.7e9,
        "the restore at start sets the time: {restored}"
    );
    // Two default backends clash (services sharing a path do not).
    let default_backend = |name: &str| {
        let mut s = http(name, "/demo");
        s.params
            .insert("isDefaultBackend".to_owned(), "true".to_owned());
        crate::routes::parse_params(s.params).unwrap()
    };
    plane.reconfigure(default_backend("a")).await.unwrap();
    let err = plane.reconfigure(default_backend("b")).await.unwrap_err();
    assert_eq!(err.status(), 409, "{err}");
    // The state directory becomes a file: a valid change cannot be saved.
    fs::remove_dir_all(&dir).unwrap();
    fs::write(&dir, "not a directory").unwrap();
    let err = plane.reconfigure(http("c", "/c")).await.unwrap_err();
    assert_eq!(err.status(), 500, "{err}");
    let counts = (
        counters.applied.get(),
        counters.rejected.get(),
        counters.failed.get(),
    );
    assert_eq!(counts, (1, 1, 1));
    assert!(counters.last_applied.get() >= restored);
    assert!(plane.snapshot().routes.services().contains_key("a"));
    assert!(!plane.snapshot().routes.services().contains_key("c"));
    // Forgetting a tombstone is not a configuration change.
    fs::remove_file(&dir).unwrap();
    fs::create_dir_all(&dir).unwrap();
    assert!(plane.remove("a").await.unwrap());
    // A tombstone is older than a zero TTL only once the clock's millisecond has moved on.
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert_eq!(plane.collect_tombstones(Duration::ZERO).await.unwrap(), 1);
    assert_eq!(counters.applied.get(), 2);
    let _ = fs::remove_dir_all(&dir);
}

use std::io::Write as _;

use super::*;
use crate::routes::parse_reconfigure;

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("flowproxy-state-{}-{name}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    dir
}

fn v(ms: u64) -> Version {
    Version {
        ms,
        counter: 0,
        replica: 9,
    }
}

fn live(ms: u64) -> Stamp {
    Stamp {
        version: v(ms),
        live: true,
    }
}

fn query(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn a_saved_table_loads_back_the_same() {
    let dir = temp_dir("roundtrip");
    let state = StateFile::open(&dir).unwrap();
    assert!(
        state.load().unwrap().routes.services().is_empty(),
        "no file yet"
    );
    let svc = parse_reconfigure(&query(&[
        ("serviceName", "go-demo"),
        ("servicePath", "/demo"),
        ("port", "8080"),
    ]))
    .unwrap();
    let table = RouteTable::default().with_service(svc).unwrap();
    let mut versions = Versions::default();
    versions.set(Kind::Service, "go-demo", live(42));
    let tombstone = Stamp {
        version: v(40),
        live: false,
    };
    versions.set(Kind::Service, "removed", tombstone);
    versions.set(Kind::Cert, "site", live(41));
    state.save(&table, &versions).unwrap();
    let loaded = state.load().unwrap();
    assert_eq!(loaded.routes.services(), table.services());
    assert_eq!(loaded.changed_at_ms, 42);
    assert_eq!(
        loaded.versions.digest(),
        versions.digest(),
        "stamps and tombstones too"
    );
    assert_eq!(
        loaded.versions.get(Kind::Service, "removed"),
        Some(tombstone)
    );
    fs::remove_dir_all(&dir).unwrap();
}

fn http(name: &str) -> Service {
    parse_reconfigure(&query(&[
        ("serviceName", name),
        ("servicePath", &format!("/{name}")),
        ("port", "8080"),
    ]))
    .unwrap()
}

/// Applies `service` to `table` and records it, as the control plane does.
fn put(state: &StateFile, table: RouteTable, service: Service) -> RouteTable {
    let name = service.name.clone();
    let change = Change::Put(service.params.clone());
    let table = table.with_service(service).unwrap();
    let at = table.services().len() as u64;
    let record = Record {
        change,
        version: v(at),
    };
    // What the control plane would hold after the change (only read when folding).
    let mut versions = Versions::default();
    versions.set(Kind::Service, &name, live(at));
    state.record(Some(&record), &table, &versions).unwrap();
    table
}

#[test]
fn recorded_changes_load_back_and_the_journal_is_folded_when_long() {
    let dir = temp_dir("journal");
    let mut state = StateFile::open(&dir).unwrap();
    state.min_journal_lines = 3;
    let mut table = RouteTable::default();
    for name in ["a", "b", "c"] {
        table = put(&state, table, http(name));
    }
    assert!(!state.path().exists(), "three lines: all in the journal");
    let loaded = StateFile::open(&dir).unwrap().load().unwrap();
    assert_eq!(loaded.routes.services(), table.services());
    assert_eq!(loaded.changed_at_ms, 3, "the last line's change time");
    assert_eq!(loaded.versions.get(Kind::Service, "b"), Some(live(2)));
    // The fourth change folds the journal into services.json.
    let (table, _) = table.without_service("b");
    let remove = Record {
        change: Change::Remove("b".into()),
        version: v(7),
    };
    let mut versions = loaded.versions.clone();
    versions.set(
        Kind::Service,
        "b",
        Stamp {
            version: v(7),
            live: false,
        },
    );
    state.record(Some(&remove), &table, &versions).unwrap();
    assert!(state.path().exists());
    assert_eq!(fs::read_to_string(state.journal_path()).unwrap(), "");
    let table = put(&state, table, http("d"));
    let loaded = StateFile::open(&dir).unwrap().load().unwrap();
    assert_eq!(loaded.routes.services(), table.services());
    assert_eq!(loaded.routes.services().len(), 3);
    assert_eq!(loaded.changed_at_ms, 3);
    assert!(
        loaded
            .versions
            .get(Kind::Service, "b")
            .is_some_and(|s| !s.live),
        "the tombstone survives the fold"
    );
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_change_cut_short_by_a_crash_is_ignored_and_a_broken_line_is_not() {
    let dir = temp_dir("torn");
    let state = StateFile::open(&dir).unwrap();
    let table = put(&state, RouteTable::default(), http("a"));
    let mut journal = fs::OpenOptions::new()
        .append(true)
        .open(state.journal_path())
        .unwrap();
    journal
        .write_all(br#"{"at":9,"change":{"put":{"serviceName":"b""#)
        .unwrap();
    let loaded = state.load().unwrap();
    assert_eq!(loaded.routes.services(), table.services());
    journal.write_all(b"\n").unwrap();
    let err = state.load().unwrap_err().to_string();
    assert!(
        err.contains("services.journal") && err.contains("line 2"),
        "{err}"
    );
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_file_is_private_to_its_owner() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = temp_dir("private");
    fs::create_dir_all(&dir).unwrap();
    let file = dir.join("secret.json");
    write_atomic(&file, b"{}").unwrap();
    assert_eq!(
        fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn files_and_lines_without_versions_still_load() {
    let dir = temp_dir("old-format");
    let state = StateFile::open(&dir).unwrap();
    fs::write(
        state.path(),
        r#"{"version":1,"services":[{"serviceName":"old","servicePath":"/old","port":"80"}]}"#,
    )
    .unwrap();
    fs::write(
        state.journal_path(),
        "{\"at\":5,\"change\":{\"put\":{\"serviceName\":\"b\",\"servicePath\":\"/b\",\"port\":\"80\"}}}\n",
    )
    .unwrap();
    let loaded = state.load().unwrap();
    assert_eq!(loaded.changed_at_ms, 5);
    assert_eq!(loaded.routes.services().len(), 2);
    assert_eq!(
        loaded.versions.max_version(),
        None,
        "no versions: assigned at start"
    );
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_corrupt_file_is_named_and_kept() {
    let dir = temp_dir("corrupt");
    let state = StateFile::open(&dir).unwrap();
    fs::write(state.path(), "{not json").unwrap();
    let err = state.load().unwrap_err().to_string();
    assert!(err.contains("services.json"), "{err}");
    assert!(state.path().exists(), "never silently discarded");
    fs::remove_dir_all(&dir).unwrap();
}

/// Found by the `state_load` fuzz target: a journal line that puts an invalid service was
/// blamed on services.json (which need not even exist).
#[test]
fn an_invalid_service_from_the_journal_names_the_journal() {
    let dir = temp_dir("journal-invalid");
    let state = StateFile::open(&dir).unwrap();
    fs::write(
        state.journal_path(),
        "{\"at\":6,\"change\":{\"put\":{\"serviceName\":\"b\",\"servicePath\":\"/b\",\"port\":\"0\"}}}\n",
    )
    .unwrap();
    let err = state.load().unwrap_err();
    match &err {
        StateError::Corrupt { file, .. } => assert_eq!(file, &state.journal_path(), "{err}"),
        other => panic!("{other}"),
    }
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_refused_read_says_permission_and_whom_not_corrupt() {
    let err = StateError::Read {
        file: "/srv/state/services.json".into(),
        source: io::Error::from(io::ErrorKind::PermissionDenied),
    };
    let text = err.to_string();
    assert!(text.contains("permission denied"), "{text}");
    assert!(
        text.contains("uid ") && text.contains("/srv/state"),
        "{text}"
    );
    assert!(!text.contains("corrupt"), "{text}");
}

#[test]
fn a_file_that_cannot_be_read_is_not_called_corrupt() {
    let dir = temp_dir("unreadable");
    let state = StateFile::open(&dir).unwrap();
    // A directory where the file should be: the OS refuses the read.
    fs::create_dir_all(state.path()).unwrap();
    let err = state.load().unwrap_err();
    assert!(matches!(err, StateError::Read { .. }), "{err}");
    assert!(!err.to_string().contains("corrupt"), "{err}");
    fs::remove_dir_all(state.path()).unwrap();
    // Bytes that are not UTF-8 are the file's own fault.
    fs::write(state.path(), b"\xff\xfe{}").unwrap();
    let err = state.load().unwrap_err();
    assert!(matches!(err, StateError::Corrupt { .. }), "{err}");
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_state_directory_that_is_a_file_fails_at_open() {
    let file = temp_dir("not-a-dir");
    fs::write(&file, b"").unwrap();
    let err = StateFile::open(&file).unwrap_err();
    assert!(matches!(err, StateError::Dir { .. }), "{err}");
    assert!(err.to_string().contains("--state-dir"), "{err}");
    fs::remove_file(&file).unwrap();
}

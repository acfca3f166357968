//! Persistence of the running configuration in `--state-dir`: the reconfigure parameters of
//! every service, written atomically (temporary file, fsync, rename) so a crash never leaves a
//! half-written file, and read back at start.
use std::{
    collections::BTreeMap,
    fs,
    io::{self, Write as _},
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};

use crate::routes::{RouteTable, Service, parse_params};

/// The file name inside the state directory.
const FILE_NAME: &str = "services.json";
/// Version of the file format.
const FORMAT_VERSION: u32 = 1;

/// Why the state could not be read or written. Messages name the file.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The directory could not be created or written.
    #[error("state directory {dir}: {source}; fix its permissions or choose another --state-dir")]
    Dir {
        /// The directory.
        dir: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// The file exists but cannot be used; it is never silently discarded.
    #[error("state file {file} is corrupt: {reason}; repair or move it away, then start again")]
    Corrupt {
        /// The file.
        file: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The task writing the file failed.
    #[error("saving the configuration failed: {0}")]
    Task(String),
    /// Writing the file failed.
    #[error("writing state file {file}: {source}")]
    Write {
        /// The file.
        file: PathBuf,
        /// The OS error.
        source: io::Error,
    },
}

#[derive(Serialize, Deserialize)]
struct Document {
    version: u32,
    /// When the configuration last changed (unix milliseconds); replicas compare it to find
    /// the newest configuration (`cluster::version`). Files written before it existed read 0.
    #[serde(default)]
    changed_at_ms: u64,
    services: Vec<BTreeMap<String, String>>,
}

/// What a state file holds.
#[derive(Debug, Default)]
pub struct Saved {
    /// The services.
    pub routes: RouteTable,
    /// When they last changed (unix milliseconds; 0 when unknown).
    pub changed_at_ms: u64,
}

/// The state file of one flowproxy.
#[derive(Debug, Clone)]
pub struct StateFile {
    dir: PathBuf,
}

impl StateFile {
    /// Uses (and creates, if needed) `dir`.
    pub fn open(dir: &Path) -> Result<Self, StateError> {
        fs::create_dir_all(dir).map_err(|source| StateError::Dir {
            dir: dir.into(),
            source,
        })?;
        Ok(Self { dir: dir.into() })
    }

    /// The file's path.
    pub fn path(&self) -> PathBuf {
        self.dir.join(FILE_NAME)
    }

    /// Reads the saved configuration; no file means no services yet.
    pub fn load(&self) -> Result<Saved, StateError> {
        let file = self.path();
        let text = match fs::read_to_string(&file) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Saved::default()),
            Err(e) => {
                return Err(StateError::Corrupt {
                    file,
                    reason: e.to_string(),
                });
            }
        };
        let corrupt = |reason: String| StateError::Corrupt {
            file: self.path(),
            reason,
        };
        let doc: Document = serde_json::from_str(&text).map_err(|e| corrupt(e.to_string()))?;
        if doc.version != FORMAT_VERSION {
            return Err(corrupt(format!(
                "format version {} is not {FORMAT_VERSION}",
                doc.version
            )));
        }
        let mut services = BTreeMap::new();
        for params in doc.services {
            let service: Service = parse_params(params)
                .map_err(|e| corrupt(format!("a saved service is invalid: {e}")))?;
            services.insert(service.name.clone(), service);
        }
        let routes = RouteTable::build(services).map_err(|e| corrupt(e.to_string()))?;
        Ok(Saved {
            routes,
            changed_at_ms: doc.changed_at_ms,
        })
    }

    /// The directory certificates added through the API are kept in.
    pub fn certs_dir(&self) -> PathBuf {
        self.dir.join("certs")
    }

    /// Writes `table`, changed at `changed_at_ms`, atomically.
    pub fn save(&self, table: &RouteTable, changed_at_ms: u64) -> Result<(), StateError> {
        let doc = Document {
            version: FORMAT_VERSION,
            changed_at_ms,
            services: table
                .services()
                .values()
                .map(|s| s.params.clone())
                .collect(),
        };
        let file = self.path();
        let text = serde_json::to_vec_pretty(&doc).expect("string maps always serialise");
        write_atomic(&file, &text).map_err(|source| StateError::Write { file, source })
    }
}

/// Writes `bytes` to `file` so that a crash leaves either the old or the new content: a
/// temporary file beside it, fsync, rename, fsync of the directory.
/// The file is readable by its owner only: it holds `users=` passwords and private keys.
pub fn write_atomic(file: &Path, bytes: &[u8]) -> io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let dir = file.parent().unwrap_or(Path::new("."));
    let name = file.file_name().and_then(|n| n.to_str()).unwrap_or("state");
    // Unique per process, so two writers never interleave in one temporary file.
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let mut out = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    out.write_all(bytes)?;
    out.sync_all()?;
    fs::rename(&tmp, file)?;
    // The rename is durable only once the directory entry is.
    fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routes::parse_reconfigure;

    fn temp_dir(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("flowproxy-state-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
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
        state.save(&table, 42).unwrap();
        let loaded = state.load().unwrap();
        assert_eq!(loaded.routes.services(), table.services());
        assert_eq!(loaded.changed_at_ms, 42);
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
    fn a_file_without_a_change_time_reads_as_the_oldest() {
        let dir = temp_dir("old-format");
        let state = StateFile::open(&dir).unwrap();
        fs::write(state.path(), r#"{"version":1,"services":[]}"#).unwrap();
        assert_eq!(state.load().unwrap().changed_at_ms, 0);
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
}

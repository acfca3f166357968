//! Persistence of the running configuration in `--state-dir`: the reconfigure parameters of
//! every service and the version of every entry replicas share (services, removed services'
//! tombstones, API certificates), read back at start.
//!
//! `services.json` holds every service, written atomically (temporary file, fsync, rename) so
//! a crash never leaves a half-written file. Rewriting it on every change would cost O(n) per
//! change, so each change is appended to `services.journal` (one JSON line, fdatasync) and the
//! journal is folded into `services.json` once it has grown as long as the configuration is
//! large (amortised O(1) per change). Replaying a change is idempotent, so a crash between the
//! rewrite and the journal's truncation loses nothing.
use std::{
    collections::BTreeMap,
    fs, io,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
};

use serde::{Deserialize, Serialize};

mod files;

pub use files::write_atomic;
use files::{append, io_advice, probe_writable, read_if_present, truncate};

use crate::{
    routes::{RouteTable, Service, parse_params},
    versioning::{Kind, Stamp, Version, Versions},
};

/// The file name inside the state directory.
const FILE_NAME: &str = "services.json";
/// The changes since `services.json` was written, one JSON line each.
const JOURNAL_NAME: &str = "services.journal";
/// The journal is folded into the file once it has more lines than this or than services.
const MIN_JOURNAL_LINES: usize = 1024;
/// Version of the file format.
const FORMAT_VERSION: u32 = 1;

/// Why the state could not be read or written. Messages name the file.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The directory could not be created or written.
    #[error("state directory {dir}: {}", io_advice(.source, .dir))]
    Dir {
        /// The directory.
        dir: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// The file exists and could not be read (permissions, most often); it is not corrupt.
    #[error("state file {file} cannot be read: {}", io_advice(.source, .file.parent().unwrap_or(Path::new("."))))]
    Read {
        /// The file.
        file: PathBuf,
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
    /// Each service's stamp, tombstones included. Files written before versions existed
    /// have none: the control plane assigns them at start.
    #[serde(default)]
    stamps: BTreeMap<String, Stamp>,
    /// Each API certificate's stamp (the certificate itself is a file in `certs/`).
    #[serde(default)]
    certs: BTreeMap<String, Stamp>,
}

/// What a state file holds.
#[derive(Debug, Default)]
pub struct Saved {
    /// The services.
    pub routes: RouteTable,
    /// When they last changed (unix milliseconds; 0 when unknown).
    pub changed_at_ms: u64,
    /// The stamps saved (an entry without one gets one at start).
    pub versions: Versions,
}

/// One change, as the journal records it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Change {
    /// A service added or replaced: its reconfigure parameters.
    Put(BTreeMap<String, String>),
    /// A service removed, by name.
    Remove(String),
    /// An API certificate added or replaced, by name (its content is its file).
    Cert(String),
    /// An API certificate removed, by name.
    #[serde(rename = "cert_remove")]
    CertRemove(String),
}

impl Change {
    /// The entry this change is to, and whether it leaves it live.
    pub fn entry(&self) -> (Kind, String, bool) {
        match self {
            Self::Put(params) => (
                Kind::Service,
                params.get("serviceName").cloned().unwrap_or_default(),
                true,
            ),
            Self::Remove(name) => (Kind::Service, name.clone(), false),
            Self::Cert(name) => (Kind::Cert, name.clone(), true),
            Self::CertRemove(name) => (Kind::Cert, name.clone(), false),
        }
    }
}

/// A change and the version it was made at, as the control plane records it.
#[derive(Debug, Clone)]
pub struct Record {
    /// The change.
    pub change: Change,
    /// Its version.
    pub version: Version,
}

/// One line of the journal: a change, when it was made (unix milliseconds) and its version
/// (absent in lines written before versions existed).
#[derive(Serialize, Deserialize)]
struct JournalLine {
    at: u64,
    change: Change,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    version: Option<Version>,
}

/// The state file of one flowproxy.
#[derive(Debug, Clone)]
pub struct StateFile {
    dir: PathBuf,
    /// Lines in the journal; the writer (the control plane, one change at a time) owns it.
    journal_lines: Arc<Mutex<usize>>,
    /// The journal is folded once it has this many lines, or as many as there are services.
    min_journal_lines: usize,
}

impl StateFile {
    /// Uses (and creates, if needed) `dir`, which must be writable: a change accepted now
    /// and lost at the next start would be an OK that was not honoured.
    pub fn open(dir: &Path) -> Result<Self, StateError> {
        let dir_error = |source| StateError::Dir {
            dir: dir.into(),
            source,
        };
        fs::create_dir_all(dir).map_err(dir_error)?;
        probe_writable(dir).map_err(dir_error)?;
        Ok(Self {
            dir: dir.into(),
            journal_lines: Arc::default(),
            min_journal_lines: MIN_JOURNAL_LINES,
        })
    }

    fn journal_path(&self) -> PathBuf {
        self.dir.join(JOURNAL_NAME)
    }

    /// The file's path.
    pub fn path(&self) -> PathBuf {
        self.dir.join(FILE_NAME)
    }

    /// Reads the saved configuration; no file means no services yet.
    pub fn load(&self) -> Result<Saved, StateError> {
        let file = self.path();
        let corrupt = |reason: String| StateError::Corrupt {
            file: self.path(),
            reason,
        };
        let mut saved = BTreeMap::new();
        let mut changed_at_ms = 0;
        let mut versions = Versions::default();
        if let Some(text) = read_if_present(&file)? {
            let doc: Document = serde_json::from_str(&text).map_err(|e| corrupt(e.to_string()))?;
            if doc.version != FORMAT_VERSION {
                return Err(corrupt(format!(
                    "format version {} is not {FORMAT_VERSION}",
                    doc.version
                )));
            }
            changed_at_ms = doc.changed_at_ms;
            for (name, stamp) in doc.stamps {
                versions.set(Kind::Service, &name, stamp);
            }
            for (name, stamp) in doc.certs {
                versions.set(Kind::Cert, &name, stamp);
            }
            for params in doc.services {
                let name = params.get("serviceName").cloned().unwrap_or_default();
                saved.insert(name, params);
            }
        }
        let from_file = saved.clone();
        let lines = self.replay_journal(&mut saved, &mut changed_at_ms, &mut versions)?;
        *lock(&self.journal_lines) = lines;
        // An invalid service is blamed on the file its parameters came from: the journal when
        // a line put them there, else services.json.
        let origin = |name: &str| {
            if saved.get(name) == from_file.get(name) {
                self.path()
            } else {
                self.journal_path()
            }
        };
        let mut services = BTreeMap::new();
        for (name, params) in &saved {
            let service: Service =
                parse_params(params.clone()).map_err(|e| StateError::Corrupt {
                    file: origin(name),
                    reason: format!("a saved service is invalid: {e}"),
                })?;
            services.insert(service.name.clone(), service);
        }
        let routes = RouteTable::build(services).map_err(|e| {
            let file = match &e {
                crate::routes::RouteError::Conflict { service, owner, .. }
                    if origin(service) != self.path() || origin(owner) != self.path() =>
                {
                    self.journal_path()
                }
                _ => self.path(),
            };
            StateError::Corrupt {
                file,
                reason: e.to_string(),
            }
        })?;
        Ok(Saved {
            routes,
            changed_at_ms,
            versions,
        })
    }

    /// Applies the journal's changes to `saved` (parameters by service name), `changed_at_ms`
    /// and `versions`; returns its line count. A last line cut short by a crash (no newline)
    /// is ignored: its change was never acknowledged.
    fn replay_journal(
        &self,
        saved: &mut BTreeMap<String, BTreeMap<String, String>>,
        changed_at_ms: &mut u64,
        versions: &mut Versions,
    ) -> Result<usize, StateError> {
        let journal = self.journal_path();
        let Some(text) = read_if_present(&journal)? else {
            return Ok(0);
        };
        let complete = text.rfind('\n').map_or("", |end| &text[..=end]);
        let mut lines = 0;
        for (number, line) in complete.lines().enumerate() {
            let entry: JournalLine =
                serde_json::from_str(line).map_err(|e| StateError::Corrupt {
                    file: journal.clone(),
                    reason: format!("line {}: {e}", number + 1),
                })?;
            *changed_at_ms = entry.at;
            let (kind, name, live) = entry.change.entry();
            match entry.version {
                Some(version) => versions.set(kind, &name, Stamp { version, live }),
                // A line from before versions: the entry gets one at start (if live).
                None => versions.forget(kind, &name),
            }
            match entry.change {
                Change::Put(params) => {
                    let name = params.get("serviceName").cloned().unwrap_or_default();
                    saved.insert(name, params);
                }
                Change::Remove(name) => {
                    saved.remove(&name);
                }
                Change::Cert(_) | Change::CertRemove(_) => {}
            }
            lines += 1;
        }
        Ok(lines)
    }

    /// The directory certificates added through the API are kept in.
    pub fn certs_dir(&self) -> PathBuf {
        self.dir.join("certs")
    }

    /// Records `record`, after which the configuration is `table` with `versions`: appended
    /// to the journal, or by writing everything and emptying the journal when the journal has
    /// grown long or the change is not one entry's (`None`).
    pub fn record(
        &self,
        record: Option<&Record>,
        table: &RouteTable,
        versions: &Versions,
    ) -> Result<(), StateError> {
        let mut lines = lock(&self.journal_lines);
        let record = record.filter(|_| *lines < self.min_journal_lines.max(table.services().len()));
        let Some(record) = record else {
            self.save(table, versions)?;
            let journal = self.journal_path();
            truncate(&journal).map_err(|source| StateError::Write {
                file: journal,
                source,
            })?;
            *lines = 0;
            return Ok(());
        };
        let journal = self.journal_path();
        let entry = JournalLine {
            at: record.version.ms,
            change: record.change.clone(),
            version: Some(record.version),
        };
        let mut line = serde_json::to_vec(&entry).expect("string maps always serialise");
        line.push(b'\n');
        append(&journal, &line).map_err(|source| StateError::Write {
            file: journal,
            source,
        })?;
        *lines += 1;
        Ok(())
    }

    /// Writes `table` and `versions` atomically.
    pub fn save(&self, table: &RouteTable, versions: &Versions) -> Result<(), StateError> {
        let stamps = |kind| {
            versions
                .entries(kind)
                .map(|(name, stamp)| (name.clone(), *stamp))
                .collect()
        };
        let doc = Document {
            version: FORMAT_VERSION,
            changed_at_ms: versions.max_version().map_or(0, |v| v.ms),
            services: table
                .services()
                .values()
                .map(|s| s.params.clone())
                .collect(),
            stamps: stamps(Kind::Service),
            certs: stamps(Kind::Cert),
        };
        let file = self.path();
        let text = serde_json::to_vec_pretty(&doc).expect("string maps always serialise");
        write_atomic(&file, &text).map_err(|source| StateError::Write { file, source })
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests;

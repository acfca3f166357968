//! The state directory's file operations: reads that tell a missing file from a refused one,
//! durable appends and truncation, atomic rewrites, and the advice a refused one gets.
use std::{
    fs,
    io::{self, Write as _},
    path::Path,
};

use super::StateError;

pub(super) fn read_if_present(file: &Path) -> Result<Option<String>, StateError> {
    match fs::read_to_string(file) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        // Bytes that are not UTF-8 are the file's fault; everything else is the OS refusing.
        Err(e) if e.kind() == io::ErrorKind::InvalidData => Err(StateError::Corrupt {
            file: file.into(),
            reason: e.to_string(),
        }),
        Err(source) => Err(StateError::Read {
            file: file.into(),
            source,
        }),
    }
}

/// Creates and removes a file in `dir`, so that a directory this process cannot write is
/// found at start, not at the first change.
pub(super) fn probe_writable(dir: &Path) -> io::Result<()> {
    let probe = dir.join(format!(".write-test.{}", std::process::id()));
    fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&probe)?;
    fs::remove_file(&probe)
}

/// The OS error, and for a permission error whom to give access to `dir`.
pub(super) fn io_advice(error: &io::Error, dir: &Path) -> String {
    if error.kind() == io::ErrorKind::PermissionDenied {
        // Safety: geteuid has no preconditions and cannot fail.
        let uid = unsafe { libc::geteuid() };
        format!(
            "permission denied: flowproxy runs as uid {uid}, which may not read and write {}; \
             chown or chmod it for that user (a Docker volume: mount one the user owns), or \
             choose another --state-dir",
            dir.display()
        )
    } else {
        format!("{error}; fix it or choose another --state-dir")
    }
}

/// Appends `bytes` to `file` durably (created private to its owner, its directory entry made
/// durable on creation).
pub(super) fn append(file: &Path, bytes: &[u8]) -> io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let existed = file.exists();
    let mut out = fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .open(file)?;
    out.write_all(bytes)?;
    out.sync_data()?;
    if !existed {
        fs::File::open(file.parent().unwrap_or(Path::new(".")))?.sync_all()?;
    }
    Ok(())
}

/// Empties `file` durably, if it exists.
pub(super) fn truncate(file: &Path) -> io::Result<()> {
    match fs::OpenOptions::new().write(true).open(file) {
        Ok(out) => {
            out.set_len(0)?;
            out.sync_all()
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
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

//! The pin directory: making sure it lives on a BPF filesystem, and owning it exclusively.
use std::{
    ffi::CString,
    fs::{self, File},
    io,
    os::{fd::AsRawFd, unix::ffi::OsStrExt},
    path::{Path, PathBuf},
};

use super::error::DataPlaneError;

/// `f_type` of a BPF filesystem (linux/magic.h).
const BPF_FS_MAGIC: i64 = 0xcafe_4a11;
/// Where the BPF filesystem is conventionally mounted.
const BPFFS_ROOT: &str = "/sys/fs/bpf";

/// An exclusive lock on a pin directory, released when dropped (or when the process dies, so a
/// `kill -9` never leaves the directory locked).
#[derive(Debug)]
pub struct PinDirLock {
    _dir: File,
}

/// Creates `dir` on a BPF filesystem (mounting bpffs at /sys/fs/bpf when it is missing there) and
/// locks it so that two flowproxy processes never share one set of maps.
pub fn prepare_pin_dir(dir: &Path) -> Result<PinDirLock, DataPlaneError> {
    ensure_bpffs(dir)?;
    fs::create_dir_all(dir).map_err(|e| DataPlaneError::from_io("create", dir, e))?;
    let handle = File::open(dir).map_err(|e| DataPlaneError::from_io("open", dir, e))?;
    // Safety: flock on a valid, owned file descriptor has no memory effects.
    let rc = unsafe { libc::flock(handle.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 {
        let err = io::Error::last_os_error();
        if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
            return Err(DataPlaneError::PinDirBusy { dir: dir.into() });
        }
        return Err(DataPlaneError::from_io("lock", dir, err));
    }
    Ok(PinDirLock { _dir: handle })
}

fn ensure_bpffs(dir: &Path) -> Result<(), DataPlaneError> {
    let existing = nearest_existing(dir);
    if is_bpffs(&existing).map_err(|e| DataPlaneError::from_io("inspect", &existing, e))? {
        return Ok(());
    }
    if !dir.starts_with(BPFFS_ROOT) {
        return Err(DataPlaneError::NoBpffs {
            dir: dir.into(),
            source: io::Error::other(format!("{} is not a bpffs mount point", existing.display())),
        });
    }
    tracing::info!("mounting the BPF filesystem at {BPFFS_ROOT}");
    mount_bpffs(Path::new(BPFFS_ROOT)).map_err(|source| {
        if super::error::is_permission(&source) {
            DataPlaneError::NoPrivilege {
                action: format!("mount bpffs at {BPFFS_ROOT}"),
            }
        } else {
            DataPlaneError::NoBpffs {
                dir: dir.into(),
                source,
            }
        }
    })
}

fn nearest_existing(dir: &Path) -> PathBuf {
    dir.ancestors()
        .find(|p| p.exists())
        .unwrap_or(Path::new("/"))
        .to_path_buf()
}

fn is_bpffs(path: &Path) -> io::Result<bool> {
    let c_path = CString::new(path.as_os_str().as_bytes()).map_err(io::Error::other)?;
    // Safety: statfs writes into the zeroed struct we own; the path is NUL-terminated.
    let mut stat: libc::statfs = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::statfs(c_path.as_ptr(), &mut stat) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(stat.f_type == BPF_FS_MAGIC)
}

fn mount_bpffs(target: &Path) -> io::Result<()> {
    fs::create_dir_all(target)?;
    let target = CString::new(target.as_os_str().as_bytes()).map_err(io::Error::other)?;
    let fstype = c"bpf";
    // Safety: all pointers are NUL-terminated strings that outlive the call; no data argument.
    let rc = unsafe {
        libc::mount(
            fstype.as_ptr(),
            target.as_ptr(),
            fstype.as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_existing_walks_up_to_a_real_directory() {
        let p = nearest_existing(Path::new("/tmp/flowproxy-does-not-exist/a/b"));
        assert_eq!(p, Path::new("/tmp"));
    }

    #[test]
    fn tmp_is_not_bpffs() {
        assert!(!is_bpffs(Path::new("/tmp")).unwrap());
    }

    #[test]
    fn a_directory_outside_sys_fs_bpf_is_refused_with_the_fix() {
        let err = ensure_bpffs(Path::new("/tmp/flowproxy-not-bpffs")).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("mount -t bpf"), "{msg}");
    }
}

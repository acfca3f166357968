//! Removing what the Swarm test's daemons leave behind: processes, mounts, cgroups, files.
//! Used on every daemon's stop and, before a run, on the leftovers of a run that was killed.
use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
    thread,
    time::Duration,
};

use super::{docker::quiet, lab};

/// Where the daemons keep images and containers (one directory per node).
pub const DATA_ROOT: &str = "/var/lib/flowproxy-swarm";
/// Where the daemons keep sockets, pid files, state and their containerd (one per node).
pub const RUN_ROOT: &str = "/run/flowproxy-swarm";

/// Removes everything a previous run may have left: its daemons and their containers, mounts,
/// cgroups, files and namespaces. Idempotent; does nothing on a clean machine.
pub fn leftovers() {
    let run_root = Path::new(RUN_ROOT);
    if run_root.exists() {
        eprintln!("swarm-test: removing what an earlier run left in {RUN_ROOT}");
    }
    kill_where(|cmdline, cgroup| {
        cmdline.contains(RUN_ROOT) || cgroup.contains(&format!("/{}-", lab::PREFIX))
    });
    unmount_under(Path::new(DATA_ROOT));
    unmount_under(run_root);
    remove_cgroups(lab::PREFIX);
    let _ = fs::remove_dir_all(DATA_ROOT);
    let _ = fs::remove_dir_all(RUN_ROOT);
    for name in netns_names() {
        lab::delete_netns(&name);
    }
    remove_empty_runtime_dirs();
}

/// Kills (SIGKILL) every process whose command line or cgroup path `matches`, and waits a
/// moment for them to go: dockerd, its containerd, the shims and the containers' processes.
pub fn kill_where(matches: impl Fn(&str, &str) -> bool) {
    let me = std::process::id();
    let mut killed = false;
    for pid in pids() {
        if pid == me {
            continue;
        }
        let cmdline = fs::read(format!("/proc/{pid}/cmdline"))
            .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
            .unwrap_or_default();
        let cgroup = fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
        if matches(&cmdline, &cgroup) {
            // Safety: kill has no memory effects; a pid that is gone yields ESRCH.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
            killed = true;
        }
    }
    if killed {
        thread::sleep(Duration::from_millis(500));
    }
}

fn pids() -> Vec<u32> {
    fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect()
}

/// Unmounts every mount point under `root`, deepest first (overlay layers, container network
/// namespaces, shm), lazily so a busy one cannot stop the cleanup.
pub fn unmount_under(root: &Path) {
    let mounts = fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    let mut points: Vec<PathBuf> = mounts
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        .map(unescape_mount_path)
        .filter(|p| p.starts_with(root))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    points.dedup();
    for point in points {
        let _ = quiet(Command::new("umount").arg("-l").arg(&point));
    }
}

/// /proc/mounts escapes spaces and the like as octal (`\040`).
fn unescape_mount_path(field: &str) -> PathBuf {
    let mut out = Vec::new();
    let bytes = field.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 3 < bytes.len()
            && let Ok(v) = u8::from_str_radix(&field[i + 1..i + 4], 8)
        {
            out.push(v);
            i += 4;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    PathBuf::from(String::from_utf8_lossy(&out).into_owned())
}

/// Removes the (empty, once their processes are gone) cgroups named `prefix*` that the
/// daemons' `--cgroup-parent` created, in every hierarchy.
pub fn remove_cgroups(prefix: &str) {
    let mut hierarchies = vec![PathBuf::from("/sys/fs/cgroup")];
    for entry in fs::read_dir("/sys/fs/cgroup")
        .into_iter()
        .flatten()
        .flatten()
    {
        hierarchies.push(entry.path());
    }
    for hierarchy in hierarchies {
        for entry in fs::read_dir(&hierarchy).into_iter().flatten().flatten() {
            if entry.file_name().to_string_lossy().starts_with(prefix) {
                remove_cgroup_tree(&entry.path());
            }
        }
    }
}

fn remove_cgroup_tree(dir: &Path) {
    for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            remove_cgroup_tree(&entry.path());
        }
    }
    let _ = fs::remove_dir(dir);
}

/// Our namespaces, by name.
fn netns_names() -> Vec<String> {
    fs::read_dir("/run/netns")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n.starts_with(lab::PREFIX))
        .collect()
}

/// Our roots, and the directories every dockerd and containerd shim creates at fixed paths
/// (`/run/docker/plugins`, `/run/containerd/s`), removed only while empty, so a Docker of the
/// host's keeps its own.
pub fn remove_empty_runtime_dirs() {
    for dir in [
        DATA_ROOT,
        RUN_ROOT,
        "/run/docker/plugins",
        "/run/docker",
        "/run/containerd/s",
        "/run/containerd",
    ] {
        let _ = fs::remove_dir(dir);
    }
}

/// What the test left behind, if anything: processes, mounts, namespaces, directories.
pub fn verify_clean() -> anyhow::Result<()> {
    let mut left = Vec::new();
    for pid in pids() {
        let cmdline = fs::read(format!("/proc/{pid}/cmdline"))
            .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
            .unwrap_or_default();
        if cmdline.contains(RUN_ROOT) {
            left.push(format!("process {pid}: {cmdline}"));
        }
    }
    let mounts = fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    for line in mounts.lines() {
        if line.contains(DATA_ROOT) || line.contains(RUN_ROOT) || line.contains(lab::PREFIX) {
            left.push(format!("mount: {line}"));
        }
    }
    left.extend(
        netns_names()
            .into_iter()
            .map(|n| format!("network namespace {n}")),
    );
    for dir in [DATA_ROOT, RUN_ROOT] {
        if Path::new(dir).exists() {
            left.push(format!("directory {dir}"));
        }
    }
    if !left.is_empty() {
        anyhow::bail!("left behind:\n  {}", left.join("\n  "));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_paths_are_unescaped() {
        assert_eq!(
            unescape_mount_path(r"/var/lib/a\040b/merged"),
            PathBuf::from("/var/lib/a b/merged")
        );
        assert_eq!(unescape_mount_path("/run/x"), PathBuf::from("/run/x"));
    }
}

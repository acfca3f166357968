//! The proxies' pin directories under /sys/fs/bpf: each proxy removes its own on SIGTERM, and
//! whatever a killed one left is removed here, without touching directories that were there
//! before the test.
use std::{collections::BTreeSet, fs, path::Path};

const BPFFS: &str = "/sys/fs/bpf";

/// Remembers which `flowproxy*` pin directories existed; removes the new ones when dropped.
pub struct Guard {
    before: BTreeSet<String>,
}

impl Guard {
    /// Notes the pin directories present now.
    pub fn new() -> Self {
        Self { before: pin_dirs() }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        for name in pin_dirs().difference(&self.before) {
            let dir = Path::new(BPFFS).join(name);
            eprintln!(
                "swarm-test: removing pins a proxy left in {}",
                dir.display()
            );
            let _ = fs::remove_dir_all(dir);
        }
    }
}

fn pin_dirs() -> BTreeSet<String> {
    fs::read_dir(BPFFS)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n == "flowproxy" || n.starts_with("flowproxy-"))
        .collect()
}

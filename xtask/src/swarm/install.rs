//! Docker for the Swarm test: Debian's docker.io (20.10), installed when `dockerd` is missing.
use crate::{setup::install_debian_packages, shell::on_path};

/// Installs docker.io unless a Docker engine is already there. Installing it starts no daemon
/// here (no init system); the test starts its own daemons anyway.
pub fn docker() -> anyhow::Result<()> {
    if on_path("dockerd") || std::path::Path::new("/usr/sbin/dockerd").exists() {
        eprintln!("setup: dockerd present");
        return Ok(());
    }
    install_debian_packages(&["docker.io"])
}

//! The docker-machine driver: the article's own setup, three VMs `node-1` ... `node-3` made by
//! docker-machine (`MACHINE_DRIVER`, default virtualbox). Machines that already exist are
//! used as they are and kept; the ones this run creates are removed at the end.
use std::{ffi::OsString, process::Command};

use anyhow::{Context as _, bail};

use super::{
    cluster::{Cluster, Node},
    docker::{Docker, capture, quiet},
};
use crate::shell::on_path;

/// The VMs and which of them this run created.
pub struct Machines {
    nodes: Vec<Node>,
    created: Vec<String>,
}

impl Machines {
    /// Fails, naming the fix, when docker-machine is not installed.
    pub fn check_installed() -> anyhow::Result<()> {
        if !on_path("docker-machine") {
            bail!(
                "--driver docker-machine needs docker-machine on PATH (and a VM driver such as \
                 VirtualBox); install it, or run `cargo xtask swarm-test` for the local driver"
            );
        }
        Ok(())
    }

    /// Uses or creates `node-1` ... `node-{count}`.
    pub fn start(count: u8) -> anyhow::Result<Self> {
        Self::check_installed()?;
        let driver = std::env::var("MACHINE_DRIVER").unwrap_or_else(|_| "virtualbox".into());
        let mut machines = Self {
            nodes: Vec::new(),
            created: Vec::new(),
        };
        for i in 1..=count {
            let name = format!("node-{i}");
            if quiet(Command::new("docker-machine").args(["status", &name])).is_err() {
                capture(
                    Command::new("docker-machine").args(["create", "--driver", &driver, &name]),
                )
                .with_context(|| format!("creating {name}"))?;
                machines.created.push(name.clone());
            }
            let addr = capture(Command::new("docker-machine").args(["ip", &name]))?;
            let config = capture(Command::new("docker-machine").args(["config", &name]))?;
            let args: Vec<OsString> = config
                .split_whitespace()
                .map(|a| a.trim_matches('"').into())
                .collect();
            machines.nodes.push(Node {
                name,
                addr: addr.trim().to_owned(),
                docker: Docker::with_args(args),
                socket: "/var/run/docker.sock".into(),
            });
        }
        Ok(machines)
    }
}

impl Drop for Machines {
    fn drop(&mut self) {
        for node in &self.nodes {
            let _ = node.docker.quiet(&["swarm", "leave", "--force"]);
        }
        for name in &self.created {
            let _ = capture(Command::new("docker-machine").args(["rm", "-y", name]));
        }
    }
}

impl Cluster for Machines {
    fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    fn curl(&self) -> Command {
        Command::new("curl")
    }

    fn shell(&self) -> Command {
        Command::new("sh")
    }

    fn bpftool(&self, node: &Node) -> Command {
        let mut cmd = Command::new("docker-machine");
        cmd.args(["ssh", &node.name, "sudo", "bpftool"]);
        cmd
    }

    fn shares_one_kernel(&self) -> bool {
        false
    }

    fn address_pool(&self) -> Option<&str> {
        None
    }
}

//! The local driver: each node a dockerd in a network namespace of this machine, the client in
//! the LAN namespace, and one kernel (so the host's bpftool sees every node's programs).
use std::process::Command;

use super::{
    cluster::{Cluster, Node},
    daemon::Daemon,
    lab::{self, Lab},
};

/// Overlay subnets (ingress, proxy, go-demo) inside the test range 198.18.0.0/15.
const OVERLAY_POOL: &str = "198.19.192.0/19";

/// The nodes with their daemons and namespaces. Fields drop in order: the daemons stop before
/// their namespaces go.
pub struct Local {
    nodes: Vec<Node>,
    _daemons: Vec<Daemon>,
    _lab: Lab,
}

impl Local {
    /// Creates `count` node namespaces on a LAN and starts a dockerd in each.
    pub fn start(count: u8) -> anyhow::Result<Self> {
        let lab = Lab::create(count)?;
        let mut daemons = Vec::new();
        let mut nodes = Vec::new();
        for net in lab.nodes() {
            let daemon = Daemon::start(net)?;
            nodes.push(Node {
                name: daemon.name.clone(),
                addr: net.addr.to_string(),
                docker: daemon.docker.clone(),
                socket: daemon.socket().display().to_string(),
            });
            daemons.push(daemon);
        }
        Ok(Self {
            nodes,
            _daemons: daemons,
            _lab: lab,
        })
    }
}

impl Cluster for Local {
    fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    fn curl(&self) -> Command {
        lab::in_lan("curl")
    }

    fn shell(&self) -> Command {
        lab::in_lan("sh")
    }

    fn bpftool(&self, _node: &Node) -> Command {
        Command::new("bpftool")
    }

    fn shares_one_kernel(&self) -> bool {
        true
    }

    fn address_pool(&self) -> Option<&str> {
        Some(OVERLAY_POOL)
    }
}

//! What the scenarios need from whichever driver made the Swarm: its nodes, a client beside
//! them, and each node's kernel (for bpftool).
use std::process::Command;

use super::docker::Docker;

/// One Swarm node as the scenarios see it.
#[derive(Debug, Clone)]
pub struct Node {
    /// `node-1` ... `node-3`, as in the article.
    pub name: String,
    /// The address the Swarm advertises and the client sends requests to.
    pub addr: String,
    /// The CLI aimed at this node's daemon.
    pub docker: Docker,
    /// The Docker socket's path on the node, bind-mounted (read-only) into the proxy.
    pub socket: String,
}

/// A Swarm the scenarios can run on: local namespaces or docker-machine VMs.
pub trait Cluster {
    /// The nodes, the future manager (`node-1`) first.
    fn nodes(&self) -> &[Node];
    /// `curl` where the test's client sits, able to reach every node's address.
    fn curl(&self) -> Command;
    /// `sh` where the test's client sits (beside `curl`), for the README's commands.
    fn shell(&self) -> Command;
    /// `bpftool` on `node`'s kernel.
    fn bpftool(&self, node: &Node) -> Command;
    /// True when every node runs on this machine's kernel and bpffs (namespaces, not VMs).
    fn shares_one_kernel(&self) -> bool;
    /// Pool for the Swarm's overlay networks (`docker swarm init --default-addr-pool`).
    fn address_pool(&self) -> Option<&str>;
}

//! The machines of the local Swarm: one network namespace per node, all on a bridge in a LAN
//! namespace of its own, where the test's client runs. Nothing is added to the host's network
//! namespace, so the host's routes (and any Docker of its own) are untouched.
use std::{net::Ipv4Addr, path::PathBuf, process::Command};

use anyhow::Context as _;

use super::docker::quiet;

/// Every name this module creates starts with this, so leftovers of a crashed run are found.
pub const PREFIX: &str = "flowproxy-swarm";
/// The LAN namespace: the bridge and the client.
pub const LAN: &str = "flowproxy-swarm-lan";
const BRIDGE: &str = "swtbr";
/// The LAN (198.19.240.0/24, inside the test range 198.18.0.0/15): bridge .1, node N .1N.
const LAN_PREFIX: [u8; 3] = [198, 19, 240];

/// One node's network: its namespace and its address on the LAN.
#[derive(Debug, Clone)]
pub struct NodeNet {
    /// 1-based, as the article's `node-1` ... `node-3`.
    pub index: u8,
    /// The network namespace dockerd runs in.
    pub netns: String,
    /// Its address on the LAN: what the Swarm advertises and the client curls.
    pub addr: Ipv4Addr,
}

impl NodeNet {
    /// `/run/netns/NAME`, for `nsenter --net=`.
    pub fn netns_path(&self) -> PathBuf {
        PathBuf::from("/run/netns").join(&self.netns)
    }
}

/// The LAN and its nodes; dropping it deletes every namespace (and with them the veths).
#[derive(Debug)]
pub struct Lab {
    nodes: Vec<NodeNet>,
}

impl Lab {
    /// Creates the LAN namespace with its bridge and `nodes` node namespaces plugged into it.
    pub fn create(nodes: u8) -> anyhow::Result<Self> {
        let mut lab = Self { nodes: Vec::new() };
        ip(&["netns", "add", LAN])?;
        ip(&["-n", LAN, "link", "set", "lo", "up"])?;
        ip(&["-n", LAN, "link", "add", BRIDGE, "type", "bridge"])?;
        ip(&[
            "-n",
            LAN,
            "addr",
            "add",
            &format!("{}/24", lan_addr(1)),
            "dev",
            BRIDGE,
        ])?;
        ip(&["-n", LAN, "link", "set", BRIDGE, "up"])?;
        for index in 1..=nodes {
            lab.add_node(index)
                .with_context(|| format!("creating node {index}'s namespace"))?;
        }
        Ok(lab)
    }

    fn add_node(&mut self, index: u8) -> anyhow::Result<()> {
        let node = NodeNet {
            index,
            netns: format!("{PREFIX}-node{index}"),
            addr: lan_addr(10 + index),
        };
        ip(&["netns", "add", &node.netns])?;
        self.nodes.push(node.clone());
        let (lan_end, node_end) = (format!("swtlan{index}"), format!("swtnode{index}"));
        ip(&[
            "link", "add", &lan_end, "type", "veth", "peer", "name", &node_end,
        ])?;
        ip(&["link", "set", &lan_end, "netns", LAN])?;
        ip(&["link", "set", &node_end, "netns", &node.netns])?;
        ip(&["-n", LAN, "link", "set", &lan_end, "master", BRIDGE, "up"])?;
        let ns = node.netns.as_str();
        ip(&["-n", ns, "link", "set", &node_end, "name", "eth0"])?;
        ip(&[
            "-n",
            ns,
            "addr",
            "add",
            &format!("{}/24", node.addr),
            "dev",
            "eth0",
        ])?;
        ip(&["-n", ns, "link", "set", "eth0", "up"])?;
        // No default route: a pull attempt fails at once ("network unreachable") instead of
        // waiting for a DNS timeout, and nothing leaves the LAN.
        ip(&["-n", ns, "link", "set", "lo", "up"])
    }

    /// The nodes, `node-1` first.
    pub fn nodes(&self) -> &[NodeNet] {
        &self.nodes
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for node in &self.nodes {
            delete_netns(&node.netns);
        }
        delete_netns(LAN);
        super::cleanup::remove_empty_runtime_dirs();
    }
}

/// Deletes a namespace if it exists (its veths go with it).
pub fn delete_netns(name: &str) {
    if PathBuf::from("/run/netns").join(name).exists() {
        let _ = quiet(Command::new("ip").args(["netns", "delete", name]));
    }
}

fn lan_addr(host: u8) -> Ipv4Addr {
    Ipv4Addr::new(LAN_PREFIX[0], LAN_PREFIX[1], LAN_PREFIX[2], host)
}

fn ip(args: &[&str]) -> anyhow::Result<()> {
    quiet(Command::new("ip").args(args)).map(drop)
}

/// A command run in the LAN namespace (the client's side of the test).
pub fn in_lan(program: &str) -> Command {
    let mut cmd = Command::new("nsenter");
    cmd.arg(format!("--net=/run/netns/{LAN}")).arg(program);
    cmd
}

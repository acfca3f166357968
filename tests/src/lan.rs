//! A shared network segment: a bridge in a namespace of its own, joined by hosts (and, if a
//! test wants, the root namespace) with veth pairs, all in one subnet of 198.18.0.0/15. This
//! is what the proxy's replicas share in Swarm (an overlay network): every member reaches
//! every other directly, without routing through the root namespace.
use std::{
    collections::BTreeMap,
    net::Ipv4Addr,
    sync::{
        Mutex,
        atomic::{AtomicU32, Ordering},
    },
};

use anyhow::{Context as _, ensure};

use crate::{Host, Ids, cmd::run, names::Slots};

/// /30 slots a LAN takes: a /28, 13 members besides the network, broadcast and one spare.
const SLOTS: u32 = 4;
/// The bridge's name inside the switch namespace.
const BRIDGE: &str = "br0";

/// A bridge and its members; removing the switch namespace on drop removes every veth.
#[derive(Debug)]
pub struct Lan {
    network: Ipv4Addr,
    prefix: u8,
    next_member: AtomicU32,
    /// Each member's port on the bridge (the switch's end of its veth), by address.
    ports: Mutex<BTreeMap<Ipv4Addr, String>>,
    /// The namespace holding the bridge (dropped last).
    switch: Host,
}

impl Lan {
    /// A new, empty segment.
    pub fn new() -> anyhow::Result<Self> {
        let switch = Host::new("switch")?;
        let (network, prefix) = Slots::take(SLOTS).network();
        switch.run("ip", &["link", "add", BRIDGE, "type", "bridge"])?;
        switch.run(
            "sysctl",
            &["-qw", &format!("net.ipv6.conf.{BRIDGE}.disable_ipv6=1")],
        )?;
        switch.run("ip", &["link", "set", BRIDGE, "up"])?;
        Ok(Self {
            network,
            prefix,
            next_member: AtomicU32::new(1),
            ports: Mutex::new(BTreeMap::new()),
            switch,
        })
    }

    /// Connects `host` and returns its address on the segment.
    pub fn join(&self, host: &Host) -> anyhow::Result<Ipv4Addr> {
        self.attach(Some(host))
    }

    /// Connects the root namespace (where the test runs) and returns its address.
    pub fn join_root(&self) -> anyhow::Result<Ipv4Addr> {
        self.attach(None)
    }

    /// Unplugs (`false`) or plugs back (`true`) the member at `addr`: its port on the bridge
    /// goes down, so it reaches nobody on the segment and nobody reaches it (a partition).
    pub fn set_plugged(&self, addr: Ipv4Addr, plugged: bool) -> anyhow::Result<()> {
        let port = self
            .ports
            .lock()
            .expect("not poisoned")
            .get(&addr)
            .cloned()
            .with_context(|| format!("{addr} is not on this LAN"))?;
        let state = if plugged { "up" } else { "down" };
        self.switch.run("ip", &["link", "set", &port, state])?;
        Ok(())
    }

    fn attach(&self, host: Option<&Host>) -> anyhow::Result<Ipv4Addr> {
        let n = self.next_member.fetch_add(1, Ordering::Relaxed);
        ensure!(
            n < (1 << (32 - self.prefix)) - 1,
            "the LAN has no free address"
        );
        let addr = Ipv4Addr::from(u32::from(self.network) + n);
        let ids = Ids::next();
        let (member_if, switch_if) = (ids.veth('m'), ids.veth('s'));
        // Made in the switch with the member's end in its host (the root: by our pid).
        let netns = match host {
            Some(host) => host.name.clone(),
            None => std::process::id().to_string(),
        };
        self.switch
            .run(
                "ip",
                &[
                    "link", "add", &switch_if, "type", "veth", "peer", "name", &member_if, "netns",
                    &netns,
                ],
            )
            .context("creating a LAN veth pair")?;
        self.switch
            .run("ip", &["link", "set", &switch_if, "master", BRIDGE, "up"])?;
        self.ports
            .lock()
            .expect("not poisoned")
            .insert(addr, switch_if.clone());
        let cidr = format!("{addr}/{}", self.prefix);
        match host {
            Some(host) => {
                host.run(
                    "sysctl",
                    &["-qw", &format!("net.ipv6.conf.{member_if}.disable_ipv6=1")],
                )?;
                host.run("ip", &["addr", "add", &cidr, "dev", &member_if])?;
                host.run("ip", &["link", "set", &member_if, "up"])?;
            }
            None => {
                std::fs::write(
                    format!("/proc/sys/net/ipv6/conf/{member_if}/disable_ipv6"),
                    "1",
                )?;
                run("ip", &["addr", "add", &cidr, "dev", &member_if])?;
                run("ip", &["link", "set", &member_if, "up"])?;
            }
        }
        Ok(addr)
    }
}

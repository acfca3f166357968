//! The XDP program counts what arrives on an interface, and flowproxy and bpftool agree.
use std::{net::UdpSocket, time::Duration};

use anyhow::{Context as _, ensure};
use flowproxy_tests::{Flowproxy, Host, bpftool, eventually};
use serde_json::Value;

/// Ethernet (14) + IPv4 (20) + UDP (8) headers around each datagram's payload.
const HEADERS: u64 = 42;

fn iface_counters(stats: &Value, interface: &str) -> anyhow::Result<(u64, u64, u32)> {
    let entry = stats["interfaces"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|i| i["interface"] == interface)
        .with_context(|| format!("{interface} missing from flowproxy stats: {stats}"))?;
    Ok((
        entry["packets"].as_u64().context("packets")?,
        entry["bytes"].as_u64().context("bytes")?,
        entry["slot"].as_u64().context("slot")? as u32,
    ))
}

#[test]
fn counts_every_packet_and_byte_received_on_the_interface() -> anyhow::Result<()> {
    let client = Host::new("client")?;
    let link = client.link_to_root()?;
    let proxy = Flowproxy::new().interface(&link.root_if).start()?;
    // A veth: counted at TC ingress by default.
    assert_eq!(
        bpftool::hooks_on(proxy.pid(), &link.root_if)?,
        ["tc-egress", "tc-ingress"]
    );

    let (packets_before, bytes_before, _) = iface_counters(&proxy.stats_json()?, &link.root_if)?;
    const COUNT: u64 = 250;
    const PAYLOAD: usize = 100;
    let target = (link.root_addr, 9);
    client.enter(|| -> anyhow::Result<()> {
        let socket = UdpSocket::bind((link.host_addr, 0))?;
        for _ in 0..COUNT {
            socket.send_to(&[0x5a; PAYLOAD], target)?;
        }
        Ok(())
    })??;

    let expected = (COUNT, COUNT * (HEADERS + PAYLOAD as u64));
    let (packets, bytes, slot) = eventually(Duration::from_secs(5), || {
        let (p, b, slot) = iface_counters(&proxy.stats_json()?, &link.root_if)?;
        let seen = (p - packets_before, b - bytes_before);
        ensure!(
            seen == expected,
            "flowproxy stats saw {seen:?}, expected {expected:?}"
        );
        Ok((p, b, slot))
    })?;

    let dump = bpftool::map_dump(&proxy.pin_dir().join("IFACE_STATS"))?;
    let by_bpftool = bpftool::percpu_u64_sum(&dump, slot, 2)?;
    assert_eq!(
        by_bpftool,
        [packets, bytes],
        "bpftool and flowproxy disagree"
    );
    Ok(())
}

#[test]
fn counts_each_interface_separately() -> anyhow::Result<()> {
    let (a, b) = (Host::new("a")?, Host::new("b")?);
    let (link_a, link_b) = (a.link_to_root()?, b.link_to_root()?);
    let proxy = Flowproxy::new()
        .interface(&link_a.root_if)
        .interface(&link_b.root_if)
        .start()?;
    let before_b = iface_counters(&proxy.stats_json()?, &link_b.root_if)?;
    a.enter(|| -> anyhow::Result<()> {
        let socket = UdpSocket::bind((link_a.host_addr, 0))?;
        for _ in 0..10 {
            socket.send_to(b"x", (link_a.root_addr, 9))?;
        }
        Ok(())
    })??;
    eventually(Duration::from_secs(5), || {
        let (p, _, _) = iface_counters(&proxy.stats_json()?, &link_a.root_if)?;
        ensure!(p >= 10, "interface a counted {p} packets");
        Ok(())
    })?;
    let after_b = iface_counters(&proxy.stats_json()?, &link_b.root_if)?;
    assert_eq!(before_b, after_b, "traffic on a was counted on b");
    assert_ne!(
        before_b.2,
        iface_counters(&proxy.stats_json()?, &link_a.root_if)?.2
    );
    Ok(())
}

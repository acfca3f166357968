//! Scenario 4's fast-path rows: the fast path needs packets that arrive on an interface, so it
//! runs on the TCP-mode lab of the integration tests (client host → proxy host → backend host,
//! all namespaces, veths with their default offloads, so the fast path runs at TC), with a
//! baseline on the same wires: the client talking to the backend directly, forwarded by the
//! proxy host's kernel.
use std::{net::SocketAddr, time::Duration};

use anyhow::{Context as _, bail};
use flowproxy_tests::{L4Lab, eventually, l4_lab::PROXY_ADDR};

use super::{Ctx, check_interrupted, tcp::iperf3_in};
use crate::bench::{
    process::Pinned,
    results::Table,
    sys::{SERVER_CORE, cpu_time},
};

/// The direct row of the fast-path lab.
pub const DIRECT_ROUTED: &str = "direct, routed through the proxy host";
/// flowproxy's fast path (at TC on these veths).
pub const FAST_PATH: &str = "flowproxy, fast path (TC on veth)";
const PORT: u16 = 15201;
const IPERF_PORT: u16 = 5201;

/// Adds the two rows, one transfer each per round, to `table`.
pub fn rows(ctx: &Ctx, table: &mut Table, round: u32) -> anyhow::Result<()> {
    check_interrupted()?;
    eprintln!("bench: scenario 4, round {round}: {FAST_PATH} (and {DIRECT_ROUTED})");
    let lab = L4Lab::start_with(Some(&ctx.lab.flowproxy_bin), &[])?;
    let backend = &lab.backends[0];
    let addr = backend.addr.to_string();
    let argv = [
        "nsenter",
        &format!("--net=/run/netns/{}", backend.host.name),
        "iperf3",
        "-s",
        "-B",
        &addr,
        "-p",
        &IPERF_PORT.to_string(),
    ];
    let _server = Pinned::spawn(
        "fastpath-iperf3",
        SERVER_CORE,
        &argv,
        &[],
        ctx.lab.work.path(),
    )?;
    let server = SocketAddr::from((backend.addr, IPERF_PORT));
    eventually(Duration::from_secs(10), || {
        backend
            .host
            .enter(|| std::net::TcpStream::connect(server))?
            .context("iperf3 server not up yet")
    })?;
    lab.dns.set("tasks.db", &[backend.addr])?;
    let answer = lab.proxy.api(&format!(
        "/v1/docker-flow-proxy/reconfigure?serviceName=db&reqMode=tcp&srcPort={PORT}&port={IPERF_PORT}"
    ))?;
    if answer.status != 200 {
        bail!("reconfigure: {} {}", answer.status, answer.body);
    }
    eventually(Duration::from_secs(15), || {
        let l4 = lab.l4_stats()?;
        let ready = l4["services"]
            .as_array()
            .is_some_and(|s| s.iter().any(|s| s["port"] == PORT && s["ring_size"] == 101));
        anyhow::ensure!(ready, "service not in the fast path yet: {l4}");
        Ok(())
    })?;
    let secs = ctx.plan.tcp_secs;
    let direct = iperf3_in(Some(&lab.client.name), server, secs)?;
    table.add(DIRECT_ROUTED, &[direct, f64::NAN, f64::NAN]);
    let pid = lab.proxy.pid();
    let before = cpu_time(pid)?;
    let started = std::time::Instant::now();
    let fast = iperf3_in(
        Some(&lab.client.name),
        SocketAddr::from((PROXY_ADDR, PORT)),
        secs,
    )?;
    let wall = started.elapsed().as_secs_f64();
    let (user, system) = cpu_time(pid)?.percent_since(&before, wall);
    table.add(FAST_PATH, &[fast, user, system]);
    Ok(())
}

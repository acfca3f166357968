//! Scenario 4's rows, every contender on the same wires: the TCP-mode lab of the integration
//! tests (client host → proxy host → backend host, all namespaces, veths with their default
//! offloads, so the fast path runs at TC). HAProxy's TCP mode, flowproxy's user-space relay
//! (`--l4-fastpath off`) and its fast path all run in the proxy host; the direct row is the
//! client talking to the backend, forwarded by the proxy host's kernel. Each row has a bulk
//! transfer (iperf3) and a request/response round trip at a low rate (one byte each way).
use std::{
    io::{BufRead as _, BufReader, Read as _, Write as _},
    net::{SocketAddr, TcpStream},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use flowproxy_tests::{
    L4Lab, eventually,
    l4_lab::{BACKEND_PORT, PROXY_ADDR},
};

use super::{Ctx, check_interrupted, tcp::iperf3_in};
use crate::bench::{
    contenders::haproxy,
    process::Pinned,
    results::Table,
    stats::percentile,
    sys::{SERVER_CORE, WorkDir, cpu_time},
};

/// The direct row.
pub const DIRECT_ROUTED: &str = "direct, routed through the proxy host";
/// HAProxy's TCP mode in the proxy host (the baseline).
pub const HAPROXY: &str = "HAProxy TCP, splice-auto";
/// flowproxy's TCP mode with the fast path off, relayed by tokio.
pub const RELAY: &str = "flowproxy, user-space relay";
/// flowproxy's fast path (at TC on these veths).
pub const FAST_PATH: &str = "flowproxy, fast path (TC on veth)";
const IPERF_PORT: u16 = 5201;
/// flowproxy's bulk and round-trip ports; HAProxy's.
const BULK: u16 = 15201;
const ECHO: u16 = 15204;
const HAPROXY_BULK: u16 = 15202;
const HAPROXY_ECHO: u16 = 15203;
/// Round trips per row, one every `GAP`.
const ROUND_TRIPS: usize = 1000;
const GAP: Duration = Duration::from_millis(1);

/// Adds the four rows, one measurement each per round, to `table`.
pub fn rows(ctx: &Ctx, table: &mut Table, round: u32) -> anyhow::Result<()> {
    check_interrupted()?;
    let bin = Some(ctx.lab.flowproxy_bin.as_path());
    let mut lab = L4Lab::start_with(bin, &[])?;
    let backend = &lab.backends[0];
    let addr = backend.addr;
    let argv = [
        "nsenter",
        &format!("--net=/run/netns/{}", backend.host.name),
        "iperf3",
        "-s",
        "-B",
        &addr.to_string(),
        "-p",
        &IPERF_PORT.to_string(),
    ];
    let work = ctx.lab.work.path();
    let _server = Pinned::spawn("fastpath-iperf3", SERVER_CORE, &argv, &[], work)?;
    let iperf = SocketAddr::from((addr, IPERF_PORT));
    let echo = SocketAddr::from((addr, BACKEND_PORT));
    eventually(Duration::from_secs(10), || {
        backend
            .host
            .enter(|| TcpStream::connect(iperf))?
            .context("iperf3 server not up yet")
    })?;
    lab.dns.set("tasks.db", &[addr])?;
    lab.dns.set("tasks.echo", &[addr])?;
    let secs = ctx.plan.tcp_secs;
    let on = |port: u16| SocketAddr::from((PROXY_ADDR, port));

    eprintln!("bench: scenario 4, round {round}: {DIRECT_ROUTED}");
    let gbit = iperf3_in(Some(&lab.client.name), iperf, secs)?;
    let (p50, p99) = round_trips(&lab, echo)?;
    table.add(DIRECT_ROUTED, &[gbit, f64::NAN, f64::NAN, p50, p99]);

    check_interrupted()?;
    eprintln!("bench: scenario 4, round {round}: {HAPROXY}");
    let dir = WorkDir::new("haproxy-lab")?;
    let config = format!(
        "{}\nfrontend echo\n    bind {}\n    default_backend echo\n\nbackend echo\n    server echo {echo}\n",
        haproxy::tcp_config(on(HAPROXY_BULK), iperf),
        on(HAPROXY_ECHO)
    );
    let path = dir.join("haproxy.cfg");
    std::fs::write(&path, config)?;
    let path = path.display().to_string();
    let netns = format!("--net=/run/netns/{}", lab.proxy_host.name);
    let argv = ["nsenter", &netns, "haproxy", "-db", "-f", &path];
    let proxy = Pinned::spawn("haproxy-lab", SERVER_CORE, &argv, &[], dir.path())?;
    accepting(&lab, on(HAPROXY_ECHO))?;
    // taskset and nsenter exec HAProxy, so the spawned pid is HAProxy's own.
    let pid = proxy.pid();
    let (gbit, user, system) = with_cpu(pid, || {
        iperf3_in(Some(&lab.client.name), on(HAPROXY_BULK), secs)
    })?;
    let (p50, p99) = round_trips(&lab, on(HAPROXY_ECHO))?;
    table.add(HAPROXY, &[gbit, user, system, p50, p99]);
    drop(proxy);

    check_interrupted()?;
    eprintln!("bench: scenario 4, round {round}: {FAST_PATH}");
    configure(&lab)?;
    eventually(Duration::from_secs(15), || {
        let l4 = lab.l4_stats()?;
        let ready = l4["services"].as_array().is_some_and(|s| {
            [BULK, ECHO]
                .iter()
                .all(|p| s.iter().any(|s| s["port"] == *p && s["ring_size"] == 101))
        });
        anyhow::ensure!(ready, "services not in the fast path yet: {l4}");
        Ok(())
    })?;
    let (gbit, user, system) = with_cpu(lab.proxy.pid(), || {
        iperf3_in(Some(&lab.client.name), on(BULK), secs)
    })?;
    let (p50, p99) = round_trips(&lab, on(ECHO))?;
    table.add(FAST_PATH, &[gbit, user, system, p50, p99]);

    check_interrupted()?;
    eprintln!("bench: scenario 4, round {round}: {RELAY}");
    lab.restart_proxy(bin, &["--l4-fastpath", "off"])?;
    configure(&lab)?;
    accepting(&lab, on(ECHO))?;
    accepting(&lab, on(BULK))?;
    let (gbit, user, system) = with_cpu(lab.proxy.pid(), || {
        iperf3_in(Some(&lab.client.name), on(BULK), secs)
    })?;
    let (p50, p99) = round_trips(&lab, on(ECHO))?;
    table.add(RELAY, &[gbit, user, system, p50, p99]);
    Ok(())
}

/// The bulk and the round-trip service, as TCP-mode services of the lab's flowproxy.
fn configure(lab: &L4Lab) -> anyhow::Result<()> {
    for (name, src, port) in [("db", BULK, IPERF_PORT), ("echo", ECHO, BACKEND_PORT)] {
        let answer = lab.proxy.api(&format!(
            "/v1/docker-flow-proxy/reconfigure?serviceName={name}&reqMode=tcp&srcPort={src}&port={port}"
        ))?;
        if answer.status != 200 {
            bail!("reconfigure {name}: {} {}", answer.status, answer.body);
        }
    }
    Ok(())
}

/// Waits until something accepts on `addr`, as seen from the client host.
fn accepting(lab: &L4Lab, addr: SocketAddr) -> anyhow::Result<()> {
    eventually(Duration::from_secs(15), || {
        lab.client
            .enter(|| TcpStream::connect_timeout(&addr, Duration::from_secs(1)))?
            .with_context(|| format!("nothing accepts on {addr} yet"))
    })?;
    Ok(())
}

/// Runs `transfer` and returns its result with `pid`'s user and system CPU, in % of a core.
fn with_cpu(
    pid: u32,
    transfer: impl FnOnce() -> anyhow::Result<f64>,
) -> anyhow::Result<(f64, f64, f64)> {
    let before = cpu_time(pid)?;
    let started = Instant::now();
    let gbit = transfer()?;
    let wall = started.elapsed().as_secs_f64();
    let (user, system) = cpu_time(pid)?.percent_since(&before, wall);
    Ok((gbit, user, system))
}

/// p50 and p99, in µs, of one-byte round trips through `addr` (to a backend's echo), one
/// every millisecond on one connection from the client host.
fn round_trips(lab: &L4Lab, addr: SocketAddr) -> anyhow::Result<(f64, f64)> {
    let mut rtts = lab.client.enter(|| -> anyhow::Result<Vec<u64>> {
        let mut conn = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
        conn.set_nodelay(true)?;
        conn.set_read_timeout(Some(Duration::from_secs(5)))?;
        conn.write_all(b"E")?;
        let mut name = String::new();
        BufReader::new(&conn).read_line(&mut name)?;
        let mut rtts = Vec::with_capacity(ROUND_TRIPS);
        let mut byte = [0u8; 1];
        for _ in 0..ROUND_TRIPS {
            let sent = Instant::now();
            conn.write_all(b"x")?;
            conn.read_exact(&mut byte)?;
            rtts.push(sent.elapsed().as_nanos() as u64);
            std::thread::sleep(GAP);
        }
        Ok(rtts)
    })??;
    rtts.sort_unstable();
    let us = |p| percentile(&rtts, p) as f64 / 1e3;
    Ok((us(50.0), us(99.0)))
}

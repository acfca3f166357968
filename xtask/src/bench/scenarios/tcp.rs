//! Scenario 4: TCP bulk transfer (iperf3) straight to the backend, through HAProxy's TCP mode
//! and through flowproxy's TCP mode (its user-space relay, and its kernel fast path on the
//! namespace lab of `fastpath`), with the proxy's CPU time during the transfer.
use std::{net::SocketAddr, process::Command};

use anyhow::{Context as _, bail};

use super::{Ctx, check_interrupted};
use crate::bench::{
    contenders::{flowproxy, haproxy},
    minihttp::Conn,
    process::Pinned,
    results::{Column, Scenario, Table},
    sys::{LOAD_CORE, WorkDir, cpu_time, free_port},
};

const COLUMNS: &[Column] = &[
    Column {
        key: "gbit_per_s",
        label: "Gbit/s",
    },
    Column {
        key: "proxy_user_cpu_pct",
        label: "proxy user CPU %",
    },
    Column {
        key: "proxy_system_cpu_pct",
        label: "proxy system CPU %",
    },
];

/// The direct row.
pub const DIRECT: &str = "direct";
/// The HAProxy row (the baseline).
pub const HAPROXY: &str = "HAProxy TCP, splice-auto";
/// flowproxy's TCP mode (`reqMode=tcp`), relayed by tokio.
pub const RELAY: &str = "flowproxy, user-space relay";

/// Runs scenario 4.
pub fn bulk(ctx: &Ctx) -> anyhow::Result<Scenario> {
    let mut table = Table::new(COLUMNS);
    let rounds = ctx.plan.rounds;
    for round in 1..=rounds {
        check_interrupted()?;
        eprintln!("bench: scenario 4, round {round}/{rounds}: {DIRECT}");
        let gbit = iperf3(ctx.lab.backend_tcp, ctx.plan.tcp_secs)?;
        table.add(DIRECT, &[gbit, f64::NAN, f64::NAN]);

        check_interrupted()?;
        eprintln!("bench: scenario 4, round {round}/{rounds}: {HAPROXY}");
        let dir = WorkDir::new("haproxy-tcp")?;
        let listen = free_port()?;
        let config = haproxy::tcp_config(listen, ctx.lab.backend_tcp);
        let proxy = haproxy::start(&dir, "haproxy-tcp", &config, listen)?;
        let (gbit, user, system) = with_cpu(&proxy, || iperf3(listen, ctx.plan.tcp_secs))?;
        table.add(HAPROXY, &[gbit, user, system]);
        drop(proxy);

        check_interrupted()?;
        eprintln!("bench: scenario 4, round {round}/{rounds}: {RELAY}");
        let state = WorkDir::new("flowproxy-tcp")?;
        let mut started = flowproxy::start(ctx.lab, true, state.path())?;
        let listen = free_port()?;
        let mut api = Conn::connect(started.api)?;
        flowproxy::reconfigure(
            &mut api,
            &flowproxy::tcp_query("iperf", listen.port(), ctx.lab.backend_tcp),
        )?;
        started.server.wait_for_port(listen)?;
        let (gbit, user, system) = with_cpu(&started.server, || iperf3(listen, ctx.plan.tcp_secs))?;
        table.add(RELAY, &[gbit, user, system]);
        drop(started);

        super::fastpath::rows(ctx, &mut table, round)?;
    }
    Ok(table.into_scenario(
        4,
        "TCP bulk transfer",
        &format!(
            "iperf3 -t {} (one stream) to the backend's iperf3 server; CPU % is of one core, user and system time of the proxy process during the transfer (clock ticks from /proc/<pid>/stat, each capped by the nanosecond on-CPU time of its threads' schedstat); flowproxy runs a TCP-mode service (`reqMode=tcp&srcPort=...`) with its counting programs attached; the fast-path rows run on a lab of namespaces (client, proxy, backend) joined by veths with their default offloads (TX checksum and TSO on), where the fast path runs at TC, and compare with a direct transfer on the same wires",
            ctx.plan.tcp_secs
        ),
        Some(HAPROXY),
    ))
}

/// Runs `transfer` and returns its result with the proxy's user and system CPU, in % of a core.
fn with_cpu(
    proxy: &Pinned,
    transfer: impl FnOnce() -> anyhow::Result<f64>,
) -> anyhow::Result<(f64, f64, f64)> {
    let before = cpu_time(proxy.pid())?;
    let started = std::time::Instant::now();
    let gbit = transfer()?;
    let wall = started.elapsed().as_secs_f64();
    let (user, system) = cpu_time(proxy.pid())?.percent_since(&before, wall);
    Ok((gbit, user, system))
}

/// One iperf3 transfer to `addr` from the load core; Gbit/s as the receiver counted them.
fn iperf3(addr: SocketAddr, secs: u32) -> anyhow::Result<f64> {
    iperf3_in(None, addr, secs)
}

/// As [`iperf3`], from inside network namespace `netns` when given.
pub fn iperf3_in(netns: Option<&str>, addr: SocketAddr, secs: u32) -> anyhow::Result<f64> {
    let mut cmd = match netns {
        Some(ns) => {
            let mut c = Command::new("nsenter");
            c.arg(format!("--net=/run/netns/{ns}")).arg("taskset");
            c
        }
        None => Command::new("taskset"),
    };
    let out = cmd
        .arg("-c")
        .arg(LOAD_CORE.to_string())
        .args(["iperf3", "-J", "-c"])
        .arg(addr.ip().to_string())
        .arg("-p")
        .arg(addr.port().to_string())
        .arg("-t")
        .arg(secs.to_string())
        .output()
        .context("starting iperf3")?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!("iperf3 to {addr} failed ({}): {text}", out.status);
    }
    parse_gbit(&text).with_context(|| format!("reading iperf3's report:\n{text}"))
}

fn parse_gbit(json: &str) -> anyhow::Result<f64> {
    let report: serde_json::Value = serde_json::from_str(json)?;
    let bps = report["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .context("no end.sum_received.bits_per_second")?;
    Ok(bps / 1e9)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throughput_is_what_the_receiver_counted() {
        let json = r#"{"end":{"sum_sent":{"bits_per_second":2.1e10},"sum_received":{"bits_per_second":2.0e10}}}"#;
        assert_eq!(parse_gbit(json).unwrap(), 20.0);
    }
}

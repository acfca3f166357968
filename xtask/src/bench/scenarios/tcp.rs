//! Scenario 4: TCP bulk transfer (iperf3) and round trips straight to the backend, through
//! HAProxy's TCP mode and through flowproxy's TCP mode (its user-space relay and its kernel
//! fast path), all on the namespace lab of `fastpath`, with the proxy's CPU time.
use std::{net::SocketAddr, process::Command};

use anyhow::{Context as _, bail};

use super::{Ctx, check_interrupted};
use crate::bench::{
    results::{Column, Scenario, Table},
    sys::LOAD_CORE,
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
    Column {
        key: "rtt_p50_us",
        label: "RTT p50 µs",
    },
    Column {
        key: "rtt_p99_us",
        label: "RTT p99 µs",
    },
];

pub use super::fastpath::HAPROXY;

/// Runs scenario 4, every contender on the namespace lab of `fastpath`.
pub fn bulk(ctx: &Ctx) -> anyhow::Result<Scenario> {
    let mut table = Table::new(COLUMNS);
    let rounds = ctx.plan.rounds;
    for round in 1..=rounds {
        check_interrupted()?;
        super::fastpath::rows(ctx, &mut table, round)?;
    }
    Ok(table.into_scenario(
        4,
        "TCP bulk transfer and round trips",
        &format!(
            "on a lab of namespaces (client, proxy, backend) joined by veths with their default offloads (TX checksum and TSO on), where flowproxy's fast path runs at TC: HAProxy's TCP mode, flowproxy's user-space relay (`--l4-fastpath off`) and its fast path all run in the proxy namespace, and the direct row is the client talking to the backend on the same wires, routed by the proxy namespace's kernel. Gbit/s: iperf3 -t {} (one stream); CPU % is of one core, user and system time of the proxy process during the transfer (clock ticks from /proc/<pid>/stat, each capped by the nanosecond on-CPU time of its threads' schedstat); RTT: {} one-byte request/response round trips on one connection, one per millisecond, to an echo server on the backend",
            ctx.plan.tcp_secs,
            1000
        ),
        Some(HAPROXY),
    ))
}

/// One iperf3 transfer to `addr` from the load core, inside network namespace `netns` when
/// given; Gbit/s as the receiver counted them.
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

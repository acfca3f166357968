//! Scenarios 1, 2, 3 and 8: HTTP/1.1 through each contender, keep-alive, a new connection per
//! request, latency at a fixed rate, and flowproxy with its counting programs attached or not.
use anyhow::Context as _;

use super::Ctx;
use crate::bench::{
    contenders::{Contender, HTTP, Running},
    plan::CONNECTIONS,
    rate,
    report::thousands,
    results::{Column, Scenario, Table},
    sys::{context_switches, cpu_time},
    wrk::{self, Load},
};

/// The row ratios are taken against.
pub const BASELINE: &str = "HAProxy";

const WRK_COLUMNS: &[Column] = &[
    Column {
        key: "req_per_s",
        label: "req/s",
    },
    Column {
        key: "p50_ms",
        label: "p50 ms",
    },
    Column {
        key: "p99_ms",
        label: "p99 ms",
    },
    Column {
        key: "failed",
        label: "failed requests",
    },
];

const FIXED_RATE_COLUMNS: &[Column] = &[
    Column {
        key: "p50_ms",
        label: "p50 ms",
    },
    Column {
        key: "p99_ms",
        label: "p99 ms",
    },
    Column {
        key: "p999_ms",
        label: "p99.9 ms",
    },
    Column {
        key: "achieved_req_per_s",
        label: "achieved req/s",
    },
    Column {
        key: "failed",
        label: "failed requests",
    },
];

/// Scenario 1's columns: wrk's (as [`WRK_COLUMNS`]), then where the proxy spends per request.
const KEEP_ALIVE_COLUMNS: &[Column] = &{
    let mut all = [Column { key: "", label: "" }; 7];
    let mut i = 0;
    while i < WRK_COLUMNS.len() {
        all[i] = WRK_COLUMNS[i];
        i += 1;
    }
    all[4] = Column {
        key: "user_us_per_req",
        label: "proxy user µs/req",
    };
    all[5] = Column {
        key: "system_us_per_req",
        label: "proxy system µs/req",
    };
    all[6] = Column {
        key: "switches_per_req",
        label: "proxy context switches/req",
    };
    all
};

/// wrk's values, with the proxy's CPU time and context switches per request during the run
/// (none for a direct connection).
fn with_spending(
    running: &Running,
    load: impl FnOnce() -> anyhow::Result<wrk::Run>,
) -> anyhow::Result<Vec<f64>> {
    let Some(pid) = running.pid() else {
        let mut values = wrk_values(&load()?);
        values.extend([f64::NAN; 3]);
        return Ok(values);
    };
    let (cpu, switches) = (cpu_time(pid)?, context_switches(pid)?);
    let run = load()?;
    let (cpu_after, switches_after) = (cpu_time(pid)?, context_switches(pid)?);
    let requests = run.requests.max(1) as f64;
    // Tick counts capped by the nanosecond on-CPU time, as scenario 4 reads them.
    let (user, system) = cpu_after.percent_since(&cpu, 1.0);
    let mut values = wrk_values(&run);
    values.extend([
        user / 100.0 * 1e6 / requests,
        system / 100.0 * 1e6 / requests,
        (switches_after - switches) as f64 / requests,
    ]);
    Ok(values)
}

fn wrk_values(run: &wrk::Run) -> Vec<f64> {
    vec![
        run.req_per_s(),
        run.p50_us as f64 / 1000.0,
        run.p99_us as f64 / 1000.0,
        run.failures() as f64,
    ]
}

/// Scenario 1: keep-alive, small response.
pub fn keep_alive(ctx: &Ctx) -> anyhow::Result<Scenario> {
    let mut table = Table::new(KEEP_ALIVE_COLUMNS);
    let load = Load::keep_alive(ctx.plan.load_secs);
    ctx.alternate(1, &HTTP, &mut table, |running| {
        with_spending(running, || {
            wrk::run(ctx.lab.work.path(), running.addr, load)
        })
    })?;
    Ok(table.into_scenario(
        1,
        "HTTP/1.1 keep-alive, small response",
        &format!(
            "wrk -t1 -c{CONNECTIONS} -d{}s, GET / answered 200 with 14 bytes by nginx `return 200`; latency as wrk measures it; the proxy's user and system CPU time (clock ticks capped by the threads' nanosecond schedstat) and its context switches (voluntary and not, all threads), per request",
            ctx.plan.load_secs
        ),
        Some(BASELINE),
    ))
}

/// Scenario 2: a new client connection per request (`Connection: close`).
pub fn new_connections(ctx: &Ctx) -> anyhow::Result<Scenario> {
    let mut table = Table::new(WRK_COLUMNS);
    let load = Load {
        close: true,
        ..Load::keep_alive(ctx.plan.load_secs)
    };
    ctx.alternate(2, &HTTP, &mut table, |running| {
        Ok(wrk_values(&wrk::run(
            ctx.lab.work.path(),
            running.addr,
            load,
        )?))
    })?;
    Ok(table.into_scenario(
        2,
        "HTTP/1.1, a new connection per request",
        "as scenario 1 with `Connection: close` on every request (wrk reconnects); proxies keep their upstream connections",
        Some(BASELINE),
    ))
}

/// Scenario 3: latency at half of HAProxy's maximum rate (scenario 1's median).
pub fn fixed_rate(ctx: &Ctx, haproxy_max: f64) -> anyhow::Result<Scenario> {
    let rate = (haproxy_max / 2.0).round();
    let mut table = Table::new(FIXED_RATE_COLUMNS);
    let duration = ctx.plan.fixed_rate;
    ctx.alternate(3, &HTTP, &mut table, |running| {
        let out = rate::run(running.addr, rate, CONNECTIONS, duration)
            .context("the fixed-rate generator")?;
        Ok(vec![
            out.percentile_ms(50.0),
            out.percentile_ms(99.0),
            out.percentile_ms(99.9),
            out.achieved_rate,
            out.errors as f64,
        ])
    })?;
    Ok(table.into_scenario(
        3,
        "Latency at a fixed rate",
        &format!(
            "{} req/s (half of HAProxy's scenario-1 median) for {}s over {CONNECTIONS} keep-alive connections, from xtask's constant-rate generator; latency from each request's scheduled time (no coordinated omission)",
            thousands(rate as u64),
            duration.as_secs()
        ),
        Some(BASELINE),
    ))
}

/// Scenario 8: scenario 1 for flowproxy with its counting programs attached and detached.
pub fn data_plane_overhead(ctx: &Ctx) -> anyhow::Result<Scenario> {
    let mut table = Table::new(WRK_COLUMNS);
    let load = Load::keep_alive(ctx.plan.load_secs);
    let contenders = [Contender::FlowproxyDetached, Contender::Flowproxy];
    ctx.alternate(8, &contenders, &mut table, |running| {
        Ok(wrk_values(&wrk::run(
            ctx.lab.work.path(),
            running.addr,
            load,
        )?))
    })?;
    table.note(
        Contender::Flowproxy.label(),
        "XDP (ingress) and TC (egress) counting programs on the backend's veth",
    );
    Ok(table.into_scenario(
        8,
        "Data-plane overhead",
        "scenario 1 for flowproxy started with `--interface <backend veth>` and without it",
        Some(Contender::FlowproxyDetached.label()),
    ))
}

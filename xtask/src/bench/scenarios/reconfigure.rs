//! Scenario 5: configuration changes under load. flowproxy gets reconfigure calls for the very
//! service the load goes to; HAProxy is reloaded the way Docker Flow Proxy reloaded it (`-x`
//! socket hand-over, `-sf` to the old process). Every request that fails counts.
use std::time::{Duration, Instant};

use anyhow::Context as _;

use super::{Ctx, check_interrupted};
use crate::bench::{
    contenders::{
        Contender,
        flowproxy::{self, SERVICE},
        haproxy::Reloadable,
    },
    minihttp::Conn,
    report::thousands,
    results::{Column, Scenario, Table},
    sys::free_port,
    wrk::{self, Load},
};

const COLUMNS: &[Column] = &[
    Column {
        key: "failed",
        label: "failed requests",
    },
    Column {
        key: "requests",
        label: "requests",
    },
    Column {
        key: "req_per_s",
        label: "req/s",
    },
    Column {
        key: "changes",
        label: "changes applied",
    },
    Column {
        key: "change_failures",
        label: "changes refused",
    },
];

/// The flowproxy row.
pub const FLOWPROXY: &str = "flowproxy, reconfigure calls";
/// The HAProxy row.
pub const HAPROXY: &str = "HAProxy, reloads (-sf, -x)";

/// Runs scenario 5.
pub fn under_load(ctx: &Ctx) -> anyhow::Result<Scenario> {
    let plan = ctx.plan;
    let mut table = Table::new(COLUMNS);
    for round in 1..=plan.rounds {
        check_interrupted()?;
        eprintln!(
            "bench: scenario 5, round {round}/{}: {FLOWPROXY}",
            plan.rounds
        );
        table.add(FLOWPROXY, &flowproxy_round(ctx)?);

        check_interrupted()?;
        eprintln!(
            "bench: scenario 5, round {round}/{}: {HAPROXY}",
            plan.rounds
        );
        table.add(HAPROXY, &haproxy_round(ctx)?);
    }
    Ok(table.into_scenario(
        5,
        "Reconfigure under load",
        &format!(
            "wrk -c32 for {}s; flowproxy: {} reconfigure calls for the loaded service (alternating timeoutServer), HAProxy: {} reloads (`haproxy -x stats.sock -sf <old pid>`, the rate of the issue's reference run), each spread evenly over the load",
            plan.reconfigure_load_secs,
            thousands(plan.reconfigures.into()),
            plan.reloads
        ),
        Some(HAPROXY),
    ))
}

fn flowproxy_round(ctx: &Ctx) -> anyhow::Result<Vec<f64>> {
    let running = ctx.start_warm(Contender::Flowproxy)?;
    let api = running
        .api
        .context("flowproxy runs without an API address")?;
    let backend = ctx.lab.backend_http;
    let mut conn = Conn::connect(api)?;
    let (run, (done, refused)) = during_load(ctx, running.addr, ctx.plan.reconfigures, |i| {
        let timeout = if i % 2 == 0 { "21" } else { "20" };
        let query = flowproxy::reconfigure_query(
            SERVICE,
            "/",
            backend,
            &format!("&timeoutServer={timeout}"),
        );
        flowproxy::reconfigure(&mut conn, &query)
    })?;
    Ok(values(&run, done, refused))
}

fn haproxy_round(ctx: &Ctx) -> anyhow::Result<Vec<f64>> {
    let mut proxy = Reloadable::start(free_port()?, ctx.lab.backend_http)?;
    ctx.warm_up(proxy.addr)?;
    let addr = proxy.addr;
    let (run, (done, refused)) = during_load(ctx, addr, ctx.plan.reloads, |_| proxy.reload())?;
    debug_assert_eq!(proxy.reloads() as u64, done + refused);
    Ok(values(&run, done, refused))
}

fn values(run: &wrk::Run, done: u64, refused: u64) -> Vec<f64> {
    vec![
        run.failures() as f64,
        run.requests as f64,
        run.req_per_s(),
        done as f64,
        refused as f64,
    ]
}

/// Runs wrk for the scenario's load time while `change` is called `count` times, evenly spread
/// (leaving half a second at each end so every change happens under load). Returns wrk's run
/// and how many changes succeeded and failed.
fn during_load(
    ctx: &Ctx,
    addr: std::net::SocketAddr,
    count: u32,
    mut change: impl FnMut(u32) -> anyhow::Result<()>,
) -> anyhow::Result<(wrk::Run, (u64, u64))> {
    let secs = ctx.plan.reconfigure_load_secs;
    let dir = ctx.lab.work.path().to_owned();
    let load = std::thread::spawn(move || wrk::run(&dir, addr, Load::keep_alive(secs)));
    let margin = Duration::from_millis(500);
    let spacing = (Duration::from_secs(secs.into()) - 2 * margin) / count;
    let start = Instant::now() + margin;
    let (mut done, mut refused) = (0, 0);
    for i in 0..count {
        let due = start + spacing * i;
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        match change(i) {
            Ok(()) => done += 1,
            Err(e) => {
                refused += 1;
                if refused == 1 {
                    eprintln!("bench: a change failed: {e:#}");
                }
            }
        }
    }
    let run = load
        .join()
        .map_err(|_| anyhow::anyhow!("the load thread panicked"))??;
    Ok((run, (done, refused)))
}

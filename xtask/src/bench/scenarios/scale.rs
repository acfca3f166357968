//! Scenario 7: flowproxy with thousands of services against 10: the time one reconfigure call
//! takes, and requests per second to one of them. The reconfigure API takes one service per
//! call, so the large configuration is built call by call; both configurations are then
//! restored from their state directories by fresh processes, alternating round by round.
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use flowproxy_tests::eventually;

use super::{Ctx, check_interrupted};
use crate::bench::{
    contenders::flowproxy::{self, SERVICE, Started},
    minihttp::Conn,
    report::thousands,
    results::{Column, Scenario, Table},
    stats::median,
    sys::WorkDir,
    wrk::{self, Load},
};

const COLUMNS: &[Column] = &[
    Column {
        key: "reconfigure_ms",
        label: "reconfigure call ms",
    },
    Column {
        key: "req_per_s",
        label: "req/s",
    },
    Column {
        key: "p99_ms",
        label: "p99 ms",
    },
];

/// Services in the small configuration.
const SMALL: u32 = 10;
/// Reconfigure calls timed per configuration (each replaces an existing service).
const TIMED_CALLS: u32 = 200;

/// One configuration: its state directory and how long building it took.
struct Config {
    label: String,
    state: WorkDir,
    build_secs: f64,
}

/// Runs scenario 7.
pub fn many_services(ctx: &Ctx) -> anyhow::Result<Scenario> {
    let large = ctx.plan.services;
    let mut table = Table::new(COLUMNS);
    let mut configs = Vec::new();
    for services in [SMALL, large] {
        check_interrupted()?;
        let label = format!("{} services", thousands(services.into()));
        eprintln!("bench: scenario 7: configuring {label}, one reconfigure call each");
        let state = WorkDir::new("scale-state")?;
        let started = flowproxy::start(ctx.lab, true, state.path())?;
        let began = Instant::now();
        configure(ctx, &started, services)?;
        let build_secs = began.elapsed().as_secs_f64();
        let call_ms = time_calls(ctx, &started, services)?;
        table.add(&label, &[call_ms, f64::NAN, f64::NAN]);
        configs.push(Config {
            label,
            state,
            build_secs,
        });
    }
    for round in 1..=ctx.plan.rounds {
        for config in &configs {
            check_interrupted()?;
            eprintln!(
                "bench: scenario 7, round {round}/{}: {}",
                ctx.plan.rounds, config.label
            );
            let started = flowproxy::start(ctx.lab, true, config.state.path())?;
            wait_serving(&started)?;
            ctx.warm_up(started.http)?;
            let run = wrk::run(
                ctx.lab.work.path(),
                started.http,
                Load::keep_alive(ctx.plan.load_secs),
            )?;
            table.add(
                &config.label,
                &[f64::NAN, run.req_per_s(), run.p99_us as f64 / 1000.0],
            );
        }
    }
    for config in &configs {
        table.note(
            &config.label,
            format!("building it took {:.1} s", config.build_secs),
        );
    }
    let baseline = configs[0].label.clone();
    Ok(table.into_scenario(
        7,
        "Scale: many services",
        &format!(
            "services `/svc-<i>` plus the loaded one at `/`; reconfigure call: median of {TIMED_CALLS} calls that each replace a configured service, over one keep-alive connection; req/s and p99: wrk -c32 -d{}s to `/` (the route a lookup reaches last)",
            ctx.plan.load_secs
        ),
        Some(&baseline),
    ))
}

/// Configures the bench service and `services - 1` others.
fn configure(ctx: &Ctx, started: &Started, services: u32) -> anyhow::Result<()> {
    let backend = ctx.lab.backend_http;
    let mut api = Conn::connect(started.api)?;
    flowproxy::reconfigure(
        &mut api,
        &flowproxy::reconfigure_query(SERVICE, "/", backend, ""),
    )?;
    for i in 1..services {
        if i % 1000 == 0 {
            check_interrupted()?;
            eprintln!("bench: scenario 7: {i} services configured");
        }
        let query =
            flowproxy::reconfigure_query(&format!("svc-{i}"), &format!("/svc-{i}"), backend, "");
        flowproxy::reconfigure(&mut api, &query)?;
    }
    Ok(())
}

/// The median time of reconfigure calls that replace already configured services, ms.
fn time_calls(ctx: &Ctx, started: &Started, services: u32) -> anyhow::Result<f64> {
    let backend = ctx.lab.backend_http;
    let mut api = Conn::connect(started.api)?;
    let mut times = Vec::with_capacity(TIMED_CALLS as usize);
    for call in 0..TIMED_CALLS {
        let i = 1 + call % (services - 1);
        let query = flowproxy::reconfigure_query(
            &format!("svc-{i}"),
            &format!("/svc-{i}"),
            backend,
            &format!("&timeoutServer={}", 21 + call % 2),
        );
        let began = Instant::now();
        flowproxy::reconfigure(&mut api, &query)?;
        times.push(began.elapsed().as_secs_f64() * 1000.0);
    }
    Ok(median(&times))
}

/// Waits until the restored configuration serves the bench service.
fn wait_serving(started: &Started) -> anyhow::Result<()> {
    eventually(Duration::from_secs(30), || {
        let status = Conn::connect(started.http)?.get("/")?.status;
        if status != 200 {
            bail!("flowproxy answers {status}");
        }
        Ok(())
    })
    .context("the restored configuration never served the bench service")
}

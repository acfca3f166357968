//! `cargo xtask bench`: flowproxy against HAProxy, nginx and a direct connection, side by side,
//! on this machine (issue 7). Installs the contenders and load generators, builds the release
//! flowproxy, runs the eight scenarios with the same backend and CPU pinning for everyone, and
//! writes `results.json`, `results.md` and `results.png` (default `target/bench/`).
mod chart;
mod contenders;
mod h2load;
mod lab;
mod minihttp;
mod plan;
mod process;
mod rate;
mod report;
mod results;
mod scenarios;
mod stats;
mod sys;
mod targets;
mod wrk;

use std::{
    path::{Path, PathBuf},
    time::Instant,
};

use anyhow::{Context as _, bail};

use self::{
    contenders::Contender,
    lab::Lab,
    plan::Plan,
    results::Results,
    scenarios::{Ctx, http, https, memory, reconfigure, scale, tcp},
    sys::{LOAD_CORE, SERVER_CORE},
};
use crate::{
    build,
    setup::{install_debian_packages, install_pypi_tools},
    shell::{cargo, is_root, run, workspace_root},
};

/// The contenders, load generators, and the chart's font (h2load comes with nghttp2-client; the
/// fixed-rate scenario uses xtask's own generator, which measures from the scheduled time).
const PACKAGES: &[&str] = &[
    "haproxy",
    "nginx",
    "wrk",
    "nghttp2-client",
    "iperf3",
    // Scenario 9's RSA certificate.
    "openssl",
    "fonts-dejavu-core",
];

/// Open files wanted: 10,000 idle connections in the client (this process) and in the proxy
/// (which inherits the limit), plus everything else.
const OPEN_FILES: u64 = 65_536;

/// What `cargo xtask bench` was asked to do.
#[derive(Debug)]
pub struct Options {
    /// Every scenario briefly instead of the full run.
    pub quick: bool,
    /// Where the results go (default `target/bench`).
    pub out: Option<PathBuf>,
    /// Run only these scenarios (all when empty); scenario 3 runs scenario 1 for its rate.
    pub only: Vec<u32>,
    /// Only rewrite results.md and results.png from an existing results.json.
    pub render: bool,
    /// Set by the debug xtask when it hands over to the release one (tools installed, binaries
    /// built).
    pub prebuilt: bool,
}

/// Runs the benchmark.
pub fn bench(options: &Options) -> anyhow::Result<()> {
    let out = options
        .out
        .clone()
        .unwrap_or_else(|| workspace_root().join("target/bench"));
    if options.render {
        let json = out.join("results.json");
        let text = std::fs::read_to_string(&json)
            .with_context(|| format!("reading {}", json.display()))?;
        return write(&serde_json::from_str(&text)?, &out);
    }
    if !is_root() {
        bail!(
            "the benchmark creates a network namespace, attaches BPF programs and pins processes: run as root (sudo -E cargo xtask bench)"
        );
    }
    let cores = sys::cores();
    if cores < 2 {
        bail!(
            "the benchmark needs 2 cores (load generator on one, servers on the other); this machine has {cores}"
        );
    }
    if !options.prebuilt {
        install_debian_packages(PACKAGES)?;
        install_pypi_tools(&contenders::tools_dir(), &contenders::PYPI_TOOLS)?;
        return exec_release(options);
    }
    let flowproxy = workspace_root().join("target/release/flowproxy");
    let plan = if options.quick {
        Plan::quick()
    } else {
        Plan::full()
    };

    let open_files = sys::raise_open_files(OPEN_FILES)?;
    let needed = u64::from(plan.idle_connections) + 1024;
    if open_files < needed {
        bail!(
            "the memory scenario needs {needed} open files per process; the limit is {open_files}: raise it (ulimit -Hn {needed}) and run again"
        );
    }
    // Everything this process runs from now on (wrk, iperf3 -c, its own generators) stays on
    // the load core; servers are started with taskset on the other.
    sys::pin_current_thread(LOAD_CORE)?;
    scenarios::stop_on_signals();
    let started = Instant::now();
    let date = sys::now_utc();
    eprintln!("bench: {} run, {} rounds", plan.mode, plan.rounds);
    let lab = Lab::start(&flowproxy)?;
    wrk::write_script(lab.work.path())?;
    let scenarios = run_scenarios(
        &Ctx {
            lab: &lab,
            plan: &plan,
        },
        &options.only,
    )?;
    drop(lab);

    let results = Results {
        date,
        mode: plan.mode.to_owned(),
        rounds: plan.rounds,
        machine: sys::machine(cores),
        pinning: format!(
            "load generators (wrk, iperf3 -c, xtask's own clients) on core {LOAD_CORE}; the backend (nginx `return 200`, iperf3 -s, in a network namespace behind a veth pair) and the proxy under test on core {SERVER_CORE}"
        ),
        targets: targets::check(&scenarios),
        scenarios,
    };
    write(&results, &out)?;
    println!("{}", report::markdown(&results));
    eprintln!(
        "bench: done in {:.0} s; results in {}",
        started.elapsed().as_secs_f64(),
        out.display()
    );
    Ok(())
}

fn run_scenarios(ctx: &Ctx, only: &[u32]) -> anyhow::Result<Vec<results::Scenario>> {
    let wanted = |id: u32| only.is_empty() || only.contains(&id);
    let mut out = Vec::new();
    if wanted(1) || wanted(3) {
        out.push(http::keep_alive(ctx).context("scenario 1")?);
    }
    if wanted(2) {
        out.push(http::new_connections(ctx).context("scenario 2")?);
    }
    if wanted(3) {
        let haproxy_max = out[0]
            .median(Contender::Haproxy.label(), "req_per_s")
            .context("scenario 1 has no HAProxy req/s to base scenario 3's rate on")?;
        out.push(http::fixed_rate(ctx, haproxy_max).context("scenario 3")?);
    }
    if wanted(4) {
        out.push(tcp::bulk(ctx).context("scenario 4")?);
    }
    if wanted(5) {
        out.push(reconfigure::under_load(ctx).context("scenario 5")?);
    }
    if wanted(6) {
        out.push(memory::idle_connections(ctx).context("scenario 6")?);
    }
    if wanted(7) {
        out.push(scale::many_services(ctx).context("scenario 7")?);
    }
    if wanted(8) {
        out.push(http::data_plane_overhead(ctx).context("scenario 8")?);
    }
    if wanted(9) {
        out.push(https::tls_termination(ctx).context("scenario 9")?);
    }
    Ok(out)
}

/// Builds the BPF object, the release flowproxy with it embedded and the release xtask, then
/// replaces this process with that xtask: the benchmark's own clients (the fixed-rate generator,
/// the API and idle-connection clients) must not be the slow part of what they measure.
fn exec_release(options: &Options) -> anyhow::Result<()> {
    use std::os::unix::process::CommandExt as _;
    build::build_ebpf()?;
    run(cargo().args(["build", "--release", "-p", "flowproxy", "-p", "xtask"]))?;
    let mut cmd = std::process::Command::new(workspace_root().join("target/release/xtask"));
    cmd.args(["bench", "--prebuilt"]);
    if options.quick {
        cmd.arg("--quick");
    }
    if let Some(out) = &options.out {
        cmd.arg("--out").arg(out);
    }
    if !options.only.is_empty() {
        let only: Vec<String> = options.only.iter().map(u32::to_string).collect();
        cmd.arg("--only").arg(only.join(","));
    }
    eprintln!("bench: continuing in the release build of xtask");
    Err(anyhow::Error::new(cmd.exec()).context("starting the release xtask"))
}

fn write(results: &Results, out: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let json = out.join("results.json");
    std::fs::write(&json, serde_json::to_string_pretty(results)?)
        .with_context(|| format!("writing {}", json.display()))?;
    std::fs::write(out.join("results.md"), report::markdown(results))?;
    chart::draw(results, &out.join("results.png"))?;
    Ok(())
}

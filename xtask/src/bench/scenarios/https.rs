//! Scenario 9: HTTPS, where Swarm users terminate TLS. The same backend and pinning as the
//! plain scenarios; HAProxy and flowproxy serve one RSA-2048 certificate made for the run,
//! TLS 1.3 (both's default). Three loads each: a full handshake per request (wrk with
//! `Connection: close`; it resumes no session), HTTP/1.1 keep-alive over TLS (wrk), and
//! HTTP/2 over TLS (h2load, 32 connections × 10 streams).
use std::{net::SocketAddr, path::Path, process::Command};

use anyhow::Context as _;

use super::{Ctx, check_interrupted};
use crate::{
    bench::{
        contenders::{flowproxy, haproxy},
        h2load,
        plan::CONNECTIONS,
        process::Pinned,
        results::{Column, Scenario, Table},
        sys::{WorkDir, free_port},
        wrk::{self, Load},
    },
    shell::run,
};

/// The baseline row.
pub const HAPROXY: &str = "HAProxy";
/// flowproxy's row.
pub const FLOWPROXY: &str = "flowproxy";

/// Streams per HTTP/2 connection.
const STREAMS: u32 = 10;

const COLUMNS: &[Column] = &[
    Column {
        key: "handshake_req_per_s",
        label: "full handshake per request, req/s",
    },
    Column {
        key: "h1_req_per_s",
        label: "HTTP/1.1 keep-alive over TLS, req/s",
    },
    Column {
        key: "h2_req_per_s",
        label: "HTTP/2 over TLS, req/s",
    },
    Column {
        key: "failed",
        label: "failed requests",
    },
];

/// A TLS-terminating proxy in front of the lab's backend, stopped on drop.
struct Running {
    addr: SocketAddr,
    _server: Pinned,
    _dir: WorkDir,
}

/// Runs scenario 9.
pub fn tls_termination(ctx: &Ctx) -> anyhow::Result<Scenario> {
    let certs = WorkDir::new("bench-cert")?;
    let pem = certs.join("bench.pem");
    make_certificate(certs.path(), &pem)?;
    let mut table = Table::new(COLUMNS);
    let rounds = ctx.plan.rounds;
    for round in 1..=rounds {
        for label in [HAPROXY, FLOWPROXY] {
            check_interrupted()?;
            eprintln!("bench: scenario 9, round {round}/{rounds}: {label}");
            let running = if label == HAPROXY {
                start_haproxy(ctx, &pem)?
            } else {
                start_flowproxy(ctx, &pem)?
            };
            let values =
                measure(ctx, running.addr).with_context(|| format!("measuring {label}"))?;
            table.add(label, &values);
        }
    }
    Ok(table.into_scenario(
        9,
        "HTTPS",
        &format!(
            "TLS 1.3 with one RSA-2048 certificate, the plain scenarios' backend and pinning; {}s each: wrk -t1 -c{CONNECTIONS} with `Connection: close` (a full handshake per request), wrk -t1 -c{CONNECTIONS} keep-alive, h2load -t1 -c{CONNECTIONS} -m{STREAMS}; failed requests over the three",
            ctx.plan.load_secs
        ),
        Some(HAPROXY),
    ))
}

fn measure(ctx: &Ctx, addr: SocketAddr) -> anyhow::Result<Vec<f64>> {
    let dir = ctx.lab.work.path();
    let keep_alive = Load {
        tls: true,
        ..Load::keep_alive(ctx.plan.load_secs)
    };
    wrk::run(
        dir,
        addr,
        Load {
            secs: ctx.plan.warmup_secs,
            ..keep_alive
        },
    )
    .context("warming up")?;
    let handshakes = wrk::run(
        dir,
        addr,
        Load {
            close: true,
            ..keep_alive
        },
    )?;
    let h1 = wrk::run(dir, addr, keep_alive)?;
    let h2 = h2load::run(addr, CONNECTIONS, STREAMS, ctx.plan.load_secs)?;
    Ok(vec![
        handshakes.req_per_s(),
        h1.req_per_s(),
        h2.req_per_s,
        (handshakes.failures() + h1.failures() + h2.failed) as f64,
    ])
}

/// A self-signed RSA-2048 certificate for `localhost` and 127.0.0.1, with its key, in `pem`.
fn make_certificate(dir: &Path, pem: &Path) -> anyhow::Result<()> {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    run(Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "7",
        ])
        .args(["-subj", "/CN=localhost"])
        .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(std::process::Stdio::null()))
    .context("making the scenario's certificate (Debian: openssl)")?;
    let bundle = [std::fs::read(&cert)?, std::fs::read(&key)?].concat();
    std::fs::write(pem, bundle)?;
    Ok(())
}

fn start_haproxy(ctx: &Ctx, pem: &Path) -> anyhow::Result<Running> {
    let dir = WorkDir::new("haproxy-tls")?;
    let listen = free_port()?;
    let config = haproxy::https_config(listen, ctx.lab.backend_http, pem);
    let server = haproxy::start(&dir, "haproxy-tls", &config, listen)?;
    Ok(Running {
        addr: listen,
        _server: server,
        _dir: dir,
    })
}

/// flowproxy as deployed (counting programs attached), its certificate in `--certs-dir`.
fn start_flowproxy(ctx: &Ctx, pem: &Path) -> anyhow::Result<Running> {
    let state = WorkDir::new("flowproxy-tls-state")?;
    let certs = state.join("certs");
    std::fs::create_dir_all(&certs)?;
    std::fs::copy(pem, certs.join("bench.pem"))?;
    let started = flowproxy::start(ctx.lab, true, state.path())?;
    flowproxy::configure_bench_service(&started, ctx.lab.backend_http)?;
    let addr = started
        .https
        .context("this flowproxy has no --https-addr")?;
    Ok(Running {
        addr,
        _server: started.server,
        _dir: state,
    })
}

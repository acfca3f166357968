//! Scenario 6: the proxy's resident memory with thousands of idle keep-alive client connections,
//! each of which has made one request (so the proxy holds whatever a served connection keeps).
use std::time::Duration;

use anyhow::{Context as _, bail};

use super::Ctx;
use crate::bench::{
    contenders::{Contender, Running},
    minihttp::Conn,
    report::thousands,
    results::{Column, Scenario, Table},
    sys::rss_kib,
};

const COLUMNS: &[Column] = &[
    Column {
        key: "rss_mib",
        label: "RSS with the connections, MiB",
    },
    Column {
        key: "rss_idle_mib",
        label: "RSS before, MiB",
    },
    Column {
        key: "kib_per_connection",
        label: "KiB per connection",
    },
];

const CONTENDERS: [Contender; 3] = [Contender::Haproxy, Contender::Nginx, Contender::Flowproxy];

/// How long the connections sit idle before the proxy's memory is read.
const SETTLE: Duration = Duration::from_secs(1);

/// Runs scenario 6.
pub fn idle_connections(ctx: &Ctx) -> anyhow::Result<Scenario> {
    let n = ctx.plan.idle_connections;
    let mut table = Table::new(COLUMNS);
    ctx.alternate(6, &CONTENDERS, &mut table, |running| measure(running, n))?;
    Ok(table.into_scenario(
        6,
        "Memory with idle keep-alive connections",
        &format!(
            "{} client connections, each sends one GET / and then stays open and idle; VmRSS of the proxy process after {}s, against before (after the warm-up)",
            thousands(n.into()),
            SETTLE.as_secs()
        ),
        Some(super::http::BASELINE),
    ))
}

fn measure(running: &Running, n: u32) -> anyhow::Result<Vec<f64>> {
    let pid = running.pid().context("a proxy process")?;
    let before = rss_kib(pid)?;
    let mut conns = Vec::with_capacity(n as usize);
    for i in 0..n {
        let mut conn = Conn::connect(running.addr)
            .with_context(|| format!("opening idle connection {i} of {n}"))?;
        let status = conn.get("/")?.status;
        if status != 200 {
            bail!("idle connection {i} got {status}");
        }
        conns.push(conn);
    }
    std::thread::sleep(SETTLE);
    let after = rss_kib(pid)?;
    for conn in &conns {
        reset_on_close(conn);
    }
    drop(conns);
    Ok(vec![
        after as f64 / 1024.0,
        before as f64 / 1024.0,
        (after as f64 - before as f64) / f64::from(n),
    ])
}

/// Makes closing the connection send a reset, so 10,000 client sockets do not sit in
/// TIME_WAIT for a minute holding ports.
fn reset_on_close(conn: &Conn) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // Safety: setsockopt on an open socket with a correctly sized struct.
    unsafe {
        libc::setsockopt(
            conn.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&raw const linger).cast(),
            size_of::<libc::linger>() as libc::socklen_t,
        );
    }
}

//! What the TCP-mode tests and the benchmark check on an [`L4Lab`]: that a service is
//! programmed, its fast-path counters, and that a stream arrives intact.
use std::{
    io::{Read, Write},
    net::TcpStream,
    time::Duration,
};

use anyhow::{Context as _, ensure};

use crate::{L4Lab, eventually, l4_lab::pattern};

/// Waits until the fast path holds the service on `port` with a ring of at least one replica;
/// its stats.
pub fn programmed(lab: &L4Lab, port: u16) -> anyhow::Result<serde_json::Value> {
    let programmed = eventually(Duration::from_secs(15), || {
        let svc = service_stats(lab, port)?;
        ensure!(svc["ring_size"].as_u64() > Some(0), "no replica yet: {svc}");
        Ok(svc)
    });
    programmed.with_context(|| format!("flowproxy's log:\n{}", lab.proxy.log()))
}

/// The fast path's stats of the service on `port` (`flowproxy stats --json`).
pub fn service_stats(lab: &L4Lab, port: u16) -> anyhow::Result<serde_json::Value> {
    let l4 = lab.l4_stats()?;
    l4["services"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["port"] == port))
        .cloned()
        .with_context(|| format!("no service on {port}: {l4}"))
}

/// Asks the backend behind `conn` to stream `len` pattern bytes and checks they all arrive, in
/// order (by SHA-256).
pub fn stream_intact(mut conn: TcpStream, len: u64) -> anyhow::Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(30)))?;
    conn.write_all(b"S")?;
    conn.write_all(&len.to_le_bytes())?;
    let mut received = ring::digest::Context::new(&ring::digest::SHA256);
    let mut total = 0u64;
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = conn.read(&mut buf)?;
        if n == 0 {
            break;
        }
        received.update(&buf[..n]);
        total += n as u64;
    }
    let mut expected = ring::digest::Context::new(&ring::digest::SHA256);
    pattern(len, |chunk| expected.update(chunk));
    ensure!(total == len, "{total} of {len} bytes arrived");
    ensure!(
        received.finish().as_ref() == expected.finish().as_ref(),
        "the bytes that arrived differ from those sent"
    );
    Ok(())
}

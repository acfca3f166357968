//! wrk, pinned to the load core, one thread: requests per second, latency percentiles and every
//! kind of failed request, printed as JSON by a `done` hook instead of scraped from its text.
use std::{net::SocketAddr, path::Path, process::Command};

use anyhow::{Context as _, bail};
use serde::Deserialize;

use super::{plan::CONNECTIONS, sys::LOAD_CORE};

/// The `done` hook: one JSON line with wrk's own summary and latency histogram.
const SCRIPT: &str = r#"done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '\nBENCH {"requests":%d,"duration_us":%d,"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d,"p50_us":%d,"p99_us":%d,"p999_us":%d}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99), latency:percentile(99.9)))
end
"#;

/// One wrk run.
#[derive(Debug, Clone, Deserialize)]
pub struct Run {
    /// Requests completed.
    pub requests: u64,
    /// How long the run took, µs.
    pub duration_us: u64,
    /// Connections that could not be opened.
    pub connect: u64,
    /// Reads that failed (a connection closed mid-response, a reset).
    pub read: u64,
    /// Writes that failed.
    pub write: u64,
    /// Responses that were not 2xx or 3xx.
    pub status: u64,
    /// Requests with no response within wrk's timeout (2 s).
    pub timeout: u64,
    /// Median latency, µs.
    pub p50_us: u64,
    /// 99th percentile, µs.
    pub p99_us: u64,
}

impl Run {
    /// Completed requests per second.
    pub fn req_per_s(&self) -> f64 {
        self.requests as f64 / (self.duration_us as f64 / 1e6)
    }

    /// Every failed request, whatever the kind.
    pub fn failures(&self) -> u64 {
        self.connect + self.read + self.write + self.status + self.timeout
    }
}

/// What to send.
#[derive(Debug, Clone, Copy)]
pub struct Load {
    /// Open connections.
    pub connections: u32,
    /// Whole seconds.
    pub secs: u32,
    /// `Connection: close` on every request: a new connection per request.
    pub close: bool,
    /// HTTPS instead of plain HTTP (with `close`, a full TLS handshake per request: wrk keeps
    /// no session to resume).
    pub tls: bool,
}

impl Load {
    /// The issue's reference load: 32 keep-alive connections.
    pub fn keep_alive(secs: u32) -> Self {
        Self {
            connections: CONNECTIONS,
            secs,
            close: false,
            tls: false,
        }
    }
}

/// Writes the hook wrk loads (once per run directory).
pub fn write_script(dir: &Path) -> anyhow::Result<()> {
    std::fs::write(dir.join("wrk-done.lua"), SCRIPT).context("writing the wrk script")
}

/// Runs wrk against `http://addr/` (or `https://`) with `load`, on the load core.
pub fn run(dir: &Path, addr: SocketAddr, load: Load) -> anyhow::Result<Run> {
    let mut cmd = Command::new("taskset");
    cmd.arg("-c")
        .arg(LOAD_CORE.to_string())
        .args(["wrk", "-t1", "--latency"])
        .arg(format!("-c{}", load.connections))
        .arg(format!("-d{}s", load.secs))
        .arg("-s")
        .arg(dir.join("wrk-done.lua"));
    if load.close {
        cmd.args(["-H", "Connection: close"]);
    }
    let scheme = if load.tls { "https" } else { "http" };
    cmd.arg(format!("{scheme}://{addr}/"));
    let out = cmd.output().context("starting wrk")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!(
            "wrk failed ({}): {}{}",
            out.status,
            stdout,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    parse(&stdout).with_context(|| format!("reading wrk's output:\n{stdout}"))
}

fn parse(stdout: &str) -> anyhow::Result<Run> {
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("BENCH "))
        .context("no summary line from the wrk script")?;
    Ok(serde_json::from_str(line)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_line_is_found_among_wrks_text() {
        let out = "Running 1s test @ http://127.0.0.1:1/\n  1 threads and 32 connections\n\
            BENCH {\"requests\":1000,\"duration_us\":500000,\"connect\":0,\"read\":2,\"write\":0,\
            \"status\":1,\"timeout\":0,\"p50_us\":200,\"p99_us\":900,\"p999_us\":1500}\n\
            Requests/sec: 2000.00\n";
        let run = parse(out).unwrap();
        assert_eq!(run.req_per_s(), 2000.0);
        assert_eq!(run.failures(), 3);
        assert_eq!(run.p99_us, 900);
    }
}

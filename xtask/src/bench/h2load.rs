//! h2load, the HTTP/2 load generator of nghttp2: a fixed number of connections, each with
//! several concurrent streams, for a fixed time.
use std::{net::SocketAddr, process::Command};

use anyhow::{Context as _, bail};

use super::sys::LOAD_CORE;

/// What one h2load run measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Run {
    /// Completed requests per second, as h2load reports it.
    pub req_per_s: f64,
    /// Requests that failed or errored.
    pub failed: u64,
}

/// `connections` × `streams` concurrent HTTP/2 requests to `https://addr/` for `secs`
/// seconds, on the load core (ALPN `h2`).
pub fn run(addr: SocketAddr, connections: u32, streams: u32, secs: u32) -> anyhow::Result<Run> {
    let out = Command::new("taskset")
        .arg("-c")
        .arg(LOAD_CORE.to_string())
        .args(["h2load", "-t1"])
        .arg(format!("-c{connections}"))
        .arg(format!("-m{streams}"))
        .arg(format!("-D{secs}"))
        .arg(format!("https://{addr}/"))
        .output()
        .context("starting h2load")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!(
            "h2load failed ({}): {stdout}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    parse(&stdout).with_context(|| format!("reading h2load's output:\n{stdout}"))
}

/// Reads `finished in 5.00s, 12345.60 req/s, ...` and `requests: ... N failed, M errored, ...`.
fn parse(stdout: &str) -> anyhow::Result<Run> {
    let finished = stdout
        .lines()
        .find_map(|l| l.strip_prefix("finished in "))
        .context("no `finished in` line")?;
    let req_per_s = finished
        .split(", ")
        .find_map(|part| part.strip_suffix(" req/s"))
        .context("no req/s on the `finished in` line")?
        .parse()?;
    let requests = stdout
        .lines()
        .find_map(|l| l.strip_prefix("requests: "))
        .context("no `requests:` line")?;
    let count = |what: &str| -> anyhow::Result<u64> {
        let part = requests
            .split(", ")
            .find_map(|p| p.strip_suffix(what))
            .with_context(|| format!("no `{what}` count"))?;
        Ok(part.trim().parse()?)
    };
    Ok(Run {
        req_per_s,
        failed: count(" failed")? + count(" errored")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rate_and_the_failures_are_read() {
        let out = "starting benchmark...\nspawning thread #0: 32 total client(s). Timing-based test with 0s of warm-up time and 5s of main duration for thread #0.\n\
            finished in 5.00s, 21234.40 req/s, 1.23MB/s\n\
            requests: 106172 total, 106492 started, 106172 done, 106170 succeeded, 2 failed, 1 errored, 0 timeout\n\
            status codes: 106170 2xx, 0 3xx, 0 4xx, 0 5xx\n";
        let run = parse(out).unwrap();
        assert_eq!(run.req_per_s, 21234.4);
        assert_eq!(run.failed, 3);
    }

    #[test]
    fn output_without_a_summary_is_an_error() {
        assert!(parse("starting benchmark...\n").is_err());
    }
}

//! A replica of the demo service (`flowproxy-demo`, the article's `go-demo`) running inside a
//! host, with its request log kept in a file that tests read and errors quote.
use std::{
    fs::File,
    net::{SocketAddr, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Stdio},
    time::Duration,
};

use anyhow::{Context as _, bail};

use crate::{Host, Ids, Link, cmd::die_with_parent, eventually};

/// How long a replica may take to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// The demo binary: `$FLOWPROXY_DEMO_BIN`, else the workspace's debug build.
pub fn binary() -> anyhow::Result<PathBuf> {
    let path = std::env::var_os("FLOWPROXY_DEMO_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/debug/flowproxy-demo")
        });
    if !path.is_file() {
        bail!(
            "no flowproxy-demo binary at {}: build it with `cargo xtask build`",
            path.display()
        );
    }
    Ok(path)
}

/// A running demo replica, killed on drop.
#[derive(Debug)]
pub struct DemoBackend {
    child: Child,
    name: String,
    addr: SocketAddr,
    log_path: PathBuf,
    killed: bool,
}

impl DemoBackend {
    /// Starts a replica called `name` inside `host`, listening on `port` of every address there,
    /// and waits until the root namespace can connect to it at `link.host_addr:port`.
    pub fn start(host: &Host, link: &Link, name: &str, port: u16) -> anyhow::Result<Self> {
        let bin = binary()?;
        let log_path = std::env::temp_dir().join(format!("{}-{name}.log", Ids::next().netns()));
        let log = File::create(&log_path)
            .with_context(|| format!("creating the log {}", log_path.display()))?;
        let bin = bin
            .to_str()
            .context("the demo binary's path is not UTF-8")?;
        let mut cmd = host.command(bin);
        let child = die_with_parent(&mut cmd)
            .arg("--listen")
            .arg(format!("0.0.0.0:{port}"))
            .arg("--name")
            .arg(name)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting replica {name}"))?;
        let mut backend = Self {
            child,
            name: name.to_owned(),
            addr: SocketAddr::from((link.host_addr, port)),
            log_path,
            killed: false,
        };
        backend.wait_ready()?;
        Ok(backend)
    }

    fn wait_ready(&mut self) -> anyhow::Result<()> {
        let exited = eventually(START_TIMEOUT, || {
            if let Some(status) = self.child.try_wait()? {
                self.killed = true;
                return Ok(Some(status));
            }
            TcpStream::connect_timeout(&self.addr, Duration::from_secs(1))
                .with_context(|| format!("replica {} at {}", self.name, self.addr))?;
            Ok(None)
        })
        .with_context(|| format!("replica {} never accepted:\n{}", self.name, self.log()))?;
        if let Some(status) = exited {
            bail!(
                "replica {} exited at start ({status}):\n{}",
                self.name,
                self.log()
            );
        }
        Ok(())
    }

    /// Where the replica is reached from the root namespace.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The replica's name, as `/demo/who` answers it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Everything the replica has printed so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// How many requests the replica has answered (its request log lines).
    pub fn request_count(&self) -> usize {
        count_requests(&self.log(), &self.name)
    }

    /// Kills the replica with SIGKILL, as a crashed task would die, and reaps it. Idempotent.
    pub fn kill(&mut self) {
        if !self.killed {
            let _ = self.child.kill();
            let _ = self.child.wait();
            self.killed = true;
        }
    }
}

impl Drop for DemoBackend {
    fn drop(&mut self) {
        self.kill();
        if !std::thread::panicking() {
            let _ = std::fs::remove_file(&self.log_path);
        }
    }
}

/// Counts the request lines (`<name> <METHOD> </path> <status>`) in a replica's log, skipping
/// its other messages.
fn count_requests(log: &str, name: &str) -> usize {
    log.lines()
        .filter(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            matches!(
                fields.as_slice(),
                [n, method, path, status]
                    if *n == name
                        && !method.is_empty()
                        && method.bytes().all(|b| b.is_ascii_uppercase())
                        && path.starts_with('/')
                        && status.parse::<u16>().is_ok()
            )
        })
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_request_lines_of_this_replica_are_counted() {
        let log = "go-demo.1 listening on 0.0.0.0:8080\n\
                   go-demo.1 GET /demo/hello 200\n\
                   go-demo.1 POST /demo/echo 200\n\
                   accept failed: too many open files\n\
                   go-demo.2 GET /demo/hello 200\n\
                   go-demo.1 GET /nope 404\n";
        assert_eq!(count_requests(log, "go-demo.1"), 3);
        assert_eq!(count_requests("", "go-demo.1"), 0);
    }
}

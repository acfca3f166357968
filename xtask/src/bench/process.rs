//! Servers the benchmark starts (backends, proxies): pinned to a core with `taskset`, their
//! output kept in a log that errors quote, stopped on drop, and killed by the kernel if the
//! benchmark itself dies.
use std::{
    ffi::OsStr,
    fs::File,
    net::{SocketAddr, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use flowproxy_tests::{cmd::die_with_parent, eventually};

/// How long a server may take to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a server may take to exit after SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// A running server process, stopped on drop.
#[derive(Debug)]
pub struct Pinned {
    child: Child,
    name: String,
    log_path: PathBuf,
    stopped: bool,
}

impl Pinned {
    /// Starts `argv` on `core` (`taskset -c core argv...`), with its output in `log_dir`.
    /// `taskset` and `ip netns exec` exec the program, so the process id is the server's.
    pub fn spawn<S: AsRef<OsStr>>(
        name: &str,
        core: usize,
        argv: &[S],
        env: &[(&str, &str)],
        log_dir: &Path,
    ) -> anyhow::Result<Self> {
        let log_path = log_dir.join(format!("{name}.log"));
        let log = File::create(&log_path)
            .with_context(|| format!("creating the log {}", log_path.display()))?;
        let mut cmd = Command::new("taskset");
        cmd.arg("-c").arg(core.to_string()).args(argv);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = die_with_parent(&mut cmd)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {name}"))?;
        Ok(Self {
            child,
            name: name.to_owned(),
            log_path,
            stopped: false,
        })
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything the server has printed.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Fails, quoting the log, if the server has exited.
    pub fn ensure_running(&mut self) -> anyhow::Result<()> {
        if let Some(status) = self.child.try_wait()? {
            self.stopped = true;
            bail!("{} exited ({status}):\n{}", self.name, self.log());
        }
        Ok(())
    }

    /// Waits until the server accepts TCP connections on `addr`.
    pub fn wait_for_port(&mut self, addr: SocketAddr) -> anyhow::Result<()> {
        eventually(START_TIMEOUT, || {
            self.ensure_running()?;
            TcpStream::connect_timeout(&addr, Duration::from_secs(1))
                .with_context(|| format!("{} does not accept on {addr} yet", self.name))?;
            Ok(())
        })
        .with_context(|| format!("{} never accepted on {addr}:\n{}", self.name, self.log()))
    }

    /// True once the process has exited (reaping it, so it is never signalled again).
    pub fn has_exited(&mut self) -> bool {
        if !matches!(self.child.try_wait(), Ok(None)) {
            self.stopped = true;
        }
        self.stopped
    }

    /// SIGTERM, then SIGKILL if it is still running after a while. Idempotent.
    pub fn stop(&mut self) {
        if self.stopped {
            return;
        }
        self.stopped = true;
        // Safety: kill(2) on our own child, which has not been reaped yet.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + STOP_TIMEOUT;
        while Instant::now() < deadline {
            if !matches!(self.child.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        eprintln!("bench: {} ignored SIGTERM; killing it", self.name);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Pinned {
    fn drop(&mut self) {
        self.stop();
    }
}

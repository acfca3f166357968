//! A real `flowproxy` process under test: started with the flags a test names, its log kept in
//! a file that errors quote, stopped (and its pins removed) on drop.
use std::{
    fs::File,
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Output, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};

use crate::{Ids, cmd::run_cmd, eventually};

/// How long a start may take before the test fails.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// The flowproxy binary: `$FLOWPROXY_BIN`, else the workspace's debug build.
pub fn binary() -> anyhow::Result<PathBuf> {
    let path = std::env::var_os("FLOWPROXY_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/debug/flowproxy"));
    if !path.is_file() {
        bail!(
            "no flowproxy binary at {}: build it with `cargo xtask build`",
            path.display()
        );
    }
    Ok(path)
}

/// A flowproxy about to be started. Unless a test says otherwise it listens on loopback ports
/// the kernel picks, and keeps its state in a directory of its own.
#[derive(Debug, Default)]
pub struct Flowproxy {
    args: Vec<String>,
    pin_dir: Option<PathBuf>,
    state_dir: Option<PathBuf>,
    run_as: Option<u32>,
    netns: Option<String>,
    bin: Option<PathBuf>,
    envs: Vec<(String, String)>,
    no_defaults: Vec<String>,
}

/// A started flowproxy.
#[derive(Debug)]
pub struct RunningProxy {
    child: Child,
    log_path: PathBuf,
    pin_dir: PathBuf,
    /// Removed on drop when the harness made it.
    own_state_dir: Option<PathBuf>,
    /// Where the HTTP proxy listens.
    pub http_addr: SocketAddr,
    /// Where the HTTPS proxy listens.
    pub https_addr: SocketAddr,
    /// Where the API listens.
    pub api_addr: SocketAddr,
    exited: Option<ExitStatus>,
    netns: Option<String>,
    /// The binary it runs, which also answers `stats` (a release build in the benchmark).
    bin: PathBuf,
}

impl Flowproxy {
    /// A flowproxy with its own pin directory, so tests never share maps.
    pub fn new() -> Self {
        Self::default()
    }

    /// Attaches the data plane to `interface`.
    pub fn interface(self, interface: &str) -> Self {
        self.arg("--interface").arg(interface)
    }

    /// Pins maps under `dir` instead of a fresh directory.
    pub fn pin_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.pin_dir = Some(dir.into());
        self
    }

    /// Keeps the configuration in `dir` (which the test owns) instead of a fresh directory.
    pub fn state_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.state_dir = Some(dir.into());
        self
    }

    /// Adds a command-line argument.
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// Sets an environment variable of the process (a migrated DFP stack's, say).
    pub fn env(mut self, name: &str, value: &str) -> Self {
        self.envs.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Leaves out the harness's default for `flag` (`--api-addr`, ...), so the binary's own
    /// default, or an environment variable, decides.
    pub fn without_default(mut self, flag: &str) -> Self {
        self.no_defaults.push(flag.to_owned());
        self
    }

    /// Runs the process as this (unprivileged) user id.
    pub fn as_user(mut self, uid: u32) -> Self {
        self.run_as = Some(uid);
        self
    }

    /// Runs this flowproxy binary instead of the workspace's debug build (the benchmark's
    /// release build, say).
    pub fn binary(mut self, bin: impl Into<PathBuf>) -> Self {
        self.bin = Some(bin.into());
        self
    }

    /// Runs flowproxy inside `host`'s network namespace (with `nsenter`, which, unlike
    /// `ip netns exec`, keeps the BPF filesystem mounted); the API is then called from there too.
    pub fn in_host(mut self, host: &crate::Host) -> Self {
        self.netns = Some(host.name.clone());
        self
    }

    fn has_flag(&self, flag: &str) -> bool {
        self.args
            .iter()
            .any(|a| a == flag || a.starts_with(&format!("{flag}=")))
    }

    /// The binary to run: the one given, else the harness's.
    fn bin(&self) -> anyhow::Result<PathBuf> {
        match &self.bin {
            Some(bin) => Ok(bin.clone()),
            None => binary(),
        }
    }

    fn command(&self, pin_dir: &Path, state_dir: &Path) -> anyhow::Result<Command> {
        let bin = self.bin()?;
        let mut cmd = match (&self.netns, self.run_as) {
            (Some(_), Some(_)) => bail!("in_host and as_user cannot be combined"),
            // nsenter, not `ip netns exec`: the latter remounts /sys, hiding the BPF filesystem.
            (Some(netns), None) => {
                let mut c = Command::new("nsenter");
                c.arg(format!("--net=/run/netns/{netns}")).arg(&bin);
                c
            }
            (None, Some(uid)) => {
                let mut c = Command::new("setpriv");
                c.args([
                    &format!("--reuid={uid}"),
                    &format!("--regid={uid}"),
                    "--clear-groups",
                ]);
                c.arg(&bin);
                c
            }
            (None, None) => Command::new(&bin),
        };
        // Loopback ports the kernel picks, and no certificates but the test's own.
        let empty = std::env::temp_dir().join(format!("{}-none", Ids::next().netns()));
        let empty = empty.to_string_lossy().into_owned();
        for (flag, default) in [
            ("--http-addr", "127.0.0.1:0"),
            ("--https-addr", "127.0.0.1:0"),
            ("--api-addr", "127.0.0.1:0"),
            ("--certs-dir", empty.as_str()),
            ("--secrets-dir", empty.as_str()),
        ] {
            if !self.has_flag(flag) && !self.no_defaults.iter().any(|f| f == flag) {
                cmd.args([flag, default]);
            }
        }
        cmd.envs(self.envs.iter().map(|(k, v)| (k, v)));
        cmd.args(&self.args)
            .arg("--bpffs-dir")
            .arg(pin_dir)
            .arg("--state-dir")
            .arg(state_dir)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null());
        Ok(cmd)
    }

    /// Starts flowproxy and waits until it logs that it listens (a lone proxy is ready by then).
    pub fn start(self) -> anyhow::Result<RunningProxy> {
        let pin_dir = self
            .pin_dir
            .clone()
            .unwrap_or_else(|| Ids::next().pin_dir());
        let own_state_dir = self.state_dir.is_none().then(temp_state_dir);
        let state_dir = self
            .state_dir
            .clone()
            .or(own_state_dir.clone())
            .expect("one is set");
        let bin = self.bin()?;
        let log_path = std::env::temp_dir().join(format!("{}.log", Ids::next().netns()));
        let log = File::create(&log_path)?;
        let child = self
            .command(&pin_dir, &state_dir)?
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting flowproxy")?;
        let unknown: SocketAddr = ([0, 0, 0, 0], 0).into();
        let mut proxy = RunningProxy {
            child,
            log_path,
            pin_dir,
            own_state_dir,
            http_addr: unknown,
            https_addr: unknown,
            api_addr: unknown,
            exited: None,
            netns: self.netns.clone(),
            bin,
        };
        proxy.wait_ready()?;
        Ok(proxy)
    }

    /// Runs flowproxy expecting it to exit by itself (bad input), and returns what it printed.
    pub fn run_to_exit(self) -> anyhow::Result<Output> {
        let pin_dir = self
            .pin_dir
            .clone()
            .unwrap_or_else(|| Ids::next().pin_dir());
        let own_state_dir = temp_state_dir();
        let state_dir = self
            .state_dir
            .clone()
            .unwrap_or_else(|| own_state_dir.clone());
        let mut child = self
            .command(&pin_dir, &state_dir)?
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        let deadline = Instant::now() + START_TIMEOUT;
        while child.try_wait()?.is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                bail!("flowproxy kept running; expected it to exit");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = std::fs::remove_dir_all(&pin_dir);
        let _ = std::fs::remove_dir_all(&own_state_dir);
        Ok(child.wait_with_output()?)
    }
}

impl RunningProxy {
    fn wait_ready(&mut self) -> anyhow::Result<()> {
        eventually(START_TIMEOUT, || {
            if let Some(status) = self.child.try_wait()? {
                self.exited = Some(status);
                return Ok(());
            }
            // Listening, not ready: a replica with peers is ready only once it has their
            // configuration, which a cluster test waits for by ping.
            if let Some(line) = self
                .log()
                .lines()
                .find(|l| l.contains("flowproxy listening"))
            {
                self.http_addr = field(line, "http_addr")?;
                self.https_addr = field(line, "https_addr")?;
                self.api_addr = field(line, "api_addr")?;
                return Ok(());
            }
            bail!("flowproxy is not ready yet:\n{}", self.log())
        })?;
        if let Some(status) = self.exited {
            bail!("flowproxy exited at start ({status}):\n{}", self.log());
        }
        Ok(())
    }

    /// `http://<http_addr><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.http_addr)
    }

    /// `http://<api_addr><path_and_query>`.
    pub fn api_url(&self, path_and_query: &str) -> String {
        format!("http://{}{path_and_query}", self.api_addr)
    }

    /// A request to the API with curl (`path_and_query` starts with `/`).
    pub fn api(&self, path_and_query: &str) -> anyhow::Result<crate::http::CurlResponse> {
        let url = self.api_url(path_and_query);
        match &self.netns {
            Some(ns) => crate::http::curl_in_netns(ns, &[&url]),
            None => crate::http::curl(&[&url]),
        }
    }

    /// Everything the process has logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Where this proxy pins its maps.
    pub fn pin_dir(&self) -> &Path {
        &self.pin_dir
    }

    /// Kills the process with SIGKILL, as a crash would, and reaps it.
    pub fn kill9(&mut self) -> anyhow::Result<()> {
        self.child.kill()?;
        self.exited = Some(self.child.wait()?);
        Ok(())
    }

    /// Sends SIGTERM and waits for a clean exit.
    pub fn terminate(&mut self) -> anyhow::Result<ExitStatus> {
        // Safety: kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let status = eventually(Duration::from_secs(15), || {
            self.child
                .try_wait()?
                .context("still running after SIGTERM")
        })?;
        self.exited = Some(status);
        Ok(status)
    }

    /// `flowproxy stats --json` for this proxy's pins.
    pub fn stats_json(&self) -> anyhow::Result<serde_json::Value> {
        Ok(serde_json::from_str(&self.stats(&["--json"])?)?)
    }

    /// `flowproxy stats` as an operator reads it: the tables.
    pub fn stats_text(&self) -> anyhow::Result<String> {
        self.stats(&[])
    }

    fn stats(&self, extra: &[&str]) -> anyhow::Result<String> {
        let mut cmd = match &self.netns {
            Some(ns) => {
                let mut c = Command::new("nsenter");
                c.arg(format!("--net=/run/netns/{ns}")).arg(&self.bin);
                c
            }
            None => Command::new(&self.bin),
        };
        run_cmd(
            cmd.arg("stats")
                .args(extra)
                .arg("--bpffs-dir")
                .arg(&self.pin_dir)
                .arg("--api-url")
                .arg(format!("http://{}", self.api_addr)),
        )
    }
}

/// A fresh state directory under the temp dir, named like every harness resource.
pub fn temp_state_dir() -> PathBuf {
    std::env::temp_dir().join(format!("{}-state", Ids::next().netns()))
}

/// A directory for a test's files (secrets, certificates), removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// A fresh directory whose name ends in `.what`.
    pub fn new(what: &str) -> anyhow::Result<Self> {
        let dir = temp_state_dir().with_extension(what);
        std::fs::create_dir_all(&dir)?;
        Ok(Self(dir))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The value of `name=value` in a text log line, or of the field `name` in a JSON one
/// (`--log-format json`).
fn field(line: &str, name: &str) -> anyhow::Result<SocketAddr> {
    let value = if line.starts_with('{') {
        let json: serde_json::Value =
            serde_json::from_str(line).with_context(|| format!("a JSON log line: {line:?}"))?;
        json.get(name)
            .and_then(serde_json::Value::as_str)
            .with_context(|| format!("no {name} in {line:?}"))?
            .to_owned()
    } else {
        let prefix = format!("{name}=");
        line.split_whitespace()
            .find_map(|token| token.strip_prefix(&prefix))
            .with_context(|| format!("no {name} in {line:?}"))?
            .trim_matches('"')
            .to_owned()
    };
    value.parse().with_context(|| format!("{name} in {line:?}"))
}

impl Drop for RunningProxy {
    fn drop(&mut self) {
        if self.exited.is_none() {
            let _ = self.terminate();
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.pin_dir);
        if let Some(dir) = &self.own_state_dir {
            let _ = std::fs::remove_dir_all(dir);
        }
        if !std::thread::panicking() {
            let _ = std::fs::remove_file(&self.log_path);
        }
    }
}

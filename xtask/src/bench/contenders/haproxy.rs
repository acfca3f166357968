//! HAProxy as Docker Flow Proxy ran it: one process (`-db`: foreground, so it is our child and
//! dies with us), one thread (it is pinned to one core), no logging, `http-reuse always`; in TCP
//! mode with `option splice-auto`; and reloaded the DFP way: a new process takes the listening
//! sockets over the stats socket (`-x`) and tells the old one to finish (`-sf`).
use std::{
    io::{Read as _, Write as _},
    net::SocketAddr,
    os::unix::net::UnixStream,
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{Context as _, bail};
use flowproxy_tests::eventually;

use crate::bench::{
    process::Pinned,
    sys::{SERVER_CORE, WorkDir},
};

/// How long a reloaded process may take to take over.
const RELOAD_TIMEOUT: Duration = Duration::from_secs(10);

/// HTTP mode in front of `backend`; the stats socket hands the listeners to a reloaded process.
pub fn http_config(listen: SocketAddr, backend: SocketAddr, stats: &Path) -> String {
    let stats = format!(
        "stats socket {} mode 600 level admin expose-fd listeners",
        stats.display()
    );
    http_mode(&stats, &listen.to_string(), "http", backend)
}

/// HTTP mode behind TLS on `listen` (the certificate and key bundle `pem`, ALPN `h2` and
/// `http/1.1`), with the same forwarded headers as [`http_config`].
pub fn https_config(listen: SocketAddr, backend: SocketAddr, pem: &Path) -> String {
    let bind = format!("{listen} ssl crt {} alpn h2,http/1.1", pem.display());
    http_mode("", &bind, "https", backend)
}

/// HTTP mode bound as `bind` says, with `global_extra` in the global section; requests carry
/// X-Forwarded-Proto `proto`.
fn http_mode(global_extra: &str, bind: &str, proto: &str, backend: SocketAddr) -> String {
    format!(
        "global
    maxconn 12000
    # HAProxy wants 2 descriptors per connection; with a hard limit of 20,000 open files it
    # would refuse 12,000 connections, though 10,000 idle ones need only half of that.
    no strict-limits
    nbthread 1
    {global_extra}

defaults
    mode http
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    timeout http-keep-alive 60s
    http-reuse always

frontend bench
    bind {bind}
    # The headers flowproxy adds (and DFP's own template has HAProxy add), so both do the same
    # work per request.
    option forwardfor
    http-request set-header X-Forwarded-Proto {proto}
    http-request set-header X-Forwarded-Host %[req.hdr(host)]
    default_backend bench

backend bench
    server backend {backend}
"
    )
}

/// TCP mode in front of `backend`, splicing when it pays off.
pub fn tcp_config(listen: SocketAddr, backend: SocketAddr) -> String {
    format!(
        "global
    maxconn 12000
    no strict-limits
    nbthread 1

defaults
    mode tcp
    option splice-auto
    timeout connect 5s
    timeout client 60s
    timeout server 60s

frontend bench
    bind {listen}
    default_backend bench

backend bench
    server backend {backend}
"
    )
}

/// Starts HAProxy with `config` on the server core and waits until it accepts on `listen`.
pub fn start(
    work: &WorkDir,
    name: &str,
    config: &str,
    listen: SocketAddr,
) -> anyhow::Result<Pinned> {
    let path = work.join(&format!("{name}.cfg"));
    std::fs::write(&path, config)?;
    let argv = [
        "haproxy".into(),
        "-db".into(),
        "-f".into(),
        path.display().to_string(),
    ];
    let mut proxy = Pinned::spawn(name, SERVER_CORE, &argv, &[], work.path())?;
    proxy.wait_for_port(listen)?;
    Ok(proxy)
}

/// An HTTP-mode HAProxy that can be reloaded the way Docker Flow Proxy reloaded it.
#[derive(Debug)]
pub struct Reloadable {
    current: Pinned,
    /// Processes told to finish, kept until they have (and stopped on drop if they have not).
    retired: Vec<Pinned>,
    config: PathBuf,
    stats: PathBuf,
    work: WorkDir,
    reloads: u32,
    /// Where it listens.
    pub addr: SocketAddr,
}

impl Reloadable {
    /// Starts the first process.
    pub fn start(listen: SocketAddr, backend: SocketAddr) -> anyhow::Result<Self> {
        let work = WorkDir::new("haproxy-reload")?;
        let stats = work.join("stats.sock");
        let current = start(
            &work,
            "haproxy-0",
            &http_config(listen, backend, &stats),
            listen,
        )?;
        wait_for_pid(&stats, current.pid())?;
        Ok(Self {
            current,
            retired: Vec::new(),
            config: work.join("haproxy-0.cfg"),
            stats,
            work,
            reloads: 0,
            addr: listen,
        })
    }

    /// `haproxy -f cfg -x stats.sock -sf <old pid>`, then waits until the new process answers
    /// on the stats socket (it has the listeners and the old one was told to stop).
    pub fn reload(&mut self) -> anyhow::Result<()> {
        self.reloads += 1;
        let name = format!("haproxy-{}", self.reloads);
        let argv = [
            "haproxy".into(),
            "-db".into(),
            "-f".into(),
            self.config.display().to_string(),
            "-x".into(),
            self.stats.display().to_string(),
            "-sf".into(),
            self.current.pid().to_string(),
        ];
        let next = Pinned::spawn(&name, SERVER_CORE, &argv, &[], self.work.path())?;
        wait_for_pid(&self.stats, next.pid())
            .with_context(|| format!("reload {}:\n{}", self.reloads, next.log()))?;
        let old = std::mem::replace(&mut self.current, next);
        self.retired.push(old);
        self.retired.retain_mut(|p| !p.has_exited());
        Ok(())
    }

    /// Reloads done so far.
    pub fn reloads(&self) -> u32 {
        self.reloads
    }
}

/// Waits until the process answering on the stats socket is `pid`.
fn wait_for_pid(stats: &Path, pid: u32) -> anyhow::Result<()> {
    eventually(RELOAD_TIMEOUT, || {
        let answer = show_info(stats)?;
        let now = answer
            .lines()
            .find_map(|l| l.strip_prefix("Pid: "))
            .and_then(|p| p.trim().parse::<u32>().ok());
        if now != Some(pid) {
            bail!("the stats socket is answered by pid {now:?}, not {pid}");
        }
        Ok(())
    })
}

fn show_info(stats: &Path) -> anyhow::Result<String> {
    let mut sock =
        UnixStream::connect(stats).with_context(|| format!("connecting to {}", stats.display()))?;
    sock.set_read_timeout(Some(Duration::from_secs(2)))?;
    sock.write_all(b"show info\n")?;
    let mut answer = String::new();
    sock.read_to_string(&mut answer)?;
    Ok(answer)
}

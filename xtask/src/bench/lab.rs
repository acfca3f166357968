//! The benchmark's HTTP topology, the same for every contender: the backend (nginx `return 200`)
//! runs in a network namespace joined to the root namespace by a veth pair,
//! so proxy-to-backend traffic crosses the interface flowproxy's counting programs attach to.
//! Clients and proxies run in the root namespace on loopback.
//!
//! ```text
//!  core 0: wrk ──lo──> core 1: proxy ──veth──> core 1: [netns] nginx :8080
//!          (direct: straight over the veth)
//! ```
//!
//! Scenario 4 (TCP) runs on a lab of its own (`scenarios::fastpath`).
use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
};

use anyhow::Context as _;
use flowproxy_tests::{Host, Link};

use super::{
    contenders::nginx,
    process::Pinned,
    sys::{SERVER_CORE, WorkDir},
};

/// The backend's HTTP port, inside its namespace.
const HTTP_PORT: u16 = 8080;

/// The backend host and its servers; everything is removed on drop (servers first).
#[derive(Debug)]
pub struct Lab {
    _nginx: Pinned,
    /// The veth pair; `link.root_if` is where flowproxy attaches.
    pub link: Link,
    _host: Host,
    /// Configuration files and logs of this run.
    pub work: WorkDir,
    /// The release flowproxy binary.
    pub flowproxy_bin: PathBuf,
    /// Its `--help`, to pass flags only to a build that has them.
    flowproxy_help: String,
    /// nginx `return 200`, seen from the root namespace.
    pub backend_http: SocketAddr,
}

impl Lab {
    /// Creates the backend host and starts its servers on the server core.
    pub fn start(flowproxy_bin: &Path) -> anyhow::Result<Self> {
        let help = std::process::Command::new(flowproxy_bin)
            .arg("--help")
            .output()
            .with_context(|| format!("running {} --help", flowproxy_bin.display()))?;
        let flowproxy_help = String::from_utf8_lossy(&help.stdout).into_owned();
        let work = WorkDir::new("lab")?;
        let host = Host::new("backend")?;
        let link = host.link_to_root()?;
        let backend_http = SocketAddr::from((link.host_addr, HTTP_PORT));

        let conf = work.join("backend-nginx.conf");
        std::fs::write(&conf, nginx::backend_config(work.path(), HTTP_PORT))?;
        let mut in_ns: Vec<String> = ["ip", "netns", "exec", &host.name]
            .map(str::to_owned)
            .into();
        in_ns.extend(nginx::argv(work.path(), &conf));
        let mut nginx = Pinned::spawn("backend-nginx", SERVER_CORE, &in_ns, &[], work.path())?;
        nginx
            .wait_for_port(backend_http)
            .context("starting the nginx backend")?;

        Ok(Self {
            _nginx: nginx,
            link,
            _host: host,
            work,
            flowproxy_bin: flowproxy_bin.to_owned(),
            flowproxy_help,
            backend_http,
        })
    }
}

impl Lab {
    /// True when the flowproxy build has `flag` (flags are added as flowproxy grows).
    pub fn flowproxy_flag(&self, flag: &str) -> bool {
        self.flowproxy_help
            .split_whitespace()
            .any(|word| word.trim_end_matches(',') == flag)
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        // flowproxy unpins on SIGTERM; this covers one that was killed.
        let _ = std::fs::remove_dir_all(self.link.pin_dir());
    }
}

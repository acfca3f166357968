//! Wires the parts of a running proxy together and stops them in order on a signal.
use std::{net::SocketAddr, path::PathBuf, sync::Arc, time::Duration};

use anyhow::Context as _;
use tokio::{
    net::TcpListener,
    signal::unix::{SignalKind, signal},
    sync::watch,
};

use crate::{
    api,
    cli::RunArgs,
    control::ControlPlane,
    dataplane::{DataPlane, DataPlaneConfig},
    l7::{self, Proxy},
    state::StateFile,
    upstream::{ReplicaResolver, new_client},
};

/// Runs the proxy until SIGINT or SIGTERM, then stops accepting, drains open connections,
/// detaches the data plane and (unless `--keep-pins`) removes its pins.
pub async fn run(args: RunArgs, pin_dir: PathBuf) -> anyhow::Result<()> {
    let state = StateFile::open(&args.state_dir)?;
    let routes = state.load()?;
    tracing::info!(services = routes.services().len(), file = %state.path().display(), "configuration restored");
    let resolver = ReplicaResolver::new(args.dns_server)?;
    let control = Arc::new(ControlPlane::new(routes, state, resolver));

    let http = bind(args.http_addr, "--http-addr").await?;
    let api = bind(args.api_addr, "--api-addr").await?;
    let (http_addr, api_addr) = (http.local_addr()?, api.local_addr()?);
    let data_plane = start_data_plane(&args, pin_dir)?;

    let (stop, stopped) = watch::channel(false);
    let proxy = Arc::new(Proxy::new(Arc::clone(&control), new_client()));
    let proxy_handler = Arc::new(move |req, peer| {
        let proxy = Arc::clone(&proxy);
        async move { proxy.handle(req, peer).await }
    });
    let api_control = Arc::clone(&control);
    let api_handler = Arc::new(move |req, _peer| api::handle(Arc::clone(&api_control), req));
    let servers = tokio::spawn({
        let stopped = stopped.clone();
        async move {
            tokio::join!(
                l7::serve(http, proxy_handler, stopped.clone()),
                l7::serve(api, api_handler, stopped),
            )
        }
    });
    let refresher = tokio::spawn({
        let control = Arc::clone(&control);
        let every = Duration::from_secs(args.dns_refresh);
        async move { control.refresh_periodically(every).await }
    });
    tokio::spawn({
        let control = Arc::clone(&control);
        async move { control.refresh_all().await }
    });
    tracing::info!(%http_addr, %api_addr, "flowproxy ready");

    wait_for_shutdown_signal().await?;
    let _ = stop.send(true);
    refresher.abort();
    servers.await.context("the listeners' task failed")?;
    if let Some(data_plane) = data_plane {
        data_plane
            .shutdown(args.keep_pins)
            .context("stopping the data plane")?;
    }
    tracing::info!("flowproxy stopped");
    Ok(())
}

async fn bind(addr: SocketAddr, flag: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} ({flag}): is another process using it?"))
}

fn start_data_plane(args: &RunArgs, pin_dir: PathBuf) -> anyhow::Result<Option<DataPlane>> {
    if args.no_ebpf {
        tracing::warn!("--no-ebpf: running without the eBPF data plane");
        return Ok(None);
    }
    if args.interfaces.is_empty() {
        tracing::info!("no --interface given: nothing to attach the data plane to");
        return Ok(None);
    }
    let config = DataPlaneConfig {
        interfaces: args.interfaces.clone(),
        pin_dir,
    };
    let data_plane = DataPlane::start(&config)?;
    tracing::info!(pins = %data_plane.pin_dir().display(), "data plane running");
    Ok(Some(data_plane))
}

async fn wait_for_shutdown_signal() -> anyhow::Result<()> {
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received"),
        _ = int.recv() => tracing::info!("SIGINT received"),
    }
    Ok(())
}

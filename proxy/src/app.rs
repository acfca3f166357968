//! Wires the parts of a running proxy together and stops them in order on a signal.
use std::path::PathBuf;

use anyhow::Context as _;
use tokio::signal::unix::{SignalKind, signal};

use crate::{
    cli::RunArgs,
    dataplane::{DataPlane, DataPlaneConfig},
};

/// Runs the proxy until SIGINT or SIGTERM, then detaches the data plane and (unless
/// `--keep-pins`) removes its pins.
pub async fn run(args: RunArgs, pin_dir: PathBuf) -> anyhow::Result<()> {
    let data_plane = start_data_plane(&args, pin_dir)?;
    tracing::info!("flowproxy ready");
    wait_for_shutdown_signal().await?;
    if let Some(data_plane) = data_plane {
        data_plane
            .shutdown(args.keep_pins)
            .context("stopping the data plane")?;
    }
    tracing::info!("flowproxy stopped");
    Ok(())
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

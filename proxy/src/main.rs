//! The `flowproxy` binary: parses flags, sets up logging and hands over to the proxy or a command.
mod api;
mod app;
mod changes;
mod cli;
mod cluster;
mod control;
mod dataplane;
mod l4;
mod l7;
mod metrics;
mod routes;
mod state;
mod stats_cmd;
mod tls;
mod upstream;

use std::io::IsTerminal as _;

use clap::Parser;

use cli::{Cli, Command, LogFormat};

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_tracing(cli.log_format);
    match cli.command {
        Some(Command::Stats(args)) => stats_cmd::run(&cli.bpffs_dir, &args),
        None => runtime()?.block_on(app::run(cli.run, cli.bpffs_dir)),
    }
}

/// One worker per CPU this process may run on (its affinity mask, as `taskset` or a container
/// sets it). With a single CPU the whole proxy runs on one thread (tokio's current-thread
/// scheduler): a multi-thread runtime with one worker still pays for cross-thread wake-ups and
/// work stealing on every request. `TOKIO_WORKER_THREADS` forces the multi-thread runtime.
fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let mut builder = if cpus == 1 && std::env::var_os("TOKIO_WORKER_THREADS").is_none() {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    };
    builder.enable_all().build()
}

fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

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
        None => {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            runtime.block_on(app::run(cli.run, cli.bpffs_dir))
        }
    }
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

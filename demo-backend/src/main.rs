//! `flowproxy-demo`: the article's `go-demo` service, the backend that flowproxy's tests and demo
//! put behind the proxy. HTTP/1.1 and h2c (prior knowledge) on one port, WebSocket echo, one log
//! line per request on stdout.
mod handlers;
mod ws;

use std::{net::SocketAddr, sync::Arc, time::Duration};

use anyhow::Context as _;
use clap::Parser;
use hyper::service::service_fn;
use hyper_util::{
    rt::{TokioExecutor, TokioIo},
    server::{conn::auto, graceful::GracefulShutdown},
};
use tokio::{
    net::TcpListener,
    signal::unix::{SignalKind, signal},
};

use handlers::Replica;

/// How long requests in flight may take to finish once SIGTERM or SIGINT arrives.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// The demo backend: `/demo/hello`, `/demo/who`, `/demo/headers`, `/demo/slow?ms=N`,
/// `/demo/drip?ms=N`, `/demo/echo` and a WebSocket echo on `/demo/ws`.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// Address to listen on.
    #[arg(long, env = "LISTEN", default_value = "0.0.0.0:8080")]
    listen: SocketAddr,
    /// Replica name for `/demo/who` and the log [default: the hostname, or "go-demo"].
    #[arg(long, env = "NAME")]
    name: Option<String>,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let replica = Arc::new(Replica {
        name: cli.name.unwrap_or_else(default_name),
    });
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(serve(cli.listen, replica))
}

/// The hostname, as a container's replica is named in Swarm, or `go-demo` without one.
fn default_name() -> String {
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "go-demo".to_owned())
}

/// Accepts connections until SIGTERM or SIGINT, one task each, then drains them for a while.
async fn serve(listen: SocketAddr, replica: Arc<Replica>) -> anyhow::Result<()> {
    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("listening on {listen}"))?;
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    let builder = auto::Builder::new(TokioExecutor::new());
    let graceful = GracefulShutdown::new();
    eprintln!("{} listening on {listen}", replica.name);
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: keep serving the connections we have.
                    eprintln!("accept failed: {e}");
                    continue;
                }
            },
            _ = terminate.recv() => break,
            _ = interrupt.recv() => break,
        };
        let replica = replica.clone();
        let service = service_fn(move |req| handlers::handle(replica.clone(), req));
        let conn = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), service)
            .into_owned();
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            // A client that goes away mid-request is its own business, not the demo's.
            let _ = conn.await;
        });
    }
    drop(listener);
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
        .await
        .is_err()
    {
        eprintln!("gave up waiting for requests in flight after {DRAIN_TIMEOUT:?}");
    }
    Ok(())
}

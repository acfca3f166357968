//! Upgraded connections (WebSocket): once the replica answers 101, bytes are relayed both ways
//! until either side closes or nothing moves for `timeoutTunnel`.
use std::time::Duration;

use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;

use crate::io_relay::copy_bidirectional_idle;

/// Each direction's buffer: WebSocket messages are small, and an idle tunnel should hold
/// little (tokio's default).
const BUFFER: usize = 8 * 1024;

/// Relays between the client's and the replica's upgraded connections in a task of its own.
pub fn spawn(client: OnUpgrade, upstream: OnUpgrade, limit: Duration, service: String) {
    tokio::spawn(async move {
        let (client, upstream) = match tokio::try_join!(client, upstream) {
            Ok(pair) => pair,
            Err(e) => {
                tracing::debug!(%service, error = %e, "upgrade failed");
                return;
            }
        };
        let (client, upstream) = (TokioIo::new(client), TokioIo::new(upstream));
        match copy_bidirectional_idle(client, upstream, limit, BUFFER).await {
            Ok((up, down)) => tracing::debug!(%service, up, down, "tunnel closed"),
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                tracing::info!(%service, ?limit, "idle tunnel closed by timeoutTunnel");
            }
            Err(e) => tracing::debug!(%service, error = %e, "tunnel ended with an error"),
        }
    });
}

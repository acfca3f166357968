//! Upgraded connections (WebSocket): once the replica answers 101, bytes are relayed both ways
//! until either side closes or `timeoutTunnel` passes.
use std::time::Duration;

use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;

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
        let (mut client, mut upstream) = (TokioIo::new(client), TokioIo::new(upstream));
        match tokio::time::timeout(
            limit,
            tokio::io::copy_bidirectional(&mut client, &mut upstream),
        )
        .await
        {
            Ok(Ok((up, down))) => tracing::debug!(%service, up, down, "tunnel closed"),
            Ok(Err(e)) => tracing::debug!(%service, error = %e, "tunnel ended with an error"),
            Err(_) => tracing::info!(%service, ?limit, "tunnel closed by timeoutTunnel"),
        }
    });
}

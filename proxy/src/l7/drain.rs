//! Graceful shutdown of served connections: once shutdown starts, each connection finishes
//! the requests it has and closes (HTTP/1 in `park.rs`'s loop, HTTP/2 in the server; hyper-
//! util's `GracefulShutdown` does not take HTTP/1 with upgrades). The server waits for every
//! connection's slot to come back.
use tokio::sync::watch;

/// Returns once shutdown has started (never, if the sender is gone without starting it).
pub(super) async fn stopping(shutdown: &mut watch::Receiver<bool>) {
    while !*shutdown.borrow_and_update() {
        if shutdown.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

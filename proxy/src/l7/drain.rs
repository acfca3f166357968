//! Graceful shutdown of served connections: once shutdown starts, each hyper connection
//! finishes the requests it has and closes (hyper-util's `GracefulShutdown` watches only the
//! connection types it knows, and not HTTP/1 with upgrades). HTTP/2 drains here, HTTP/1 in
//! `park.rs`'s loop; the server waits for every connection's slot to come back.
use std::{future::Future, pin::Pin};

use hyper::{body::Incoming, server::conn::http2, service::HttpService};
use tokio::sync::watch;

/// A hyper connection that can be asked to finish the requests it has and close.
pub(super) trait Drain: Future {
    /// Starts hyper's graceful shutdown of the connection.
    fn drain(self: Pin<&mut Self>);
}

/// What hyper asks of a connection's I/O, service and body.
type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl<I, S, B, E> Drain for http2::Connection<I, S, E>
where
    S: HttpService<Incoming, ResBody = B>,
    S::Error: Into<BoxError>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin,
    B: hyper::body::Body + 'static,
    B::Error: Into<BoxError>,
    E: hyper::rt::bounds::Http2ServerConnExec<S::Future, B>,
{
    fn drain(self: Pin<&mut Self>) {
        self.graceful_shutdown();
    }
}

/// Runs a hyper connection to its end; once shutdown starts, it finishes the requests it has
/// and closes. A macro, not an async fn: a generic async fn here trips rustc's proof that the
/// connection task is `Send` ("higher-ranked lifetime error").
macro_rules! until_drained {
    ($conn:expr, $shutdown:expr) => {{
        let mut conn = std::pin::pin!($conn);
        tokio::select! {
            ended = conn.as_mut() => ended,
            _ = $crate::l7::drain::stopping(&mut $shutdown) => {
                $crate::l7::drain::Drain::drain(conn.as_mut());
                conn.await
            }
        }
    }};
}

/// Returns once shutdown has started (never, if the sender is gone without starting it).
pub(super) async fn stopping(shutdown: &mut watch::Receiver<bool>) {
    while !*shutdown.borrow_and_update() {
        if shutdown.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

pub(super) use until_drained;

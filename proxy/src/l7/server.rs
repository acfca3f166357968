//! Accepting connections and serving them with hyper (HTTP/1.1 and HTTP/2 on the same port,
//! upgrades allowed), one task per connection, optionally behind TLS, with graceful shutdown:
//! on shutdown no new connection is accepted and open ones finish their requests.
use std::{future::Future, sync::Arc, time::Duration};

use hyper::{Request, Response, body::Incoming};
use prometheus_client::metrics::{counter::Counter, gauge::Gauge};
use tokio::{
    net::{TcpListener, TcpStream},
    sync::watch,
};
use tokio_rustls::{TlsAcceptor, server::TlsStream};

use super::{
    conn::{Conn, ConnTask, Shared},
    drain,
    park::ParkingLot,
    service::{self, Peer},
    settings::{Builders, ConnSettings},
};
use crate::{
    http_body::Body,
    metrics::{ClientErrorReason, ClientErrors},
};

/// How long open connections get to finish after shutdown starts: below Docker's default
/// 10 s stop grace period, so the data plane is still torn down before a SIGKILL.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(8);

/// TLS for a listener: the acceptor and the handshake counters (`ok`, `error`).
#[derive(Clone)]
pub struct TlsListener {
    /// Performs handshakes with the current certificates.
    pub acceptor: TlsAcceptor,
    /// Completed handshakes.
    pub ok: Counter,
    /// Failed or timed-out handshakes.
    pub failed: Counter,
}

/// What a listener serves and how.
pub struct Listener<H> {
    /// The bound socket.
    pub socket: TcpListener,
    /// The request handler.
    pub handler: Arc<H>,
    /// Tracks open connections, when given.
    pub open: Option<Gauge>,
    /// Tracks parked idle connections (`park.rs`), when given.
    pub parked: Option<Gauge>,
    /// Terminates TLS first, when given.
    pub tls: Option<TlsListener>,
    /// At most this many connections at once; further clients wait in the kernel's backlog
    /// (HAProxy's `maxconn`), so a flood cannot exhaust file descriptors.
    pub max_connections: usize,
    /// Timeouts and buffer limits per connection.
    pub settings: ConnSettings,
    /// Where refused clients are counted.
    pub client_errors: ClientErrors,
}

/// Serves `listener` until `shutdown` turns true, then drains.
pub async fn serve<H, F>(listener: Listener<H>, mut shutdown: watch::Receiver<bool>)
where
    H: Fn(Request<Incoming>, Arc<Peer>) -> F + Send + Sync + 'static,
    F: Future<Output = Response<Body>> + Send + 'static,
{
    let lot = ParkingLot::new(listener.parked.clone());
    tokio::spawn(Arc::clone(&lot).sweep(shutdown.clone()));
    // What every connection of the listener shares, behind one pointer: each connection's
    // task keeps its state for as long as it lives, parked or not.
    let shared = Arc::new(Shared {
        builders: Builders::new(&listener.settings),
        handler: service::boxed(Arc::clone(&listener.handler)),
        open: listener.open.clone(),
        lot,
        settings: listener.settings,
        client_errors: listener.client_errors.clone(),
    });
    let slots = Arc::new(tokio::sync::Semaphore::new(listener.max_connections));
    loop {
        let slot = tokio::select! {
            slot = Arc::clone(&slots).acquire_owned() => slot.expect("the semaphore is never closed"),
            _ = shutdown.changed() => break,
        };
        tokio::select! {
            accepted = listener.socket.accept() => {
                let (stream, peer) = match accepted {
                    Ok(conn) => conn,
                    Err(e) => {
                        // Running out of descriptors must not end the listener.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let conn = Conn {
                    shared: Arc::clone(&shared),
                    shutdown: shutdown.clone(),
                    peer,
                };
                // Two tasks of their own types: a plain connection's task does not carry the
                // space of a TLS handshake and stream. Each is a small state machine that
                // parks the connection while it idles (`conn.rs`).
                match listener.tls.clone() {
                    None => {
                        tokio::spawn(ConnTask::new(conn, stream, false, slot));
                    }
                    Some(tls) => {
                        tokio::spawn(async move {
                            if let Some(stream) = handshake(&conn, stream, tls).await {
                                ConnTask::new(conn, stream, true, slot).await;
                            }
                        });
                    }
                }
            }
            _ = shutdown.changed() => break,
        }
    }
    drop(listener.socket);
    // Every connection holds a slot until it ends: all slots back means all drained.
    let all = u32::try_from(listener.max_connections).unwrap_or(u32::MAX);
    if tokio::time::timeout(DRAIN_TIMEOUT, slots.acquire_many(all))
        .await
        .is_err()
    {
        tracing::warn!("connections still open after {DRAIN_TIMEOUT:?}; closing them");
    }
}

/// Completes `conn`'s TLS handshake: the stream, or `None` when it failed, timed out or
/// shutdown started.
async fn handshake(
    conn: &Conn,
    stream: TcpStream,
    tls: TlsListener,
) -> Option<TlsStream<TcpStream>> {
    let peer = conn.peer;
    let limit = conn.shared.settings.first_byte_timeout;
    let handshake = tokio::time::timeout(limit, tls.acceptor.accept(stream));
    // A handshake in progress does not hold up shutdown (the drain waits for every slot).
    let mut stop = conn.shutdown.clone();
    let handshake = tokio::select! {
        done = handshake => done,
        _ = drain::stopping(&mut stop) => return None,
    };
    match handshake {
        Ok(Ok(stream)) => {
            tls.ok.inc();
            Some(stream)
        }
        Ok(Err(e)) => {
            tls.failed.inc();
            tracing::debug!(error = %e, %peer, "TLS handshake failed");
            None
        }
        Err(_) => {
            tls.failed.inc();
            conn.shared
                .client_errors
                .count(ClientErrorReason::TimeoutHandshake);
            tracing::debug!(%peer, ?limit, "TLS handshake timed out");
            None
        }
    }
}

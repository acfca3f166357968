//! Accepting connections and serving them with hyper (HTTP/1.1 and HTTP/2 on the same port,
//! upgrades allowed), one task per connection, optionally behind TLS, with graceful shutdown:
//! on shutdown no new connection is accepted and open ones finish their requests.
use std::{future::Future, io, net::SocketAddr, sync::Arc, time::Duration};

use hyper::{
    Request, Response,
    body::Incoming,
    server::conn::{http1, http2},
};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use prometheus_client::metrics::{counter::Counter, gauge::Gauge};
use tokio::{
    net::{TcpListener, TcpStream},
    sync::watch,
};
use tokio_rustls::TlsAcceptor;

use super::{
    client_io::{Activity, ClientIo},
    drain,
    park::{self, ClientStream, ParkingLot},
    protocol::{self, Protocol},
    service::{self, ConnService, Handler, Peer},
};
use crate::{
    http_body::Body,
    metrics::{ClientErrorReason, ClientErrors},
};

/// How long open connections get to finish after shutdown starts: below Docker's default
/// 10 s stop grace period, so the data plane is still torn down before a SIGKILL.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(8);
/// HTTP/2 pings: a peer that stops answering is dropped.
const H2_KEEP_ALIVE: Duration = Duration::from_secs(20);

/// How long a client may take at each step before it is cut off, and how much hyper may buffer
/// (defaults: the flags in `cli.rs`).
#[derive(Debug, Clone, Copy)]
pub struct ConnSettings {
    /// From accept (or the end of the TLS handshake) to knowing the protocol, and for the TLS
    /// handshake itself (`--client-first-byte-timeout`).
    pub first_byte_timeout: Duration,
    /// The longest an idle keep-alive connection waits for its next request, and a head
    /// must be complete within it too (hyper's one timer: `--timeout-http-keep-alive`, else
    /// `--client-head-timeout`).
    pub idle_timeout: Duration,
    /// A shorter limit on each HTTP/1 head from its first byte (`--timeout-http-request`),
    /// when it is set below `idle_timeout`.
    pub head_timeout: Option<Duration>,
    /// The most hyper buffers for a head (HTTP/1.1 `max_buf_size`, HTTP/2
    /// `max_header_list_size`); our own, lower limits are checked per request.
    pub parser_ceiling: usize,
}

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
                // space of a TLS handshake and stream (~7 KiB per idle connection).
                match listener.tls.clone() {
                    None => {
                        tokio::spawn(async move {
                            let _slot = slot;
                            conn.serve(stream, false).await;
                        });
                    }
                    Some(tls) => {
                        tokio::spawn(async move {
                            let _slot = slot;
                            serve_tls(conn, stream, tls).await;
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

/// Completes the TLS handshake, then serves the connection.
async fn serve_tls(conn: Conn, stream: TcpStream, tls: TlsListener) {
    let peer = conn.peer;
    let limit = conn.shared.settings.first_byte_timeout;
    let handshake = tokio::time::timeout(limit, tls.acceptor.accept(stream));
    // A handshake in progress does not hold up shutdown (the drain waits for every slot).
    let mut stop = conn.shutdown.clone();
    let handshake = tokio::select! {
        done = handshake => done,
        _ = drain::stopping(&mut stop) => return,
    };
    match handshake {
        Ok(Ok(stream)) => {
            tls.ok.inc();
            conn.serve(stream, true).await;
        }
        Ok(Err(e)) => {
            tls.failed.inc();
            tracing::debug!(error = %e, %peer, "TLS handshake failed");
        }
        Err(_) => {
            tls.failed.inc();
            conn.shared
                .client_errors
                .count(ClientErrorReason::TimeoutHandshake);
            tracing::debug!(%peer, ?limit, "TLS handshake timed out");
        }
    }
}

/// hyper's server settings, one builder per protocol. Without a timer hyper enforces no
/// timeout at all, so an idle or slow client could hold a connection forever.
struct Builders {
    http1: http1::Builder,
    http2: http2::Builder<TokioExecutor>,
}

impl Builders {
    fn new(settings: &ConnSettings) -> Self {
        let mut http1 = http1::Builder::new();
        http1
            .timer(TokioTimer::new())
            .header_read_timeout(settings.idle_timeout)
            .max_buf_size(settings.parser_ceiling.max(8192));
        let mut http2 = http2::Builder::new(TokioExecutor::new());
        http2
            .timer(TokioTimer::new())
            .keep_alive_interval(H2_KEEP_ALIVE)
            .keep_alive_timeout(H2_KEEP_ALIVE)
            .max_header_list_size(u32::try_from(settings.parser_ceiling).unwrap_or(u32::MAX));
        Self { http1, http2 }
    }
}

/// Why a connection hyper gave up on counts as a client error, if it does: `error` is what
/// the connection ended with.
fn refusal(
    error: Option<&(dyn std::error::Error + 'static)>,
    activity: &Activity,
) -> Option<ClientErrorReason> {
    if activity.timed_out() {
        return Some(ClientErrorReason::TimeoutFirstByte);
    }
    if activity.head_timed_out() {
        return Some(ClientErrorReason::TimeoutHead);
    }
    let hyper_error = error?.downcast_ref::<hyper::Error>()?;
    if hyper_error.is_parse_too_large() {
        Some(ClientErrorReason::HeaderTooLarge)
    } else if hyper_error.is_parse() {
        Some(ClientErrorReason::BadFraming)
    } else if hyper_error.is_timeout() && activity.mid_request() {
        // Not an idle keep-alive connection: a head was started and not finished.
        Some(ClientErrorReason::TimeoutHead)
    } else {
        None
    }
}

/// How a connection ended badly: before its protocol was known, or in hyper.
#[derive(Debug, thiserror::Error)]
enum Ended {
    #[error("before the first request: {0}")]
    Io(io::Error),
    #[error(transparent)]
    Http(hyper::Error),
}

impl Ended {
    fn source(&self) -> &(dyn std::error::Error + 'static) {
        match self {
            Self::Io(e) => e,
            Self::Http(e) => e,
        }
    }
}

/// What all connections of a listener share.
struct Shared {
    builders: Builders,
    handler: Handler,
    open: Option<Gauge>,
    /// Where idle HTTP/1 connections wait (`park.rs`).
    lot: Arc<ParkingLot>,
    settings: ConnSettings,
    client_errors: ClientErrors,
}

/// One accepted connection, before its protocol is known.
struct Conn {
    shared: Arc<Shared>,
    /// Ends the wait for a silent client's first bytes when shutdown starts.
    shutdown: watch::Receiver<bool>,
    peer: SocketAddr,
}

impl Conn {
    async fn serve<S: ClientStream>(self, stream: S, tls: bool) {
        let Self {
            shared,
            mut shutdown,
            peer,
        } = self;
        let settings = &shared.settings;
        let (mut stream, activity) =
            ClientIo::new(stream, settings.first_byte_timeout, settings.head_timeout);
        let service = ConnService::new(
            Arc::clone(&shared.handler),
            Arc::new(Peer::new(peer, tls)),
            Arc::clone(&activity),
        );
        if let Some(gauge) = &shared.open {
            gauge.inc();
        }
        let detected = tokio::select! {
            detected = protocol::detect(&mut stream) => detected,
            _ = drain::stopping(&mut shutdown) => Err(io::ErrorKind::Interrupted.into()),
        };
        let detected = detected.map(|(protocol, read)| {
            stream.put_back(read);
            stream.protocol_known(protocol);
            protocol
        });
        let ended = match detected {
            Ok(Protocol::Http1) => {
                let http1 = park::Http1 {
                    builder: &shared.builders.http1,
                    activity: &activity,
                    idle_timeout: settings.idle_timeout,
                    lot: &shared.lot,
                };
                park::serve_http1(http1, stream, service, &shutdown)
                    .await
                    .map_err(Ended::Http)
            }
            Ok(Protocol::Http2) => {
                // Boxed: HTTP/1 connections' tasks do not carry HTTP/2's larger state.
                let mut conn = Box::pin(
                    shared
                        .builders
                        .http2
                        .serve_connection(TokioIo::new(stream), service),
                );
                // Once shutdown starts, hyper finishes the streams it has and closes.
                let ended = tokio::select! {
                    ended = conn.as_mut() => ended,
                    _ = drain::stopping(&mut shutdown) => {
                        conn.as_mut().graceful_shutdown();
                        conn.await
                    }
                };
                ended.map_err(Ended::Http)
            }
            Err(e) => Err(Ended::Io(e)),
        };
        let error = ended.as_ref().err().map(Ended::source);
        if let Some(reason) = refusal(error, &activity) {
            shared.client_errors.count(reason);
        }
        if let Err(e) = ended {
            tracing::debug!(error = %e, %peer, "connection ended with an error");
        }
        if let Some(gauge) = &shared.open {
            gauge.dec();
        }
    }
}

//! Accepting connections and serving them with hyper (HTTP/1.1 and HTTP/2 on the same port,
//! upgrades allowed), one task per connection, optionally behind TLS, with graceful shutdown:
//! on shutdown no new connection is accepted and open ones finish their requests.
use std::{convert::Infallible, future::Future, net::SocketAddr, sync::Arc, time::Duration};

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use hyper::{Request, Response, body::Incoming, header::HeaderValue, service::service_fn};
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::{conn::auto, graceful::GracefulShutdown},
};
use prometheus_client::metrics::{counter::Counter, gauge::Gauge};
use tokio::{
    io::{AsyncRead, AsyncWrite},
    net::{TcpListener, TcpStream},
    sync::watch,
};
use tokio_rustls::TlsAcceptor;

/// Response body type of every handler.
pub type Body = BoxBody<Bytes, hyper::Error>;

/// How long open connections get to finish after shutdown starts: below Docker's default
/// 10 s stop grace period, so the data plane is still torn down before a SIGKILL.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(8);
/// How long a client may take to send a request's headers, including an idle keep-alive
/// connection waiting for its next request (DFP's `TIMEOUT_HTTP_KEEP_ALIVE` is 15 s).
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(15);
/// HTTP/2 pings: a peer that stops answering is dropped.
const H2_KEEP_ALIVE: Duration = Duration::from_secs(20);
/// How long a client may take to complete a TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The client end of a connection, worked out once per connection and shared by its requests.
#[derive(Debug)]
pub struct Peer {
    /// The client's address.
    pub addr: SocketAddr,
    /// Whether the connection is TLS.
    pub tls: bool,
    /// The client's IP as a header value, for X-Forwarded-For (formatting an address on
    /// every request showed up in the benchmark's profile).
    pub ip: HeaderValue,
}

impl Peer {
    fn new(addr: SocketAddr, tls: bool) -> Self {
        let ip = HeaderValue::from_str(&addr.ip().to_string())
            .expect("an IP address is a valid header value");
        Self { addr, tls, ip }
    }
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
    /// Terminates TLS first, when given.
    pub tls: Option<TlsListener>,
    /// At most this many connections at once; further clients wait in the kernel's backlog
    /// (HAProxy's `maxconn`), so a flood cannot exhaust file descriptors.
    pub max_connections: usize,
}

/// Serves `listener` until `shutdown` turns true, then drains.
pub async fn serve<H, F>(listener: Listener<H>, mut shutdown: watch::Receiver<bool>)
where
    H: Fn(Request<Incoming>, Arc<Peer>) -> F + Send + Sync + 'static,
    F: Future<Output = Response<Body>> + Send + 'static,
{
    let builder = Arc::new(server_builder());
    let graceful = GracefulShutdown::new();
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
                    builder: Arc::clone(&builder),
                    handler: Arc::clone(&listener.handler),
                    watcher: graceful.watcher(),
                    peer,
                    open: listener.open.clone(),
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
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("connections still open after {DRAIN_TIMEOUT:?}; closing them");
    }
}

/// Completes the TLS handshake, then serves the connection.
async fn serve_tls<H, F>(conn: Conn<H>, stream: TcpStream, tls: TlsListener)
where
    H: Fn(Request<Incoming>, Arc<Peer>) -> F + Send + Sync + 'static,
    F: Future<Output = Response<Body>> + Send + 'static,
{
    let peer = conn.peer;
    let handshake = tokio::time::timeout(HANDSHAKE_TIMEOUT, tls.acceptor.accept(stream));
    match handshake.await {
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
            tracing::debug!(%peer, "TLS handshake timed out");
        }
    }
}

/// hyper's server settings. Without a timer hyper enforces no timeout at all, so an idle or
/// slow client could hold a connection forever.
fn server_builder() -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(H2_KEEP_ALIVE)
        .keep_alive_timeout(H2_KEEP_ALIVE);
    builder
}

/// One accepted connection, before its protocol is known.
struct Conn<H> {
    builder: Arc<auto::Builder<TokioExecutor>>,
    handler: Arc<H>,
    watcher: hyper_util::server::graceful::Watcher,
    peer: SocketAddr,
    open: Option<Gauge>,
}

impl<H, F> Conn<H>
where
    H: Fn(Request<Incoming>, Arc<Peer>) -> F + Send + Sync + 'static,
    F: Future<Output = Response<Body>> + Send + 'static,
{
    async fn serve<S>(self, stream: S, tls: bool)
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let Self {
            builder,
            handler,
            watcher,
            peer,
            open,
        } = self;
        let client = Arc::new(Peer::new(peer, tls));
        let service = service_fn(move |req: Request<Incoming>| {
            let response = handler(req, Arc::clone(&client));
            async move { Ok::<_, Infallible>(response.await) }
        });
        if let Some(gauge) = &open {
            gauge.inc();
        }
        let conn = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), service)
            .into_owned();
        if let Err(e) = watcher.watch(conn).await {
            tracing::debug!(error = %e, %peer, "connection ended with an error");
        }
        if let Some(gauge) = open {
            gauge.dec();
        }
    }
}

//! Serving an HTTP/1 connection, and parking it while it idles (issue 16, step 3).
//!
//! hyper keeps an 8 KiB read buffer and an 8 KiB write buffer per connection for as long as it
//! serves it. A keep-alive connection with no request in flight and nothing read or written
//! for `PARK_AFTER` is taken back from hyper: a graceful shutdown that leaves the stream open
//! (`Activity::set_parking`), then `into_parts`. It then waits for readability with no buffer
//! at all, and its next bytes go to a fresh hyper connection, with whatever hyper had read
//! but not parsed put back in front. "No request in flight" is the service's count of
//! requests whose responses are not done (`service::InFlight`): a response can still be
//! streaming long after its head was written, and a pipelined request can be with its handler
//! while the connection shows no I/O. A parked connection still ends at the keep-alive
//! timeout, and at shutdown.
use std::{future::Future as _, task::Poll, time::Duration};

use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use prometheus_client::metrics::gauge::Gauge;
use tokio::{
    io::{AsyncRead, AsyncWrite},
    net::TcpStream,
    sync::watch,
    time::Instant,
};

use super::{
    client_io::{Activity, ClientIo},
    drain,
    service::ConnService,
};

/// How long a connection must idle before it is parked: long enough that a client sending
/// request after request never is.
pub const PARK_AFTER: Duration = Duration::from_millis(250);

/// A client stream as accepted: plain TCP can be parked; TLS keeps rustls's state and
/// buffers anyway (and may hold decrypted bytes the socket's readiness does not show), so
/// it stays with hyper.
pub trait ClientStream: AsyncRead + AsyncWrite + Unpin + Send + 'static {
    /// The socket to wait on while parked, when the stream can be parked.
    fn parkable(&self) -> Option<&TcpStream>;
}

impl ClientStream for TcpStream {
    fn parkable(&self) -> Option<&TcpStream> {
        Some(self)
    }
}

impl ClientStream for tokio_rustls::server::TlsStream<TcpStream> {
    fn parkable(&self) -> Option<&TcpStream> {
        None
    }
}

/// Where an HTTP/1 connection's serving starts and what it may do.
pub struct Http1<'a> {
    /// hyper's HTTP/1 settings.
    pub builder: &'a http1::Builder,
    /// The connection's activity, shared with its `ClientIo`.
    pub activity: &'a Activity,
    /// The keep-alive timeout, which a parked connection also keeps.
    pub idle_timeout: Duration,
    /// Counts connections while they are parked.
    pub parked: Option<&'a Gauge>,
}

/// Serves `io` over HTTP/1 (upgrades allowed) until it closes, parking it whenever it idles.
pub async fn serve_http1<S: ClientStream>(
    http1: Http1<'_>,
    mut io: ClientIo<S>,
    mut service: ConnService,
    shutdown: &mut watch::Receiver<bool>,
) -> hyper::Result<()> {
    let Http1 {
        builder,
        activity,
        idle_timeout,
        parked,
    } = http1;
    let parkable = idle_timeout > PARK_AFTER * 2 && io.get_ref().parkable().is_some();
    loop {
        // Boxed: while parked, the task holds no room for hyper's connection either.
        let mut conn = Box::new(
            builder
                .serve_connection(TokioIo::new(io), service)
                .with_upgrades(),
        );
        let mut draining = false;
        // Set once a park was asked for and hyper did not end at once: it had disabled
        // keep-alive by then, so this connection closes after its exchange and is not asked again.
        let mut refused = false;
        // One timer, for parking and for noticing shutdown (within `PARK_AFTER`, well inside
        // the 8 s drain): a second future here would be polled on every wake-up too.
        let mut tick = std::pin::pin!(tokio::time::sleep(PARK_AFTER));
        let mut seen = activity.io_events();
        let ended = loop {
            tokio::select! {
                // The connection first: no random branch order drawn on every wake-up.
                biased;
                ended = &mut *conn => break ended,
                _ = tick.as_mut(), if !draining => {
                    let now = activity.io_events();
                    if *shutdown.borrow() {
                        draining = true;
                        activity.set_parking(false);
                        std::pin::Pin::new(&mut *conn).graceful_shutdown();
                    } else if parkable && !refused && now == seen && idle(activity) {
                        // hyper ends an idle connection at once when asked to (its state is
                        // idle: it closes without writing). If it does not, it was not idle
                        // after all: it finishes what it has and closes for real.
                        activity.set_parking(true);
                        std::pin::Pin::new(&mut *conn).graceful_shutdown();
                        let now = std::future::poll_fn(|cx| {
                            Poll::Ready(std::pin::Pin::new(&mut *conn).poll(cx))
                        });
                        match now.await {
                            Poll::Ready(ended) => break ended,
                            Poll::Pending => {
                                activity.set_parking(false);
                                refused = true;
                                tick.as_mut().reset(Instant::now() + PARK_AFTER);
                            }
                        }
                    } else {
                        seen = now;
                        tick.as_mut().reset(Instant::now() + PARK_AFTER);
                    }
                }
            }
        };
        let parking = activity.parking();
        activity.set_parking(false);
        ended?;
        if !parking || draining {
            return Ok(());
        }
        // `None` once upgraded: the tunnel has the stream now.
        let Some(parts) = conn.into_parts() else {
            return Ok(());
        };
        service = parts.service;
        let mut client = parts.io.into_inner();
        if parts.read_buf.is_empty() {
            let _parked = parked.map(Parked::new);
            let socket = client.get_ref().parkable().expect("only TCP is parked");
            let wait = idle_timeout.saturating_sub(PARK_AFTER);
            let woken = tokio::select! {
                ready = socket.readable() => ready.is_ok(),
                _ = tokio::time::sleep(wait) => false,
                _ = drain::stopping(shutdown) => false,
            };
            if !woken {
                // Dropping the stream closes it, as hyper's keep-alive timeout would.
                return Ok(());
            }
        } else {
            // What hyper had read of the next request goes first, timed and counted as read.
            client.put_back(parts.read_buf);
        }
        io = client;
    }
}

/// No request is being handled or has started arriving, and the connection is not about to
/// be closed by hyper (which may still be reading a request body then).
fn idle(activity: &Activity) -> bool {
    !activity.parking()
        && !activity.mid_request()
        && !activity.requests_in_flight()
        && !activity.closing()
}

/// Counted in the parked-connections gauge while alive.
struct Parked<'a>(&'a Gauge);

impl<'a> Parked<'a> {
    fn new(gauge: &'a Gauge) -> Self {
        gauge.inc();
        Self(gauge)
    }
}

impl Drop for Parked<'_> {
    fn drop(&mut self) {
        self.0.dec();
    }
}

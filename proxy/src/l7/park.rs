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
use std::{future::Future, pin::Pin, task::Poll, time::Duration};

use bytes::Bytes;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::{
    io::{AsyncRead, AsyncWrite},
    net::TcpStream,
    sync::watch,
    time::Instant,
};

use super::{
    client_io::{Activity, ClientIo},
    service::ConnService,
};

mod lot;

pub use lot::ParkingLot;

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
    /// Where the connection waits while parked.
    pub lot: &'a ParkingLot,
}

/// Serves `io` over HTTP/1 (upgrades allowed) until it closes, parking it whenever it idles.
///
/// While served, the connection's state (hyper's connection, its buffers, the park timer) is
/// one boxed future (`serve_until_idle`); while parked, the task holds only the stream, the
/// service and the waits below: the task's size is what every idle connection costs.
pub async fn serve_http1<S: ClientStream>(
    http1: Http1<'_>,
    mut io: ClientIo<S>,
    mut service: ConnService,
    shutdown: &watch::Receiver<bool>,
) -> hyper::Result<()> {
    let parkable = http1.idle_timeout > PARK_AFTER * 2 && io.get_ref().parkable().is_some();
    loop {
        // The stream and service go back into the same locals: a new binding kept across
        // the wait below would be a second copy in this task's state.
        let parked = match serving(&http1, io, service, shutdown, parkable).await? {
            None => return Ok(()),
            Some(idle) => {
                (io, service) = (idle.io, idle.service);
                let parked = idle.read.is_empty();
                // What hyper had read of the next request goes first, timed and counted as read.
                io.put_back(idle.read);
                parked
            }
        };
        if parked && !wait_parked(&http1, io.get_ref()).await {
            // Dropping the stream closes it, as hyper's keep-alive timeout would.
            return Ok(());
        }
    }
}

/// Waits, with no buffer, until a parked connection's client sends again (`true`), or until
/// the keep-alive timeout or shutdown ends it (`false`). The lot keeps the deadline and
/// watches for shutdown, so this task holds no timer and no watch of its own.
async fn wait_parked<S: ClientStream>(http1: &Http1<'_>, stream: &S) -> bool {
    let socket = stream.parkable().expect("only TCP is parked");
    let deadline = Instant::now() + http1.idle_timeout.saturating_sub(PARK_AFTER);
    match http1.lot.park(deadline) {
        Some(ticket) => ticket.wait(socket).await,
        None => false,
    }
}

/// A connection taken back from hyper while idle.
struct Idle<S> {
    io: ClientIo<S>,
    service: ConnService,
    /// What hyper had read but not parsed yet.
    read: Bytes,
}

/// `serve_until_idle`, boxed. Built outside the caller's `async fn`: a future made and moved
/// into a box within an `.await` statement keeps its full size in the caller's state.
fn serving<'a, S: ClientStream>(
    http1: &'a Http1<'a>,
    io: ClientIo<S>,
    service: ConnService,
    shutdown: &'a watch::Receiver<bool>,
    parkable: bool,
) -> Pin<Box<impl Future<Output = hyper::Result<Option<Idle<S>>>> + Send + 'a>> {
    Box::pin(serve_until_idle(http1, io, service, shutdown, parkable))
}

/// Serves `io` with hyper until the connection ends (`None`) or idles and is taken back.
async fn serve_until_idle<S: ClientStream>(
    http1: &Http1<'_>,
    io: ClientIo<S>,
    service: ConnService,
    shutdown: &watch::Receiver<bool>,
    parkable: bool,
) -> hyper::Result<Option<Idle<S>>> {
    let activity = http1.activity;
    let mut conn = http1
        .builder
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades();
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
            ended = &mut conn => break ended,
            _ = tick.as_mut(), if !draining => {
                let now = activity.io_events();
                if *shutdown.borrow() {
                    draining = true;
                    activity.set_parking(false);
                    std::pin::Pin::new(&mut conn).graceful_shutdown();
                } else if parkable && !refused && now == seen && idle(activity) {
                    // hyper ends an idle connection at once when asked to (its state is
                    // idle: it closes without writing). If it does not, it was not idle
                    // after all: it finishes what it has and closes for real.
                    activity.set_parking(true);
                    std::pin::Pin::new(&mut conn).graceful_shutdown();
                    let now = std::future::poll_fn(|cx| {
                        Poll::Ready(std::pin::Pin::new(&mut conn).poll(cx))
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
        return Ok(None);
    }
    // `None` once upgraded: the tunnel has the stream now.
    Ok(conn.into_parts().map(|parts| Idle {
        io: parts.io.into_inner(),
        service: parts.service,
        read: parts.read_buf,
    }))
}

/// No request is being handled or has started arriving, and the connection is not about to
/// be closed by hyper (which may still be reading a request body then).
fn idle(activity: &Activity) -> bool {
    !activity.parking()
        && !activity.mid_request()
        && !activity.requests_in_flight()
        && !activity.closing()
}

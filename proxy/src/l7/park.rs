//! Serving an HTTP/1 connection until it idles, and the parking lot where it then waits
//! (issue 16, step 3).
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

pub use lot::{ParkingLot, Ticket};

/// How long a connection must idle before it is parked: long enough that a client sending
/// request after request never is.
pub const PARK_AFTER: Duration = Duration::from_millis(250);

/// A client stream as accepted, plain TCP or TLS: both park. A parked connection waits on
/// its socket's readiness, so it may park only when its stream holds nothing that readiness
/// would not show.
pub trait ClientStream: AsyncRead + AsyncWrite + Unpin + Send + 'static {
    /// The socket under the stream.
    fn socket(&self) -> &TcpStream;

    /// Whether the stream has nothing buffered to read or to send, so that waiting on the
    /// socket's readiness loses nothing.
    fn at_rest(&self) -> bool;

    /// Says goodbye without waiting, as a parked connection ends (at the keep-alive timeout
    /// or shutdown): nothing for plain TCP, whose close says it all.
    fn close_parked(&mut self) {}
}

impl ClientStream for TcpStream {
    fn socket(&self) -> &TcpStream {
        self
    }

    fn at_rest(&self) -> bool {
        true
    }
}

/// rustls keeps its connection state and a read buffer of about 4 KiB while parked (it gives
/// that buffer back only on its next read); hyper's buffers and the serving state go.
impl ClientStream for tokio_rustls::server::TlsStream<TcpStream> {
    fn socket(&self) -> &TcpStream {
        self.get_ref().0
    }

    fn at_rest(&self) -> bool {
        // `wants_read` is false while decrypted bytes wait to be read (or the client said
        // close_notify): then serving goes on at once.
        let tls = self.get_ref().1;
        tls.wants_read() && !tls.wants_write()
    }

    /// A close_notify, so that the client tells the close from a cut. Best effort: it is
    /// written only if the socket takes it at once, which it does unless the client left
    /// the last response unread in a full send buffer.
    fn close_parked(&mut self) {
        let (socket, tls) = self.get_mut();
        tls.send_close_notify();
        // Each call writes one queued record (a key update's answer may come first).
        while tls.wants_write() {
            match tls.write_tls(&mut WriteNow(socket)) {
                Ok(n) if n > 0 => {}
                _ => break,
            }
        }
    }
}

/// Writes to a socket only what it takes without waiting.
struct WriteNow<'a>(&'a TcpStream);

impl std::io::Write for WriteNow<'_> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.try_write(bytes)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
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
}

/// A connection taken back from hyper while idle.
pub struct Idle<S> {
    /// The client's stream.
    pub io: ClientIo<S>,
    /// The connection's service, for the next hyper connection.
    pub service: ConnService,
    /// What hyper had read but not parsed yet: the start of the next request, if any.
    pub read: Bytes,
}

/// Serves `io` with hyper until the connection ends (`None`) or idles and is taken back to be
/// parked (only when the keep-alive timeout leaves room for a park).
pub async fn serve_until_idle<S: ClientStream>(
    http1: &Http1<'_>,
    io: ClientIo<S>,
    service: ConnService,
    shutdown: &watch::Receiver<bool>,
) -> hyper::Result<Option<Idle<S>>> {
    let activity = http1.activity;
    let parkable = http1.idle_timeout > PARK_AFTER * 2;
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

//! One accepted connection's life: its protocol told by its first bytes, then HTTP/1 (parked
//! whenever it idles, `park.rs`) or HTTP/2, and what its end counts as.
//!
//! A tokio task keeps the room of its future's largest state for its whole life, and idle
//! connections are what thousands of clients cost. So a connection's task (after the
//! handshake, for TLS) is a small state machine (`ConnTask`): while served, all of its
//! serving state is one boxed future; while parked, the task holds only what serving it
//! again needs (`Resting`) and its place in the listener's parking lot.
use std::{
    future::Future,
    io,
    net::SocketAddr,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use hyper_util::rt::TokioIo;
use prometheus_client::metrics::gauge::Gauge;
use tokio::{
    sync::{OwnedSemaphorePermit, watch},
    time::Instant,
};

use super::{
    client_io::{Activity, ClientIo},
    drain,
    park::{self, ClientStream, PARK_AFTER, ParkingLot, Ticket},
    protocol::{self, Protocol},
    service::{ConnService, Handler, Peer},
    settings::{Builders, ConnSettings},
};
use crate::metrics::{ClientErrorReason, ClientErrors};

/// What all connections of a listener share, behind one pointer.
pub(super) struct Shared {
    pub(super) builders: Builders,
    pub(super) handler: Handler,
    pub(super) open: Option<Gauge>,
    /// Where idle HTTP/1 connections wait (`park.rs`).
    pub(super) lot: Arc<ParkingLot>,
    pub(super) settings: ConnSettings,
    pub(super) client_errors: ClientErrors,
}

/// One accepted connection, before its protocol is known.
pub(super) struct Conn {
    pub(super) shared: Arc<Shared>,
    /// Ends the wait for a silent client's first bytes, and serving, when shutdown starts.
    pub(super) shutdown: watch::Receiver<bool>,
    pub(super) peer: SocketAddr,
}

/// Counts the connection in the open-connections gauge from the start of serving until it
/// ends, served or parked.
struct Open(Arc<Shared>);

impl Open {
    fn new(shared: &Arc<Shared>) -> Self {
        if let Some(gauge) = &shared.open {
            gauge.inc();
        }
        Self(Arc::clone(shared))
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        if let Some(gauge) = &self.0.open {
            gauge.dec();
        }
    }
}

/// An HTTP/1 connection taken back from hyper while it idles: what serving it again needs,
/// and nothing twice (the listener's state is the `Open` guard's, the client's address and
/// the activity are the service's), because it is what a parked connection's task holds.
pub(super) struct Resting<S> {
    open: Open,
    shutdown: watch::Receiver<bool>,
    io: ClientIo<S>,
    service: ConnService,
    /// hyper had read part of the next request: serve it at once, no park.
    more: bool,
    /// The keep-alive deadline of the last park, kept while wake-ups bring nothing (TLS:
    /// half a record, an alert, a key update): only an exchange earns a fresh one.
    deadline: Option<Instant>,
}

impl Conn {
    /// Serves `stream` until it closes (`None`), or until an HTTP/1 connection idles and is
    /// taken back from hyper to be parked.
    pub(super) async fn serve<S: ClientStream>(
        mut self,
        stream: S,
        tls: bool,
    ) -> Option<Resting<S>> {
        let settings = &self.shared.settings;
        let (mut stream, activity) =
            ClientIo::new(stream, settings.first_byte_timeout, settings.head_timeout);
        let service = ConnService::new(
            Arc::clone(&self.shared.handler),
            Arc::new(Peer::new(self.peer, tls)),
            Arc::clone(&activity),
        );
        let open = Open::new(&self.shared);
        let detected = tokio::select! {
            detected = protocol::detect(&mut stream) => detected,
            _ = drain::stopping(&mut self.shutdown) => Err(io::ErrorKind::Interrupted.into()),
        };
        let detected = detected.map(|(protocol, read)| {
            stream.put_back(read);
            stream.protocol_known(protocol);
            protocol
        });
        let ended = match detected {
            Ok(Protocol::Http1) => {
                let resting = Resting {
                    open,
                    shutdown: self.shutdown,
                    io: stream,
                    service,
                    more: false,
                    deadline: None,
                };
                return serve_http1(resting).await;
            }
            Ok(Protocol::Http2) => {
                // Boxed: HTTP/1 connections' tasks do not carry HTTP/2's larger state.
                let mut conn = Box::pin(
                    self.shared
                        .builders
                        .http2
                        .serve_connection(TokioIo::new(stream), service),
                );
                // Once shutdown starts, hyper finishes the streams it has and closes.
                let ended = tokio::select! {
                    ended = conn.as_mut() => ended,
                    _ = drain::stopping(&mut self.shutdown) => {
                        conn.as_mut().graceful_shutdown();
                        conn.await
                    }
                };
                ended.map_err(Ended::Http)
            }
            Err(e) => Err(Ended::Io(e)),
        };
        self.shared.ended(ended, &activity, self.peer);
        None
    }
}

impl Shared {
    /// Counts how `peer`'s connection ended, if it counts as a client error, and logs an
    /// error.
    fn ended(&self, ended: Result<(), Ended>, activity: &Activity, peer: SocketAddr) {
        let error = ended.as_ref().err().map(Ended::source);
        if let Some(reason) = refusal(error, activity) {
            self.client_errors.count(reason);
        }
        if let Err(e) = ended {
            tracing::debug!(error = %e, %peer, "connection ended with an error");
        }
    }
}

/// Serves an HTTP/1 connection with hyper until it ends (`None`) or idles.
async fn serve_http1<S: ClientStream>(resting: Resting<S>) -> Option<Resting<S>> {
    let Resting {
        open,
        shutdown,
        io,
        service,
        more: _,
        deadline,
    } = resting;
    let shared = &open.0;
    let activity = Arc::clone(service.activity());
    let peer = service.peer().addr;
    let events = activity.io_events();
    let http1 = park::Http1 {
        builder: &shared.builders.http1,
        activity: &activity,
        idle_timeout: shared.settings.idle_timeout,
    };
    match park::serve_until_idle(&http1, io, service, &shutdown).await {
        Ok(Some(idle)) => {
            let more = !idle.read.is_empty();
            // No byte read or written since the wake-up: the deadline stands.
            let deadline = deadline.filter(|_| activity.io_events() == events);
            let mut io = idle.io;
            // What hyper had read of the next request goes first, timed and counted as read.
            io.put_back(idle.read);
            Some(Resting {
                open,
                shutdown,
                io,
                service: idle.service,
                more,
                deadline,
            })
        }
        Ok(None) => {
            shared.ended(Ok(()), &activity, peer);
            None
        }
        Err(e) => {
            shared.ended(Err(Ended::Http(e)), &activity, peer);
            None
        }
    }
}

impl<S: ClientStream> Resting<S> {
    /// What comes next: serving again at once when hyper had read more (or TLS holds more),
    /// else a park until the keep-alive deadline; `Done` once that deadline has passed or
    /// shutdown started (dropping the stream closes it).
    fn rest(mut self) -> State<S> {
        if self.more {
            return State::Serving(Box::pin(serve_http1(self)));
        }
        let now = Instant::now();
        let shared = &self.open.0;
        let wait = shared.settings.idle_timeout.saturating_sub(PARK_AFTER);
        let deadline = *self.deadline.get_or_insert(now + wait);
        if deadline <= now {
            return self.close();
        }
        if !self.io.get_ref().at_rest() {
            return State::Serving(Box::pin(serve_http1(self)));
        }
        match self.open.0.lot.park(deadline) {
            Some(ticket) => State::Parked(self, ticket),
            None => self.close(),
        }
    }

    /// Ends the connection as a parked one ends (TLS says close_notify).
    fn close(mut self) -> State<S> {
        self.io.get_mut().close_parked();
        State::Done
    }
}

/// Where a connection's task is. `Parked` is inline, not boxed: it is what an idle
/// connection costs, and a box would add an allocation per park.
enum State<S> {
    /// Being served: the whole serving state, boxed.
    Serving(Pin<Box<dyn Future<Output = Option<Resting<S>>> + Send>>),
    /// Parked until its client sends again, its deadline passes or shutdown starts.
    Parked(Resting<S>, Ticket),
    Done,
}

/// A connection's task: serves it, and parks it whenever it idles (HTTP/1, plain or TLS).
pub(super) struct ConnTask<S> {
    state: State<S>,
    /// The listener's connection slot, held for the connection's whole life.
    _slot: OwnedSemaphorePermit,
}

impl<S: ClientStream> ConnTask<S> {
    /// The task of `conn` on `stream`.
    pub(super) fn new(conn: Conn, stream: S, tls: bool, slot: OwnedSemaphorePermit) -> Self {
        Self {
            state: State::Serving(Box::pin(conn.serve(stream, tls))),
            _slot: slot,
        }
    }
}

impl<S: ClientStream> Future for ConnTask<S> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        loop {
            match &mut this.state {
                State::Serving(serving) => match serving.as_mut().poll(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Some(resting)) => this.state = resting.rest(),
                    Poll::Ready(None) => this.state = State::Done,
                },
                State::Parked(resting, ticket) => {
                    match ticket.poll_wait(resting.io.get_ref().socket(), cx) {
                        Poll::Pending => return Poll::Pending,
                        Poll::Ready(false) => {
                            resting.io.get_mut().close_parked();
                            this.state = State::Done;
                        }
                        Poll::Ready(true) => {
                            if let State::Parked(resting, _ticket) =
                                std::mem::replace(&mut this.state, State::Done)
                            {
                                this.state = State::Serving(Box::pin(serve_http1(resting)));
                            }
                        }
                    }
                }
                State::Done => return Poll::Ready(()),
            }
        }
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

#[cfg(test)]
mod tests {
    use tokio::net::TcpStream;

    use super::*;

    /// tokio keeps a task in one cell: a 32-byte header, the scheduler and task id (16), the
    /// future behind an 8-byte tag, a 48-byte trailer, all rounded up to 128 bytes on x86_64.
    /// Up to 280 bytes of future the cell is 384 bytes; past it, 512 for every connection.
    #[test]
    fn a_plain_connections_task_stays_in_tokios_384_byte_cell() {
        let size = std::mem::size_of::<ConnTask<TcpStream>>();
        assert!(size <= 280, "ConnTask<TcpStream> is {size} bytes");
    }
}

//! The upstream HTTP/1.1 client: connections made with hyper's connection API and kept idle
//! per thread (see `idle`). A request goes straight to a connection's handle: no pool lock, no
//! boxed future, no racing connect. A connection goes back to the idle list once its response
//! body has been read to the end.
use std::{
    net::SocketAddr,
    pin::Pin,
    sync::atomic::{AtomicU64, Ordering},
    task::{Context, Poll},
    time::Duration,
};

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use hyper::{
    Method, Request, Response, StatusCode,
    body::{Body, Frame, Incoming, SizeHint},
    client::conn::http1::{self, SendRequest},
    header,
};
use hyper_util::rt::TokioIo;

use super::{
    connector,
    idle::{self, IdlePolicy},
    retry,
};
use crate::metrics::BackendBytes;

/// Any error a request body may fail with.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The body of a request to a replica: the client's, which may fail for reasons of the proxy's
/// own (an upload gone idle), hence the boxed error.
pub type UpstreamBody = BoxBody<Bytes, BoxError>;

/// `max_age` is shorter than common backend keep-alives (Node: 5 s), so a reused connection
/// is rarely one the replica is closing; it is also what ends the idle connections a burst
/// leaves behind. The cap (per worker thread) must stay above the requests in flight to
/// one replica at a peak: below it, each burst's surplus was closed as it went idle and
/// opened again by the next (at 256, HTTP/2 clients with 320 streams in flight made ~2,600
/// upstream connections a second and lost a quarter of their throughput).
const IDLE: IdlePolicy = IdlePolicy {
    max_age: Duration::from_secs(4),
    per_replica: 4096,
};

/// Tells clients apart in the per-thread idle lists (each counts bytes its own way).
static NEXT_CLIENT: AtomicU64 = AtomicU64::new(0);

/// Why a request got no response from the replica.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// No connection could be made: nothing was sent.
    #[error("connecting: {0}")]
    Connect(#[source] std::io::Error),
    /// The connection failed while the request was sent or the response awaited.
    #[error(transparent)]
    Http(#[from] hyper::Error),
}

impl UpstreamError {
    /// True when no connection was made (the request can go to another replica whatever it is).
    pub fn is_connect(&self) -> bool {
        matches!(self, Self::Connect(_))
    }

    /// True when the replica closed or reset the connection before answering: a replica that
    /// died (`kill -9`) mid-request, or a reused connection it had just given up on.
    pub fn closed_before_answer(&self) -> bool {
        let Self::Http(error) = self else {
            return false;
        };
        if error.is_incomplete_message() || error.is_canceled() {
            return true;
        }
        let mut source = std::error::Error::source(error);
        while let Some(e) = source {
            if let Some(io) = e.downcast_ref::<std::io::Error>() {
                return matches!(
                    io.kind(),
                    std::io::ErrorKind::ConnectionReset
                        | std::io::ErrorKind::ConnectionAborted
                        | std::io::ErrorKind::BrokenPipe
                );
            }
            source = e.source();
        }
        false
    }

    /// What this failure means for trying another replica (see [`retry`]).
    pub fn failure(&self) -> retry::Failure {
        if self.is_connect() {
            retry::Failure::NotConnected
        } else if self.closed_before_answer() {
            retry::Failure::ClosedBeforeAnswer
        } else {
            retry::Failure::Other
        }
    }
}

/// The client every request to a replica goes through; clones share its idle connections.
#[derive(Clone)]
pub struct UpstreamClient {
    id: u64,
    bytes: BackendBytes,
    connect_timeout: Duration,
}

/// Builds the client, counting bytes per backend into `bytes`; a TCP connect to a replica may
/// take `connect_timeout` (DFP's `TIMEOUT_CONNECT`).
pub fn new_client(bytes: BackendBytes, connect_timeout: Duration) -> UpstreamClient {
    UpstreamClient {
        id: NEXT_CLIENT.fetch_add(1, Ordering::Relaxed),
        bytes,
        connect_timeout,
    }
}

impl UpstreamClient {
    /// Sends `req` (origin-form URI, `Host` set) to the replica at `addr`, on an idle
    /// connection when there is one. A reused connection the replica closed before it took the
    /// request gives the request back unsent: it goes on the next one, at last on a new one.
    pub async fn request(
        &self,
        addr: SocketAddr,
        mut req: Request<UpstreamBody>,
    ) -> Result<Response<UpstreamResponse>, UpstreamError> {
        // A connection that switched protocols, or may, is never reused.
        let reusable =
            req.method() != Method::CONNECT && !req.headers().contains_key(header::UPGRADE);
        loop {
            let (mut sender, reused) = match idle::take(self.id, addr, IDLE) {
                Some(sender) => (sender, true),
                None => (self.connect(addr).await?, false),
            };
            if reused && sender.ready().await.is_err() {
                continue;
            }
            match sender.try_send_request(req).await {
                Ok(response) => {
                    let keep = reusable && response.status() != StatusCode::SWITCHING_PROTOCOLS;
                    let back = keep.then_some(GiveBack {
                        client: self.id,
                        addr,
                        sender,
                    });
                    return Ok(response.map(|body| UpstreamResponse::new(body, back)));
                }
                Err(mut failed) => match failed.take_message() {
                    Some(unsent) if reused => req = unsent,
                    _ => return Err(UpstreamError::Http(failed.into_error())),
                },
            }
        }
    }

    async fn connect(&self, addr: SocketAddr) -> Result<SendRequest<UpstreamBody>, UpstreamError> {
        let stream = connector::connect(&self.bytes, addr, self.connect_timeout)
            .await
            .map_err(UpstreamError::Connect)?;
        let (sender, connection) = http1::Builder::new()
            .handshake(TokioIo::new(stream))
            .await?;
        // The connection's own task reads and writes; it ends when the handle is dropped (or
        // the replica closes), and goes on as a tunnel after a 101.
        tokio::spawn(async move {
            if let Err(error) = connection.with_upgrades().await {
                tracing::debug!(%error, "upstream connection ended");
            }
        });
        Ok(sender)
    }
}

/// Where a connection goes once its response has been read whole.
struct GiveBack {
    client: u64,
    addr: SocketAddr,
    sender: SendRequest<UpstreamBody>,
}

/// A replica's response body. Read to its end, it hands its connection back for the next
/// request; dropped before, the connection closes with it.
pub struct UpstreamResponse {
    body: Incoming,
    back: Option<GiveBack>,
}

impl UpstreamResponse {
    fn new(body: Incoming, back: Option<GiveBack>) -> Self {
        Self { body, back }
    }

    fn give_back(&mut self) {
        if let Some(back) = self.back.take() {
            idle::give_back(back.client, back.addr, back.sender, IDLE);
        }
    }
}

impl std::fmt::Debug for UpstreamResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamResponse")
            .field("reusable", &self.back.is_some())
            .finish_non_exhaustive()
    }
}

impl Body for UpstreamResponse {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let polled = Pin::new(&mut self.body).poll_frame(cx);
        match &polled {
            Poll::Ready(None) => self.give_back(),
            // A broken response leaves a connection in no state to reuse.
            Poll::Ready(Some(Err(_))) => self.back = None,
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

impl Drop for UpstreamResponse {
    fn drop(&mut self) {
        // A server stops polling a body once it says it has ended (and never polls one that
        // starts ended, as a HEAD's or a 204's): the connection goes back here then.
        if self.body.is_end_stream() {
            self.give_back();
        }
    }
}

#[cfg(test)]
mod tests;

//! The service hyper calls for each request of a connection: the listener's handler, boxed,
//! with the connection's client and activity.
use std::{
    convert::Infallible,
    future::Future,
    net::SocketAddr,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use bytes::Bytes;
use futures_util::FutureExt as _;
use hyper::{
    HeaderMap, Request, Response, Version,
    body::{Frame, Incoming, SizeHint},
    header::HeaderValue,
};

use super::{client_io::Activity, headers::connection_tokens};
use crate::http_body::Body;

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
    pub(super) fn new(addr: SocketAddr, tls: bool) -> Self {
        let ip = HeaderValue::from_str(&addr.ip().to_string())
            .expect("an IP address is a valid header value");
        Self { addr, tls, ip }
    }
}

/// What a request's handling returns to hyper.
pub type ResponseFuture =
    Pin<Box<dyn Future<Output = Result<Response<Tracked>, Infallible>> + Send>>;

/// A listener's handler behind one type, so a connection's code is not generic over it.
pub type Handler =
    Arc<dyn Fn(Request<Incoming>, Arc<Peer>, InFlight) -> ResponseFuture + Send + Sync>;

/// Boxes `handler`. Each request's future is boxed too: hyper keeps room for one in-flight
/// future for as long as a connection lives, and unboxed that room is the whole request
/// path's state. The response body carries the request's `InFlight` mark to its end.
pub fn boxed<H, F>(handler: Arc<H>) -> Handler
where
    H: Fn(Request<Incoming>, Arc<Peer>) -> F + Send + Sync + 'static,
    F: Future<Output = Response<Body>> + Send + 'static,
{
    Arc::new(move |req, peer, in_flight: InFlight| {
        let closes = closes_after(req.version(), req.headers());
        // `map`, not an `async` block: a block holds the handler's future twice (captured,
        // then awaited), 9 KiB per request for the proxy's, copied whole three times
        // before its first poll.
        Box::pin(handler(req, peer).map(move |response| {
            if closes || closes_after(response.version(), response.headers()) {
                // hyper closes this connection after the exchange, perhaps with the request
                // body still arriving: it must be closed for real, never parked.
                in_flight.0.connection_closes();
            }
            Ok(response.map(|body| Tracked {
                body,
                _in_flight: in_flight,
            }))
        }))
    })
}

/// Whether a message with `version` and `headers` ends its connection: `Connection: close`,
/// or HTTP/1.0 without `Connection: keep-alive`.
fn closes_after(version: Version, headers: &HeaderMap) -> bool {
    let has = |token: &str| connection_tokens(headers).any(|t| t.eq_ignore_ascii_case(token));
    if version == Version::HTTP_10 {
        !has("keep-alive")
    } else {
        has("close")
    }
}

/// A request of the connection is being handled, from hyper's call until its response body
/// is done or dropped: a connection with one is never parked (`park.rs`).
pub struct InFlight(Arc<Activity>);

impl InFlight {
    fn new(activity: Arc<Activity>) -> Self {
        activity.request_started();
        Self(activity)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.request_done();
    }
}

/// A response body with its request's `InFlight` mark.
pub struct Tracked {
    body: Body,
    _in_flight: InFlight,
}

impl hyper::body::Body for Tracked {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// One connection's service.
#[derive(Clone)]
pub struct ConnService {
    handler: Handler,
    peer: Arc<Peer>,
    activity: Arc<Activity>,
}

impl ConnService {
    /// Requests of `peer`'s connection go to `handler`; `activity` learns of each head.
    pub fn new(handler: Handler, peer: Arc<Peer>, activity: Arc<Activity>) -> Self {
        Self {
            handler,
            peer,
            activity,
        }
    }

    /// The client end of the connection.
    pub fn peer(&self) -> &Arc<Peer> {
        &self.peer
    }

    /// The connection's activity.
    pub fn activity(&self) -> &Arc<Activity> {
        &self.activity
    }
}

impl hyper::service::Service<Request<Incoming>> for ConnService {
    type Response = Response<Tracked>;
    type Error = Infallible;
    type Future = ResponseFuture;

    fn call(&self, req: Request<Incoming>) -> ResponseFuture {
        self.activity.head_complete();
        let in_flight = InFlight::new(Arc::clone(&self.activity));
        (self.handler)(req, Arc::clone(&self.peer), in_flight)
    }
}

#[cfg(test)]
mod tests {
    use hyper::header::CONNECTION;

    use super::*;

    #[test]
    fn close_and_http_1_0_without_keep_alive_end_the_connection() {
        let with = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(CONNECTION, HeaderValue::from_str(value).unwrap());
            headers
        };
        let none = HeaderMap::new();
        assert!(!closes_after(Version::HTTP_11, &none));
        assert!(closes_after(Version::HTTP_11, &with("Close")));
        assert!(closes_after(Version::HTTP_11, &with("te, close")));
        assert!(!closes_after(Version::HTTP_11, &with("keep-alive")));
        assert!(closes_after(Version::HTTP_10, &none));
        assert!(!closes_after(Version::HTTP_10, &with("Keep-Alive")));
    }
}

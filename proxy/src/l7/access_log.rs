//! The access log (target `access`): one line per request, written when the response body has
//! been sent whole (or the client went away), so it can carry the bytes really relayed and the
//! whole duration. Nothing here runs when the target is off: the proxy checks [`enabled`] once
//! per request and only then keeps a [`Record`].
use std::{
    borrow::Cow,
    fmt,
    net::{IpAddr, SocketAddr},
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::{Duration, Instant},
};

use bytes::Bytes;
use http_body_util::BodyExt as _;
use hyper::{
    HeaderMap, Method, Request, Response, Uri, Version,
    body::{Body as HttpBody, Frame, SizeHint},
    header::{self, HeaderName, HeaderValue},
};

use super::{Peer, body::RelayedBytes, host};
use crate::{http_body::Body, metrics::ServiceMetrics};

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");

/// The status logged for a request whose client went away before it was answered (nginx's).
pub const CLIENT_CLOSED: u16 = 499;

/// What replaces the value of a `token` query parameter in the log.
pub const REDACTED: &str = "REDACTED";

/// Whether access lines are written at all (`RUST_LOG=access=off` turns them off).
pub fn enabled() -> bool {
    tracing::enabled!(target: "access", tracing::Level::INFO)
}

/// The protocol the client spoke, as the access log and the metrics name it.
pub fn protocol(version: Version) -> &'static str {
    match version {
        Version::HTTP_09 => "http/0.9",
        Version::HTTP_10 => "http/1.0",
        Version::HTTP_2 => "h2",
        Version::HTTP_3 => "h3",
        _ => "http/1.1",
    }
}

/// `query` with the value of every `token` parameter replaced by [`REDACTED`]: an API token or
/// a signed link must not end up in a log that many people read. Borrowed when there is none.
pub fn redact_query(query: &str) -> Cow<'_, str> {
    // Cheap test first: a query that cannot name `token`, even percent-encoded, is kept whole.
    let may_name_token = query.contains('%')
        || query
            .as_bytes()
            .windows(5)
            .any(|w| w.eq_ignore_ascii_case(b"token"));
    if !may_name_token {
        return Cow::Borrowed(query);
    }
    let mut redacted = false;
    let parts: Vec<Cow<'_, str>> = query
        .split('&')
        .map(|pair| {
            // form_urlencoded decodes the name as a server would read it (`%74oken`, `+`).
            let is_token = form_urlencoded::parse(pair.as_bytes())
                .next()
                .is_some_and(|(name, _)| name.eq_ignore_ascii_case("token"));
            if !is_token {
                return Cow::Borrowed(pair);
            }
            redacted = true;
            let name = pair.split_once('=').map_or(pair, |(name, _)| name);
            Cow::Owned(format!("{name}={REDACTED}"))
        })
        .collect();
    if redacted {
        Cow::Owned(parts.join("&"))
    } else {
        Cow::Borrowed(query)
    }
}

/// What the access line knows about a request from its head on. Header values are clones of
/// the parsed ones, which share hyper's read buffer: keeping them copies no bytes.
pub struct Record {
    started: Instant,
    client: IpAddr,
    method: Method,
    uri: Uri,
    version: Version,
    host: Option<HeaderValue>,
    forwarded_for: Option<HeaderValue>,
    user_agent: Option<HeaderValue>,
    traceparent: Option<HeaderValue>,
    request_id: HeaderValue,
}

/// What the proxy learnt while forwarding, for the line.
pub struct Forwarded {
    /// The service the request was routed to (`-` when none).
    pub service: Arc<ServiceMetrics>,
    /// The replica that answered, or was tried last.
    pub replica: Option<SocketAddr>,
    /// From handing the request to the replica's connection to the response's head.
    pub upstream: Option<Duration>,
    /// The request body's bytes sent on to the replica, when there was a body.
    pub request_body: Option<RelayedBytes>,
}

impl Record {
    /// Takes what the line needs from `req`'s head, as the client sent it.
    pub fn new<B>(
        req: &Request<B>,
        peer: &Peer,
        request_id: &HeaderValue,
        started: Instant,
    ) -> Self {
        let headers = req.headers();
        Self {
            started,
            client: peer.addr.ip(),
            method: req.method().clone(),
            uri: req.uri().clone(),
            version: req.version(),
            host: host::request_host(req.version(), req.uri(), headers)
                .ok()
                .flatten(),
            forwarded_for: all_values(headers, &X_FORWARDED_FOR),
            user_agent: headers.get(header::USER_AGENT).cloned(),
            traceparent: headers.get(&TRACEPARENT).cloned(),
            request_id: request_id.clone(),
        }
    }

    /// Wraps `response`'s body so that the line is written once it has been sent (or dropped),
    /// with the bytes it counted.
    pub fn finish(self, response: Response<Body>, forwarded: Forwarded) -> Response<Body> {
        let status = response.status().as_u16();
        response.map(|inner| {
            Logged {
                inner,
                sent: 0,
                line: Line {
                    record: self,
                    forwarded: Some(forwarded),
                    status,
                },
            }
            .boxed()
        })
    }
}

/// A [`Record`] while the request is being answered. Dropped unanswered (hyper drops the
/// handler when the client resets the stream or closes the connection first), it still writes
/// the line, with status [`CLIENT_CLOSED`]: a client that gave up is what an operator looks for.
pub struct InFlight(Option<Record>);

impl InFlight {
    /// Starts watching `record`'s request.
    pub fn new(record: Record) -> Self {
        Self(Some(record))
    }

    /// The request was answered: the line is now the response body's to write.
    pub fn answered(mut self) -> Record {
        self.0.take().expect("taken only here, once")
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Some(record) = self.0.take() {
            let line = Line {
                record,
                forwarded: None,
                status: CLIENT_CLOSED,
            };
            line.write(0);
        }
    }
}

/// Several fields of one header (X-Forwarded-For from a chain of proxies) as one value.
fn all_values(headers: &HeaderMap, name: &HeaderName) -> Option<HeaderValue> {
    let mut values = headers.get_all(name).iter();
    let first = values.next()?;
    let Some(second) = values.next() else {
        return Some(first.clone());
    };
    let mut joined = first.as_bytes().to_vec();
    for value in std::iter::once(second).chain(values) {
        joined.extend_from_slice(b", ");
        joined.extend_from_slice(value.as_bytes());
    }
    HeaderValue::from_bytes(&joined).ok()
}

/// Everything the line says, but the bytes sent.
struct Line {
    record: Record,
    /// `None` when the request was never answered.
    forwarded: Option<Forwarded>,
    status: u16,
}

impl Line {
    fn write(&self, bytes_out: u64) {
        let r = &self.record;
        let f = self.forwarded.as_ref();
        let query = r.uri.query().filter(|q| !q.is_empty()).map(redact_query);
        tracing::info!(
            target: "access",
            client = %r.client,
            x_forwarded_for = &*text(r.forwarded_for.as_ref()),
            method = r.method.as_str(),
            host = &*text(r.host.as_ref()),
            path = r.uri.path(),
            query = query.as_deref().unwrap_or("-"),
            protocol = protocol(r.version),
            status = self.status,
            bytes_in = f.and_then(|f| f.request_body.as_ref()).map_or(0, RelayedBytes::get),
            bytes_out,
            service = f.map_or("-", |f| f.service.name()),
            replica = %Dash(f.and_then(|f| f.replica)),
            upstream_us = f.and_then(|f| f.upstream).map(micros),
            duration_us = micros(r.started.elapsed()),
            user_agent = &*text(r.user_agent.as_ref()),
            // Always visible ASCII: checked on the way in, or generated.
            request_id = r.request_id.to_str().unwrap_or("-"),
            traceparent = &*text(r.traceparent.as_ref()),
        );
    }
}

/// A header value as log text: `-` when absent, bytes that are not UTF-8 replaced.
fn text(value: Option<&HeaderValue>) -> Cow<'_, str> {
    value.map_or(Cow::Borrowed("-"), |v| {
        String::from_utf8_lossy(v.as_bytes())
    })
}

/// Whole microseconds (an integer a log pipeline can sum, unlike a float of milliseconds).
fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// Shows `-` for nothing, without formatting into a `String` first.
pub(super) struct Dash<T>(pub(super) Option<T>);

impl<T: fmt::Display> fmt::Display for Dash<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Some(v) => v.fmt(f),
            None => f.write_str("-"),
        }
    }
}

/// The client's response body, counted on its way out; its drop writes the line (hyper drops
/// it once the last frame is written, or when the client goes away).
struct Logged {
    inner: Body,
    sent: u64,
    line: Line,
}

impl HttpBody for Logged {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled
            && let Some(data) = frame.data_ref()
        {
            self.sent += data.len() as u64;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Logged {
    fn drop(&mut self) {
        self.line.write(self.sent);
    }
}

// Tests live in access_log/tests.rs.
#[cfg(test)]
mod tests;

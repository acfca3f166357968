//! The request path, as named phases: route, authenticate, pick a replica, forward (retrying
//! idempotent requests on another replica when a connection is refused), relay the response.
//! It reads the configuration snapshot and never takes a lock.
use std::{
    borrow::Cow,
    net::SocketAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use http::uri::{Authority, PathAndQuery, Scheme};
use http_body_util::{BodyExt as _, Empty};
use hyper::{
    Method, Request, Response, StatusCode, Uri, Version,
    body::{Body as _, Incoming},
    header::{self, HeaderValue},
};

use super::{
    Body, Peer, access, body::signal_end, errors::ProxyError, headers, rewrite, text_body, tunnel,
};
use crate::{
    control::ControlPlane,
    credentials::Credentials,
    metrics::{Metrics, ServiceMetrics},
    routes::Destination,
    upstream::{UpstreamClient, sticky},
};

/// How many replicas an idempotent request may try.
const MAX_ATTEMPTS: usize = 3;

/// The L7 proxy: the configuration it routes by and the client it forwards with.
pub struct Proxy {
    control: Arc<ControlPlane>,
    client: UpstreamClient,
    metrics: Arc<Metrics>,
    https: HttpsPolicy,
    credentials: Arc<Credentials>,
    sticky_secret: Arc<[u8]>,
}

/// How plain HTTP relates to HTTPS.
#[derive(Debug, Clone, Copy, Default)]
pub struct HttpsPolicy {
    /// The HTTPS listener's port, for redirect locations (omitted when 443).
    pub port: Option<u16>,
    /// `HTTPS_ONLY`: redirect every plain request, whatever its service says.
    pub only: bool,
}

/// What the access log and the metrics record about a forwarded request.
#[derive(Default)]
struct Outcome {
    service: Option<Arc<ServiceMetrics>>,
    replica: Option<SocketAddr>,
}

impl Proxy {
    /// A proxy routing by `control`'s snapshots through `client`.
    pub fn new(
        control: Arc<ControlPlane>,
        client: UpstreamClient,
        metrics: Arc<Metrics>,
        https: HttpsPolicy,
        credentials: Arc<Credentials>,
        sticky_secret: Arc<[u8]>,
    ) -> Self {
        Self {
            control,
            client,
            metrics,
            https,
            credentials,
            sticky_secret,
        }
    }

    /// Handles one request from `peer`; every outcome, errors included, is a response.
    pub async fn handle(&self, req: Request<Incoming>, peer: Arc<Peer>) -> Response<Body> {
        let started = Instant::now();
        let method = req.method().clone();
        // The access log is usually off under load: its fields are kept only when it is on.
        let logged = tracing::enabled!(target: "access", tracing::Level::INFO).then(|| {
            let host = request_host(&req).and_then(|h| h.to_str().ok().map(str::to_owned));
            (req.uri().path().to_owned(), host)
        });
        let mut outcome = Outcome::default();
        let response = match self.forward(req, &peer, &mut outcome).await {
            Ok(response) => response,
            Err(e) => e.into_response(),
        };
        let elapsed = started.elapsed().as_secs_f64();
        let status = response.status().as_u16();
        let service = outcome
            .service
            .unwrap_or_else(|| self.metrics.service(NO_SERVICE));
        service.observe(outcome.replica, status, &method, elapsed);
        if let Some((path, host)) = logged {
            tracing::info!(
                target: "access",
                client = %peer.addr.ip(),
                %method,
                host = host.as_deref().unwrap_or("-"),
                path,
                status,
                service = service.name(),
                replica = %outcome.replica.map_or_else(|| "-".to_owned(), |r| r.to_string()),
                duration_ms = elapsed * 1000.0,
            );
        }
        response
    }

    async fn forward(
        &self,
        mut req: Request<Incoming>,
        peer: &Peer,
        outcome: &mut Outcome,
    ) -> Result<Response<Body>, ProxyError> {
        // Phase 1: route. `load_full` because the snapshot is held across awaits.
        let snapshot = self.control.snapshot_full();
        let host = request_host(&req);
        let host_str = host.as_ref().and_then(|h| h.to_str().ok());
        // A clone shares the URI's bytes; it frees `req` for the upgrade below.
        let uri = req.uri().clone();
        let route = snapshot
            .routes
            .lookup(host_str, uri.path())
            .ok_or(ProxyError::NoRoute)?;
        let service: &str = &route.service.name;
        outcome.service = Some(self.metrics.service(service));
        // Phase 2: redirects. A `redirectFromDomain` host goes to the service's domain; plain
        // HTTP to an https-only service goes to HTTPS.
        let dest: &Destination = route.destination;
        let svc = route.service;
        if let Some(to) = route.redirect_to {
            let scheme = if peer.tls { "https" } else { "http" };
            let path = uri.path_and_query().map_or("/", |pq| pq.as_str());
            return Ok(moved_permanently(&format!("{scheme}://{to}{path}")));
        }
        if access::redirect_to_https(svc, dest, peer.tls, self.https.only, req.headers()) {
            return Ok(redirect_to_https(
                &req,
                host_str,
                self.https.port,
                dest.https_redirect_code,
            ));
        }
        // Phase 3: denyHttp, methods, basic auth.
        let authenticated = access::authorize(
            &self.credentials,
            svc,
            dest,
            peer.tls,
            req.method(),
            req.headers(),
        )?;
        if authenticated {
            req.headers_mut().remove(header::AUTHORIZATION);
        }
        // Phase 4: the replicas.
        let replicas = snapshot
            .upstream(route.service, dest)
            .ok_or_else(|| no_replica(service, "it has no upstream"))?;
        replicas.ensure_resolved().await;
        // Phase 5: the upstream request.
        let upgrade = headers::upgrade_protocol(req.headers());
        let client_upgrade = upgrade.is_some().then(|| hyper::upgrade::on(&mut req));
        let rewritten = match &route.path {
            Cow::Owned(path) => Some(path.as_str()),
            Cow::Borrowed(_) => None,
        };
        let path_and_query = upstream_path(&uri, rewritten)?;
        let (mut parts, body) = req.into_parts();
        headers::strip_hop_by_hop(&mut parts.headers, upgrade.clone());
        headers::join_cookies(&mut parts.headers);
        let proto = if peer.tls { "https" } else { "http" };
        headers::add_forwarded(&mut parts.headers, &peer.ip, proto, host.as_ref());
        rewrite::apply(&mut parts.headers, &svc.request_headers);
        // A body-less request can be sent again: to another replica after a refused
        // connection (nothing was sent), and if idempotent after a pooled connection that the
        // replica closed just as we reused it.
        let bodyless = body.is_end_stream();
        let idempotent = is_idempotent(&parts.method);
        if !bodyless
            && body.size_hint().exact().is_none()
            && !parts.headers.contains_key(header::CONTENT_LENGTH)
        {
            // Without this hyper would send a GET body of unknown length as empty.
            parts.headers.insert(
                header::TRANSFER_ENCODING,
                header::HeaderValue::from_static("chunked"),
            );
        }
        let pick = sticky::Pick::new(
            svc.sticky_cookie.as_deref(),
            &svc.name,
            &self.sticky_secret,
            &parts.headers,
        );
        let mut body = (!bodyless).then_some(body);
        let mut tried = [NO_REPLICA; MAX_ATTEMPTS];
        let attempts = if bodyless { MAX_ATTEMPTS } else { 1 };
        let mut last_error = None;
        for attempt in 0..attempts {
            let Some((replica, authority)) = pick.target(replicas, &tried[..attempt]) else {
                break;
            };
            tried[attempt] = replica;
            outcome.replica = Some(replica);
            let (body, body_sent) = match body.take() {
                Some(b) => {
                    let (b, sent) = signal_end(b.boxed());
                    (b, Some(sent))
                }
                None => (Empty::new().map_err(|never| match never {}).boxed(), None),
            };
            let mut upstream_req = Request::new(body);
            *upstream_req.method_mut() = parts.method.clone();
            *upstream_req.uri_mut() = upstream_uri(authority, path_and_query.clone())?;
            *upstream_req.version_mut() = Version::HTTP_11;
            *upstream_req.headers_mut() = parts.headers.clone();
            let sent = send(&self.client, upstream_req, body_sent, dest.timeout_server);
            match sent.await {
                Err(_) => {
                    // A replica that does not answer may be gone: look again.
                    replicas.report_failure(replica);
                    return Err(ProxyError::Timeout {
                        service: service.to_owned(),
                    });
                }
                Ok(Ok(response)) => {
                    let mut response = relay_response(response, client_upgrade, svc, dest);
                    pick.stamp(response.headers_mut(), replica, peer.tls);
                    return Ok(response);
                }
                Ok(Err(e)) if e.is_connect() => {
                    tracing::warn!(%service, %replica, error = %e, "replica refused the connection");
                    replicas.report_failure(replica);
                    last_error = Some(e.to_string());
                }
                Ok(Err(e)) if idempotent && bodyless && closed_before_answer(&e) => {
                    tracing::debug!(%service, %replica, error = %e, "reused connection closed; retrying");
                    last_error = Some(e.to_string());
                }
                Ok(Err(e)) => {
                    return Err(ProxyError::Upstream {
                        service: service.to_owned(),
                        reason: e.to_string(),
                    });
                }
            }
        }
        let reason = last_error
            .or_else(|| replicas.last_error())
            .unwrap_or_else(|| "no replica is known".to_owned());
        Err(no_replica(service, &reason))
    }
}

/// The service label of requests no route took.
const NO_SERVICE: &str = "-";

/// Fills the unused slots of the replicas tried so far (never compared: only the tried
/// prefix is).
const NO_REPLICA: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), 0);

/// Sends `req`; `timeout` counts from when the request body has been sent whole.
async fn send(
    client: &UpstreamClient,
    req: Request<Body>,
    body_sent: Option<tokio::sync::oneshot::Receiver<()>>,
    timeout: Duration,
) -> Result<
    Result<Response<Incoming>, hyper_util::client::legacy::Error>,
    tokio::time::error::Elapsed,
> {
    let request = client.request(req);
    tokio::pin!(request);
    if let Some(body_sent) = body_sent {
        tokio::select! {
            answered = &mut request => return Ok(answered),
            _ = body_sent => {}
        }
    }
    tokio::time::timeout(timeout, request).await
}

/// True when the replica closed the connection before answering (a pooled connection it had
/// already given up on).
fn closed_before_answer(error: &hyper_util::client::legacy::Error) -> bool {
    let mut source = std::error::Error::source(error);
    while let Some(e) = source {
        if let Some(h) = e.downcast_ref::<hyper::Error>() {
            return h.is_incomplete_message() || h.is_canceled();
        }
        source = e.source();
    }
    false
}

/// The redirect of a plain request to the same host, path and query over HTTPS.
fn redirect_to_https<B>(
    req: &Request<B>,
    host: Option<&str>,
    port: Option<u16>,
    code: u16,
) -> Response<Body> {
    let host = host.unwrap_or("localhost");
    // Drop the plain port; add the HTTPS one unless it is the default.
    let name = match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    };
    let port = port
        .filter(|p| *p != 443)
        .map(|p| format!(":{p}"))
        .unwrap_or_default();
    let path = req.uri().path_and_query().map_or("/", |pq| pq.as_str());
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::FOUND);
    Response::builder()
        .status(status)
        .header(header::LOCATION, format!("https://{name}{port}{path}"))
        .body(text_body(""))
        .unwrap_or_else(|_| {
            let mut bad = Response::new(text_body("the Host header cannot be redirected\n"));
            *bad.status_mut() = StatusCode::BAD_REQUEST;
            bad
        })
}

/// A 301 to `location` (`redirectFromDomain`, as DFP answers it).
fn moved_permanently(location: &str) -> Response<Body> {
    Response::builder()
        .status(StatusCode::MOVED_PERMANENTLY)
        .header(header::LOCATION, location)
        .body(text_body(""))
        .unwrap_or_else(|_| {
            let mut bad = Response::new(text_body("the redirect cannot be built\n"));
            *bad.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
            bad
        })
}

fn no_replica(service: &str, reason: &str) -> ProxyError {
    ProxyError::NoReplica {
        service: service.to_owned(),
        reason: reason.to_owned(),
    }
}

/// The path and query to send upstream: the client's own when the route keeps the path
/// (shared, not copied), else the `rewritten` path with the client's query.
fn upstream_path(uri: &Uri, rewritten: Option<&str>) -> Result<PathAndQuery, ProxyError> {
    let text = match (rewritten, uri.path_and_query()) {
        (None, Some(original)) => return Ok(original.clone()),
        (None, None) => "/".to_owned(),
        (Some(path), _) => match uri.query() {
            Some(q) => format!("{path}?{q}"),
            None => path.to_owned(),
        },
    };
    PathAndQuery::try_from(text).map_err(|e| ProxyError::Upstream {
        service: uri.to_string(),
        reason: e.to_string(),
    })
}

fn upstream_uri(authority: Authority, path_and_query: PathAndQuery) -> Result<Uri, ProxyError> {
    let mut parts = http::uri::Parts::default();
    parts.scheme = Some(Scheme::HTTP);
    parts.authority = Some(authority);
    parts.path_and_query = Some(path_and_query);
    Uri::from_parts(parts).map_err(|e| ProxyError::Upstream {
        service: "-".to_owned(),
        reason: e.to_string(),
    })
}

/// Turns the replica's response into the client's: hop-by-hop headers stay behind, and a 101
/// starts the tunnel.
fn relay_response(
    mut response: Response<Incoming>,
    client_upgrade: Option<hyper::upgrade::OnUpgrade>,
    service: &crate::routes::Service,
    dest: &Destination,
) -> Response<Body> {
    if response.status() == StatusCode::SWITCHING_PROTOCOLS {
        if let Some(client) = client_upgrade {
            let upstream = hyper::upgrade::on(&mut response);
            tunnel::spawn(client, upstream, dest.timeout_tunnel, service.name.clone());
        }
        let (parts, _) = response.into_parts();
        return Response::from_parts(parts, Empty::new().map_err(|never| match never {}).boxed());
    }
    let (mut parts, body) = response.into_parts();
    headers::strip_hop_by_hop(&mut parts.headers, None);
    rewrite::apply(&mut parts.headers, &service.response_headers);
    // The client's connection decides the protocol, not the replica's (which may be HTTP/1.0).
    parts.version = Version::HTTP_11;
    Response::from_parts(parts, body.boxed())
}

/// The host the client asked for: the Host header (when it is text), or the HTTP/2
/// `:authority`.
fn request_host<B>(req: &Request<B>) -> Option<HeaderValue> {
    req.headers()
        .get(header::HOST)
        .filter(|h| h.to_str().is_ok())
        .cloned()
        .or_else(|| {
            req.uri()
                .authority()
                .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
        })
}

fn is_idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE | Method::TRACE
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_upstream_path_keeps_the_query_and_takes_a_rewrite() {
        let uri: Uri = "/demo/x?a=1&b=2".parse().unwrap();
        assert_eq!(upstream_path(&uri, None).unwrap(), "/demo/x?a=1&b=2");
        assert_eq!(upstream_path(&uri, Some("/x")).unwrap(), "/x?a=1&b=2");
        let plain: Uri = "/demo".parse().unwrap();
        assert_eq!(upstream_path(&plain, Some("/")).unwrap(), "/");
        let authority_only: Uri = "example.com:443".parse().unwrap();
        assert_eq!(upstream_path(&authority_only, None).unwrap(), "/");
    }

    #[test]
    fn the_upstream_uri_addresses_the_replica() {
        let uri = upstream_uri(
            Authority::from_static("198.18.0.2:8080"),
            PathAndQuery::from_static("/x?y=1"),
        )
        .unwrap();
        assert_eq!(uri.to_string(), "http://198.18.0.2:8080/x?y=1");
    }
}

//! The request path, as named phases: route, authenticate, pick a replica, forward (retrying
//! idempotent requests on another replica when a connection is refused), relay the response.
//! It reads the configuration snapshot and never takes a lock.
use std::{
    net::SocketAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use http_body_util::{BodyExt as _, Empty};
use hyper::{
    Method, Request, Response, StatusCode, Uri, Version,
    body::{Body as _, Incoming},
    header,
};

use super::{Body, Tls, auth, body::signal_end, errors::ProxyError, headers, text_body, tunnel};
use crate::{
    control::ControlPlane, metrics::Metrics, routes::Destination, upstream::UpstreamClient,
};

/// How many replicas an idempotent request may try.
const MAX_ATTEMPTS: usize = 3;

/// The L7 proxy: the configuration it routes by and the client it forwards with.
pub struct Proxy {
    control: Arc<ControlPlane>,
    client: UpstreamClient,
    metrics: Arc<Metrics>,
    https: HttpsPolicy,
}

/// How plain HTTP relates to HTTPS.
#[derive(Debug, Clone, Copy, Default)]
pub struct HttpsPolicy {
    /// The HTTPS listener's port, for redirect locations (omitted when 443).
    pub port: Option<u16>,
    /// `HTTPS_ONLY`: redirect every plain request, whatever its service says.
    pub only: bool,
}

/// What the access log records about a forwarded request.
#[derive(Default)]
struct Outcome {
    service: Option<String>,
    replica: Option<SocketAddr>,
}

impl Proxy {
    /// A proxy routing by `control`'s snapshots through `client`.
    pub fn new(
        control: Arc<ControlPlane>,
        client: UpstreamClient,
        metrics: Arc<Metrics>,
        https: HttpsPolicy,
    ) -> Self {
        Self {
            control,
            client,
            metrics,
            https,
        }
    }

    /// Handles one request from `peer`; every outcome, errors included, is a response.
    pub async fn handle(&self, req: Request<Incoming>, peer: SocketAddr) -> Response<Body> {
        let started = Instant::now();
        let method = req.method().clone();
        let path = req.uri().path().to_owned();
        let host = request_host(&req);
        let mut outcome = Outcome::default();
        let response = match self.forward(req, peer, host.clone(), &mut outcome).await {
            Ok(response) => response,
            Err(e) => e.into_response(),
        };
        let elapsed = started.elapsed().as_secs_f64();
        self.metrics.observe_request(
            outcome.service.as_deref(),
            outcome.replica,
            response.status().as_u16(),
            &method,
            elapsed,
        );
        tracing::info!(
            target: "access",
            client = %peer.ip(),
            %method,
            host = host.as_deref().unwrap_or("-"),
            path,
            status = response.status().as_u16(),
            service = outcome.service.as_deref().unwrap_or("-"),
            replica = %outcome.replica.map_or_else(|| "-".to_owned(), |r| r.to_string()),
            duration_ms = elapsed * 1000.0,
        );
        response
    }

    async fn forward(
        &self,
        mut req: Request<Incoming>,
        peer: SocketAddr,
        host: Option<String>,
        outcome: &mut Outcome,
    ) -> Result<Response<Body>, ProxyError> {
        // Phase 1: route. `load_full` because the snapshot is held across awaits.
        let snapshot = self.control.snapshot_full();
        let path = req.uri().path().to_owned();
        let route = snapshot
            .routes
            .lookup(host.as_deref(), &path)
            .ok_or(ProxyError::NoRoute)?;
        let service = route.service.name.clone();
        outcome.service = Some(service.clone());
        // Phase 2: plain HTTP to an https-only service is redirected.
        let dest: &Destination = route.destination;
        let over_tls = req.extensions().get::<Tls>().is_some();
        if !over_tls && (dest.https_only || self.https.only) {
            return Ok(redirect_to_https(
                &req,
                host.as_deref(),
                self.https.port,
                dest.https_redirect_code,
            ));
        }
        // Phase 3: authenticate.
        if !auth::allowed(&route.service.users, req.headers()) {
            return Err(ProxyError::Unauthorized);
        }
        // Phase 4: the replicas.
        let replicas = snapshot
            .upstream(route.service, dest)
            .ok_or_else(|| no_replica(&service, "it has no upstream"))?;
        replicas.ensure_resolved().await;
        // Phase 5: the upstream request.
        let upgrade = headers::upgrade_protocol(req.headers());
        let client_upgrade = upgrade.is_some().then(|| hyper::upgrade::on(&mut req));
        let path_and_query = match req.uri().query() {
            Some(q) => format!("{}?{q}", route.path),
            None => route.path.to_string(),
        };
        let (mut parts, body) = req.into_parts();
        headers::strip_hop_by_hop(&mut parts.headers, upgrade.clone());
        let proto = if over_tls { "https" } else { "http" };
        headers::add_forwarded(&mut parts.headers, peer.ip(), proto, host.as_deref());
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
        let mut body = Some(body.boxed());
        let mut tried = Vec::new();
        let attempts = if bodyless { MAX_ATTEMPTS } else { 1 };
        let mut last_error = replicas
            .last_error()
            .unwrap_or_else(|| "no replica is known".to_owned());
        for _ in 0..attempts {
            let Some(replica) = replicas.pick(&tried) else {
                break;
            };
            tried.push(replica);
            outcome.replica = Some(replica);
            let (body, body_sent) = match body.take() {
                Some(b) if !bodyless => {
                    let (b, sent) = signal_end(b);
                    (b, Some(sent))
                }
                _ => (Empty::new().map_err(|never| match never {}).boxed(), None),
            };
            let mut upstream_req = Request::new(body);
            *upstream_req.method_mut() = parts.method.clone();
            *upstream_req.uri_mut() = upstream_uri(replica, &path_and_query)?;
            *upstream_req.version_mut() = Version::HTTP_11;
            *upstream_req.headers_mut() = parts.headers.clone();
            let sent = send(&self.client, upstream_req, body_sent, dest.timeout_server);
            match sent.await {
                Err(_) => {
                    // A replica that does not answer may be gone: look again.
                    replicas.report_failure(replica);
                    return Err(ProxyError::Timeout { service });
                }
                Ok(Ok(response)) => {
                    return Ok(relay_response(response, client_upgrade, dest, service));
                }
                Ok(Err(e)) if e.is_connect() => {
                    tracing::warn!(%service, %replica, error = %e, "replica refused the connection");
                    replicas.report_failure(replica);
                    last_error = e.to_string();
                }
                Ok(Err(e)) if idempotent && bodyless && closed_before_answer(&e) => {
                    tracing::debug!(%service, %replica, error = %e, "reused connection closed; retrying");
                    last_error = e.to_string();
                }
                Ok(Err(e)) => {
                    return Err(ProxyError::Upstream {
                        service,
                        reason: e.to_string(),
                    });
                }
            }
        }
        Err(no_replica(&service, &last_error))
    }
}

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

fn no_replica(service: &str, reason: &str) -> ProxyError {
    ProxyError::NoReplica {
        service: service.to_owned(),
        reason: reason.to_owned(),
    }
}

fn upstream_uri(replica: SocketAddr, path_and_query: &str) -> Result<Uri, ProxyError> {
    format!("http://{replica}{path_and_query}")
        .parse()
        .map_err(|e: http::uri::InvalidUri| ProxyError::Upstream {
            service: replica.to_string(),
            reason: e.to_string(),
        })
}

/// Turns the replica's response into the client's: hop-by-hop headers stay behind, and a 101
/// starts the tunnel.
fn relay_response(
    mut response: Response<Incoming>,
    client_upgrade: Option<hyper::upgrade::OnUpgrade>,
    dest: &Destination,
    service: String,
) -> Response<Body> {
    if response.status() == StatusCode::SWITCHING_PROTOCOLS {
        if let Some(client) = client_upgrade {
            let upstream = hyper::upgrade::on(&mut response);
            tunnel::spawn(client, upstream, dest.timeout_tunnel, service);
        }
        let (parts, _) = response.into_parts();
        return Response::from_parts(parts, Empty::new().map_err(|never| match never {}).boxed());
    }
    let (mut parts, body) = response.into_parts();
    headers::strip_hop_by_hop(&mut parts.headers, None);
    // The client's connection decides the protocol, not the replica's (which may be HTTP/1.0).
    parts.version = Version::HTTP_11;
    Response::from_parts(parts, body.boxed())
}

/// The host the client asked for: the Host header, or the HTTP/2 `:authority`.
fn request_host<B>(req: &Request<B>) -> Option<String> {
    req.headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned)
        .or_else(|| req.uri().authority().map(|a| a.to_string()))
}

fn is_idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE | Method::TRACE
    )
}

//! The request path, as named phases: admit (head limits, Host rules), route, authenticate,
//! pick a replica, forward (retrying body-less requests on another replica when a connection is
//! refused, idempotent ones also when it closed or reset before an answer), relay the response.
//! It reads the configuration snapshot and never takes a lock.
use std::{
    borrow::Cow,
    net::SocketAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use http_body_util::{BodyExt as _, Empty};
use hyper::{
    Request, Response, Uri, Version,
    body::{Body as _, Incoming},
    header,
};

use self::{
    classify::{client_error_reason, is_idempotent, no_replica},
    send::{send, set_host},
};
use super::{
    Peer, access, access_log, body,
    errors::{ErrorSource, ProxyError, error_chain},
    header_rules, headers, host,
    limits::{self, HeaderLimits},
    request_id::{self, X_REQUEST_ID},
    rewrite::{moved_permanently, redirect_to_https, relay_response, upstream_path},
    upgrade::{UpgradeAllowList, UpgradeRequest, upgrade_request},
};
use crate::{
    control::ControlPlane,
    credentials::Credentials,
    http_body::Body,
    metrics::{ClientErrorReason, Metrics, ServiceMetrics},
    routes::Destination,
    upstream::{UpstreamClient, sticky},
};

/// How many replicas a request without a body may try (a request with one gets one attempt).
const MAX_ATTEMPTS: usize = 3;

/// The L7 proxy: the configuration it routes by and the client it forwards with.
pub struct Proxy {
    control: Arc<ControlPlane>,
    client: UpstreamClient,
    metrics: Arc<Metrics>,
    https: HttpsPolicy,
    limits: RequestLimits,
    trust: Trust,
}

/// Whom the proxy believes: basic-auth users, the key of sticky cookies, the proxies whose
/// forwarded headers stand.
pub struct Trust {
    /// The users of `users`, `usersSecret` and `USERS`.
    pub credentials: Arc<Credentials>,
    /// `--sticky-secret`.
    pub sticky_secret: Arc<[u8]>,
    /// `--trusted-proxies`.
    pub trusted_proxies: Arc<[ipnet::IpNet]>,
}

/// What a client's request may be: its head's size, how long its body may stall, which
/// upgrades pass.
#[derive(Debug, Clone)]
pub struct RequestLimits {
    /// `--max-header-bytes`, `--max-header-value-bytes`.
    pub header: HeaderLimits,
    /// `--timeout-client`: the longest an open request body may send nothing.
    pub body_idle: Duration,
    /// `--allowed-upgrades`.
    pub upgrades: UpgradeAllowList,
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
    /// Whether the access log is on: the fields below are only measured then.
    logged: bool,
    upstream: Option<Duration>,
    request_body: Option<body::RelayedBytes>,
}

impl Proxy {
    /// A proxy routing by `control`'s snapshots through `client`.
    pub fn new(
        control: Arc<ControlPlane>,
        client: UpstreamClient,
        metrics: Arc<Metrics>,
        https: HttpsPolicy,
        limits: RequestLimits,
        trust: Trust,
    ) -> Self {
        Self {
            control,
            client,
            metrics,
            https,
            limits,
            trust,
        }
    }

    /// Handles one request from `peer`; every outcome, errors included, is a response.
    pub async fn handle(&self, mut req: Request<Incoming>, peer: Arc<Peer>) -> Response<Body> {
        let started = Instant::now();
        let (method, version) = (req.method().clone(), req.version());
        // Kept or made here, so the replica gets it and every answer (errors too) returns it.
        let request_id = request_id::ensure(req.headers_mut());
        // The access log is usually off under load: its fields are kept only when it is on.
        let logged = access_log::enabled().then(|| {
            access_log::InFlight::new(access_log::Record::new(&req, &peer, &request_id, started))
        });
        let mut outcome = Outcome {
            logged: logged.is_some(),
            ..Outcome::default()
        };
        let mut response = match self.forward(req, &peer, &mut outcome).await {
            Ok(response) => response,
            Err(e) => {
                match e.origin() {
                    ErrorSource::Client => {
                        tracing::debug!(error = %e, "request refused");
                        if let Some(reason) = client_error_reason(&e) {
                            self.metrics.client_errors().count(reason);
                        }
                    }
                    ErrorSource::Internal => tracing::warn!(error = %e, "request not forwarded"),
                    // The client got a generic line; the details are here.
                    ErrorSource::Upstream => tracing::warn!(
                        replica = %access_log::Dash(outcome.replica),
                        error = %e,
                        "request failed"
                    ),
                }
                e.into_response()
            }
        };
        let elapsed = started.elapsed().as_secs_f64();
        let status = response.status().as_u16();
        let service = outcome
            .service
            .unwrap_or_else(|| self.metrics.service(NO_SERVICE));
        service.observe(outcome.replica, status, &method, version, elapsed);
        // Ours, not the replica's own: the client must see the id the logs have.
        response
            .headers_mut()
            .insert(X_REQUEST_ID.clone(), request_id);
        match logged {
            None => response,
            Some(flight) => {
                let forwarded = access_log::Forwarded {
                    service,
                    replica: outcome.replica,
                    upstream: outcome.upstream,
                    request_body: outcome.request_body,
                };
                flight.answered().finish(response, forwarded)
            }
        }
    }

    async fn forward(
        &self,
        mut req: Request<Incoming>,
        peer: &Peer,
        outcome: &mut Outcome,
    ) -> Result<Response<Body>, ProxyError> {
        // Phase 0: admit. A head over a limit or with an ambiguous host goes no further.
        limits::check_head(&self.limits.header, req.method(), req.uri(), req.headers())
            .map_err(ProxyError::HeaderTooLarge)?;
        let host = host::request_host(req.version(), req.uri(), req.headers())
            .map_err(ProxyError::BadHost)?;
        // Phase 1: route. `load_full` because the snapshot is held across awaits.
        let snapshot = self.control.snapshot_full();
        let host_str = host.as_ref().and_then(|h| h.to_str().ok());
        // A clone shares the URI's bytes; it frees `req` for the upgrade below.
        let uri = req.uri().clone();
        let route = snapshot
            .routes
            .lookup(host_str, uri.path(), req.headers())
            .ok_or(ProxyError::NoRoute)?;
        let service: &str = &route.service.name;
        let metrics = self.metrics.service(service);
        outcome.service = Some(Arc::clone(&metrics));
        // Phase 2: redirects. A `redirectFromDomain` host goes to the service's domain; plain
        // HTTP to an https-only service goes to HTTPS.
        let dest: &Destination = route.destination;
        let svc = route.service;
        if let Some(to) = route.redirect_to {
            let scheme = if peer.tls { "https" } else { "http" };
            let path = uri.path_and_query().map_or("/", |pq| pq.as_str());
            return Ok(moved_permanently(&format!("{scheme}://{to}{path}")));
        }
        let trusted = self
            .trust
            .trusted_proxies
            .iter()
            .any(|net| net.contains(&peer.addr.ip()));
        // Without a trusted list, a client's X-Forwarded-Proto still decides its own redirect,
        // as in DFP; with one, only a trusted proxy's does.
        let believed = trusted || self.trust.trusted_proxies.is_empty();
        if access::redirect_to_https(
            svc,
            dest,
            peer.tls,
            self.https.only,
            believed,
            req.headers(),
        ) {
            return Ok(redirect_to_https(
                &req,
                host_str,
                self.https.port,
                dest.https_redirect_code,
            ));
        }
        // Phase 3: denyHttp, methods, basic auth.
        let authenticated = access::authorize(
            &self.trust.credentials,
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
        let upgrade = match upgrade_request(req.headers(), &self.limits.upgrades) {
            UpgradeRequest::Allowed(protocols) => Some(protocols),
            UpgradeRequest::None => None,
            UpgradeRequest::Refused => {
                self.metrics
                    .client_errors()
                    .count(ClientErrorReason::UpgradeRefused);
                None
            }
        };
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
        headers::add_forwarded(&mut parts.headers, &peer.ip, proto, host.as_ref(), trusted);
        header_rules::apply(&mut parts.headers, &svc.request_headers);
        // A body-less request can be sent again: to another replica after a refused
        // connection (nothing was sent), and if idempotent after the replica closed or reset
        // the connection before answering (no byte of a response reached the client).
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
            &self.trust.sticky_secret,
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
            if attempt > 0 {
                metrics.retried();
            }
            tried[attempt] = replica;
            outcome.replica = Some(replica);
            let (body, mut watch) = match body.take() {
                Some(b) => {
                    let idle = dest.timeout_client.unwrap_or(self.limits.body_idle);
                    let (b, watch) = body::watch(b, idle);
                    if outcome.logged {
                        outcome.request_body = Some(watch.relayed());
                    }
                    (b, Some(watch))
                }
                None => (Empty::new().map_err(|never| match never {}).boxed(), None),
            };
            let mut upstream_req = Request::new(body);
            *upstream_req.method_mut() = parts.method.clone();
            *upstream_req.uri_mut() = Uri::from(path_and_query.clone());
            *upstream_req.version_mut() = Version::HTTP_11;
            // Moved, not cloned, when no other replica is left to retry on (then no attempt
            // follows this one, whatever the replica set does meanwhile).
            let last = attempt + 1 == attempts || attempt + 1 >= replicas.len();
            *upstream_req.headers_mut() = if last {
                std::mem::take(&mut parts.headers)
            } else {
                parts.headers.clone()
            };
            set_host(upstream_req.headers_mut(), &authority);
            let body_sent = watch.as_mut().map(|w| &mut w.sent);
            let asked = outcome.logged.then(Instant::now);
            let sent = send(
                &self.client,
                replica,
                upstream_req,
                body_sent,
                dest.timeout_server,
            );
            match sent.await {
                Err(_) => {
                    // A replica that does not answer may be gone: look again.
                    replicas.report_failure(replica);
                    return Err(ProxyError::Timeout {
                        service: service.to_owned(),
                    });
                }
                Ok(Ok(response)) => {
                    outcome.upstream = asked.map(|t| t.elapsed());
                    let mut response = relay_response(response, client_upgrade, dest, service)?;
                    header_rules::apply(response.headers_mut(), &svc.response_headers);
                    pick.stamp(response.headers_mut(), replica, peer.tls);
                    return Ok(response);
                }
                Ok(Err(_)) if let Some(failure) = watch.as_ref().and_then(|w| w.failure()) => {
                    // The client's body broke the request, not the replica.
                    return Err(ProxyError::Body(failure.clone()));
                }
                Ok(Err(e)) if e.is_connect() => {
                    let error = error_chain(&e);
                    tracing::warn!(%service, %replica, error = %error, "replica refused the connection");
                    replicas.report_failure(replica);
                    last_error = Some(format!("{replica}: {error}"));
                    if last {
                        break;
                    }
                }
                Ok(Err(e)) if idempotent && bodyless && e.closed_before_answer() => {
                    let error = error_chain(&e);
                    tracing::debug!(%service, %replica, error = %error, "connection closed before an answer; retrying");
                    last_error = Some(format!("{replica}: {error}"));
                    if last {
                        break;
                    }
                }
                Ok(Err(e)) => {
                    return Err(ProxyError::Upstream {
                        service: service.to_owned(),
                        reason: error_chain(&e),
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

mod classify;
mod send;

// Tests live in pipeline/tests.rs.
#[cfg(test)]
mod tests;

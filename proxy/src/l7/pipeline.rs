//! The request path, as named phases over one request's `Exchange`: admit (head limits, Host
//! rules), route, redirect, authorize (`exchange.rs`), build the upstream request
//! (`outbound.rs`), send it with retries on other replicas as `upstream::retry` allows, relay
//! the response (`attempts.rs`). `Proxy::forward` reads as that sequence; `Proxy::handle`
//! wraps it with the request id, the metrics and the access log. It reads the configuration
//! snapshot and never takes a lock.
use std::{
    net::SocketAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use hyper::{Request, Response, body::Incoming};

use self::{attempts::relay, classify::client_error_reason};
use super::{
    Peer, access_log, body,
    errors::{ErrorSource, ProxyError},
    limits::HeaderLimits,
    request_id::{self, X_REQUEST_ID},
    upgrade::UpgradeAllowList,
};
use crate::{
    control::ControlPlane,
    credentials::Credentials,
    http_body::Body,
    metrics::{Metrics, ServiceMetrics},
    upstream::UpstreamClient,
};

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
    pub async fn handle(
        self: Arc<Self>,
        mut req: Request<Incoming>,
        peer: Arc<Peer>,
    ) -> Response<Body> {
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

    /// The request's phases in order; any of them may answer first (an error, a redirect).
    async fn forward(
        &self,
        mut req: Request<Incoming>,
        peer: &Peer,
        outcome: &mut Outcome,
    ) -> Result<Response<Body>, ProxyError> {
        let host = self.admit(&req)?;
        // `load_full` because the snapshot is held across awaits.
        let snapshot = self.control.snapshot_full();
        // A clone shares the URI's bytes; it frees `req` for the upgrade below.
        let uri = req.uri().clone();
        let cx = self.route(&snapshot, peer, host.as_ref(), &uri, req.headers(), outcome)?;
        if let Some(redirect) = self.redirect(&cx, &req) {
            return Ok(redirect);
        }
        self.authorize(&cx, &mut req)?;
        let replicas = cx.replicas().await?;
        let mut outbound = self.upstream_request(&cx, req)?;
        let (response, replica) = self
            .send_with_retries(&cx, replicas, &mut outbound, outcome)
            .await?;
        relay(&cx, response, replica, &mut outbound)
    }
}

/// The service label of requests no route took.
const NO_SERVICE: &str = "-";

mod attempts;
mod classify;
mod exchange;
mod outbound;
mod send;

// Tests live in pipeline/tests.rs.
#[cfg(test)]
mod tests;

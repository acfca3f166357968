//! The phases that decide whether and where a request goes: admit, route, redirect,
//! authorize, and the routed destination's replicas. Routing makes the request's
//! [`Exchange`], which every later phase reads.
use std::sync::Arc;

use hyper::{
    HeaderMap, Request, Response, Uri,
    body::Incoming,
    header::{self, HeaderValue},
};

use super::{Outcome, Proxy, classify::no_replica};
use crate::{
    control::Snapshot,
    http_body::Body,
    l7::{
        Peer, access,
        errors::ProxyError,
        host, limits,
        rewrite::{moved_permanently, redirect_to_https},
    },
    metrics::ServiceMetrics,
    routes::{Destination, RouteMatch, Service},
    upstream::ReplicaSet,
};

/// One routed request: what the phases after routing read. It borrows the snapshot, the
/// request's URI and host and the connection, so making it copies nothing.
pub(super) struct Exchange<'a> {
    /// The configuration the request is routed by, held to its end.
    snapshot: &'a Snapshot,
    /// The client end of the connection.
    pub(super) peer: &'a Peer,
    /// The service and destination the request goes to, and its upstream path.
    pub(super) route: RouteMatch<'a>,
    /// The request's host, as the client sent it.
    pub(super) host: Option<&'a HeaderValue>,
    /// The host as text, when it is.
    host_str: Option<&'a str>,
    /// The request's URI (a copy sharing its bytes: the request itself is consumed later).
    pub(super) uri: &'a Uri,
    /// The service's metrics (retries are counted there).
    pub(super) metrics: Arc<ServiceMetrics>,
    /// Whether the client is one of `--trusted-proxies`, whose forwarded headers stand.
    pub(super) trusted: bool,
}

impl<'a> Exchange<'a> {
    /// The service's name.
    pub(super) fn service_name(&self) -> &'a str {
        &self.route.service.name
    }

    /// The service the request goes to.
    pub(super) fn service(&self) -> &'a Service {
        self.route.service
    }

    /// The destination that matched.
    pub(super) fn dest(&self) -> &'a Destination {
        self.route.destination
    }

    /// The destination's replicas, resolved at least once.
    pub(super) async fn replicas(&self) -> Result<&'a Arc<ReplicaSet>, ProxyError> {
        let replicas = self
            .snapshot
            .upstream(self.service(), self.dest())
            .ok_or_else(|| no_replica(self.service_name(), "it has no upstream"))?;
        replicas.ensure_resolved().await;
        Ok(replicas)
    }
}

impl Proxy {
    /// Admit: a head over a limit or with an ambiguous host goes no further. Returns the
    /// request's host.
    pub(super) fn admit(&self, req: &Request<Incoming>) -> Result<Option<HeaderValue>, ProxyError> {
        limits::check_head(&self.limits.header, req.method(), req.uri(), req.headers())
            .map_err(ProxyError::HeaderTooLarge)?;
        host::request_host(req.version(), req.uri(), req.headers()).map_err(ProxyError::BadHost)
    }

    /// Route: the destination the host, path and header conditions pick (no route falls to
    /// the `isDefaultBackend` service). The service's metrics go into `outcome` at once, so
    /// an answer from any later phase counts for the service.
    pub(super) fn route<'a>(
        &self,
        snapshot: &'a Snapshot,
        peer: &'a Peer,
        host: Option<&'a HeaderValue>,
        uri: &'a Uri,
        headers: &HeaderMap,
        outcome: &mut Outcome,
    ) -> Result<Exchange<'a>, ProxyError> {
        let host_str = host.and_then(|h| h.to_str().ok());
        let route = snapshot
            .routes
            .lookup(host_str, uri.path(), headers)
            .ok_or(ProxyError::NoRoute)?;
        let metrics = self.metrics.service(&route.service.name);
        outcome.service = Some(Arc::clone(&metrics));
        let trusted = self
            .trust
            .trusted_proxies
            .iter()
            .any(|net| net.contains(&peer.addr.ip()));
        Ok(Exchange {
            snapshot,
            peer,
            route,
            host,
            host_str,
            uri,
            metrics,
            trusted,
        })
    }

    /// Redirect: a `redirectFromDomain` host goes to the service's domain; plain HTTP to an
    /// https-only service (or said to be plain by a believed `X-Forwarded-Proto`) goes to
    /// HTTPS.
    pub(super) fn redirect(
        &self,
        cx: &Exchange<'_>,
        req: &Request<Incoming>,
    ) -> Option<Response<Body>> {
        if let Some(to) = cx.route.redirect_to {
            let scheme = if cx.peer.tls { "https" } else { "http" };
            let path = cx.uri.path_and_query().map_or("/", |pq| pq.as_str());
            return Some(moved_permanently(&format!("{scheme}://{to}{path}")));
        }
        // Without a trusted list, a client's X-Forwarded-Proto still decides its own redirect,
        // as in DFP; with one, only a trusted proxy's does.
        let believed = cx.trusted || self.trust.trusted_proxies.is_empty();
        let dest = cx.dest();
        let redirect = access::redirect_to_https(
            cx.service(),
            dest,
            cx.peer.tls,
            self.https.only,
            believed,
            req.headers(),
        );
        redirect
            .then(|| redirect_to_https(req, cx.host_str, self.https.port, dest.https_redirect_code))
    }

    /// Authorize: `denyHttp`, the allowed methods, basic auth. Credentials that passed are
    /// not sent on to the replica.
    pub(super) fn authorize(
        &self,
        cx: &Exchange<'_>,
        req: &mut Request<Incoming>,
    ) -> Result<(), ProxyError> {
        let authenticated = access::authorize(
            &self.trust.credentials,
            cx.service(),
            cx.dest(),
            cx.peer.tls,
            req.method(),
            req.headers(),
        )?;
        if authenticated {
            req.headers_mut().remove(header::AUTHORIZATION);
        }
        Ok(())
    }
}

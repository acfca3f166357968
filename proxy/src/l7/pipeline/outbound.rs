//! Building the upstream request: once from the client's (upgrade, path, headers, how the
//! replica is picked and retried), then for each attempt (body, URI, `Host`).
use std::{borrow::Cow, time::Duration};

use http::{
    request::Parts,
    uri::{Authority, PathAndQuery},
};
use http_body_util::{BodyExt as _, Empty};
use hyper::{
    Request, Uri, Version,
    body::{Body as _, Incoming},
    header,
    upgrade::OnUpgrade,
};

use super::{Outcome, Proxy, exchange::Exchange, send::set_host};
use crate::{
    l7::{
        body::{self, BodyWatch},
        errors::ProxyError,
        header_rules, headers,
        rewrite::upstream_path,
        upgrade::{UpgradeRequest, upgrade_request},
    },
    metrics::ClientErrorReason,
    upstream::{UpstreamBody, retry::RetryPolicy, sticky},
};

/// The upstream request as built once, and what its attempts and the relay need.
pub(super) struct Outbound<'a> {
    /// Method and headers as the replica gets them (the URI is `path_and_query`).
    parts: Parts,
    /// The client's body: `None` when it has none, and once the first attempt took it.
    body: Option<Incoming>,
    /// The origin-form target at the replica.
    path_and_query: PathAndQuery,
    /// How many replicas may be tried, after which failures.
    pub(super) policy: RetryPolicy,
    /// Round robin or the sticky session's replica.
    pub(super) pick: sticky::Pick<'a>,
    /// The client's side of an allowed upgrade, for the relay to join to the replica's.
    pub(super) client_upgrade: Option<OnUpgrade>,
}

impl Proxy {
    /// Build the upstream request: the upgrade if it is allowed, the replica's path, the
    /// headers it gets (hop-by-hop ones dropped, cookies joined, `X-Forwarded-*`, the
    /// service's rules), the pick and the retry policy.
    pub(super) fn upstream_request<'a>(
        &self,
        cx: &Exchange<'a>,
        mut req: Request<Incoming>,
    ) -> Result<Outbound<'a>, ProxyError> {
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
        let rewritten = match &cx.route.path {
            Cow::Owned(path) => Some(path.as_str()),
            Cow::Borrowed(_) => None,
        };
        let path_and_query = upstream_path(cx.uri, rewritten)?;
        let (mut parts, body) = req.into_parts();
        headers::strip_hop_by_hop(&mut parts.headers, upgrade);
        headers::join_cookies(&mut parts.headers);
        let proto = if cx.peer.tls { "https" } else { "http" };
        headers::add_forwarded(&mut parts.headers, &cx.peer.ip, proto, cx.host, cx.trusted);
        let svc = cx.service();
        header_rules::apply(&mut parts.headers, &svc.request_headers);
        // Only a body-less request can be sent again (see `RetryPolicy::for_request`).
        let bodyless = body.is_end_stream();
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
        Ok(Outbound {
            policy: RetryPolicy::for_request(&parts.method, bodyless),
            parts,
            body: (!bodyless).then_some(body),
            path_and_query,
            pick,
            client_upgrade,
        })
    }
}

impl Outbound<'_> {
    /// The request of one attempt, to the replica at `authority`. The client's body goes
    /// with the first, wrapped to tell when it was sent whole and to fail once it has sent
    /// nothing for `idle`; later attempts (body-less by the policy) get an empty one.
    pub(super) fn attempt(
        &mut self,
        authority: &Authority,
        last: bool,
        idle: Duration,
        outcome: &mut Outcome,
    ) -> (Request<UpstreamBody>, Option<BodyWatch>) {
        let (body, watch) = match self.body.take() {
            Some(b) => {
                let (b, watch) = body::watch(b, idle);
                if outcome.logged {
                    outcome.request_body = Some(watch.relayed());
                }
                (b, Some(watch))
            }
            None => (Empty::new().map_err(|never| match never {}).boxed(), None),
        };
        let mut request = Request::new(body);
        *request.method_mut() = self.parts.method.clone();
        *request.uri_mut() = Uri::from(self.path_and_query.clone());
        *request.version_mut() = Version::HTTP_11;
        // Moved, not cloned, when no other replica is left to retry on (then no attempt
        // follows this one, whatever the replica set does meanwhile).
        *request.headers_mut() = if last {
            std::mem::take(&mut self.parts.headers)
        } else {
            self.parts.headers.clone()
        };
        set_host(request.headers_mut(), authority);
        (request, watch)
    }
}

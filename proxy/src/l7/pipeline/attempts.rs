//! Sending the upstream request with retries (each attempt to a replica not tried yet, for as
//! long as the retry policy allows), and relaying the answer back to the client.
use std::{net::SocketAddr, sync::Arc, time::Instant};

use hyper::Response;

use super::{
    Outcome, Proxy, classify::no_replica, exchange::Exchange, outbound::Outbound, send::send,
};
use crate::{
    http_body::Body,
    l7::{
        errors::{ProxyError, error_chain},
        header_rules,
        rewrite::relay_response,
    },
    upstream::{
        ReplicaSet, UpstreamError, UpstreamResponse,
        retry::{Failure, Tried},
    },
};

impl Proxy {
    /// Send with retries: each attempt goes to the replica the pick chooses among those not
    /// tried yet, until one answers, a failure the policy does not retry ends the request,
    /// or no attempt is left. `timeoutServer` counts from the end of the upload; a failure
    /// of the client's body is the client's, not the replica's. Returns the response and the
    /// replica that gave it.
    pub(super) async fn send_with_retries(
        &self,
        cx: &Exchange<'_>,
        replicas: &Arc<ReplicaSet>,
        outbound: &mut Outbound<'_>,
        outcome: &mut Outcome,
    ) -> Result<(Response<UpstreamResponse>, SocketAddr), ProxyError> {
        let dest = cx.dest();
        let idle = dest.timeout_client.unwrap_or(self.limits.body_idle);
        let mut tried = Tried::default();
        let mut last_error = None;
        for attempt in 0..outbound.policy.attempts() {
            let Some((replica, authority)) = outbound.pick.target(replicas, tried.as_slice())
            else {
                break;
            };
            if attempt > 0 {
                cx.metrics.retried();
            }
            tried.push(replica);
            outcome.replica = Some(replica);
            let last = outbound.policy.is_last(attempt, replicas.len());
            let (request, mut watch) = outbound.attempt(&authority, last, idle, outcome);
            let body_sent = watch.as_mut().map(|w| &mut w.sent);
            let asked = outcome.logged.then(Instant::now);
            let sent = send(
                &self.client,
                replica,
                request,
                body_sent,
                dest.timeout_server,
            );
            let error = match sent.await {
                Err(_) => {
                    // A replica that does not answer may be gone: look again.
                    replicas.report_failure(replica);
                    return Err(ProxyError::Timeout {
                        service: cx.service_name().to_owned(),
                    });
                }
                Ok(Ok(response)) => {
                    outcome.upstream = asked.map(|t| t.elapsed());
                    return Ok((response, replica));
                }
                Ok(Err(error)) => error,
            };
            if let Some(failure) = watch.as_ref().and_then(|w| w.failure()) {
                // The client's body broke the request, not the replica.
                return Err(ProxyError::Body(failure.clone()));
            }
            let failure = error.failure();
            if !outbound.policy.retries(failure) {
                return Err(ProxyError::Upstream {
                    service: cx.service_name().to_owned(),
                    reason: error_chain(&error),
                });
            }
            last_error = Some(note_failure(cx, replicas, replica, failure, &error));
            if last {
                break;
            }
        }
        let reason = last_error
            .or_else(|| replicas.last_error())
            .unwrap_or_else(|| "no replica is known".to_owned());
        Err(no_replica(cx.service_name(), &reason))
    }
}

/// Logs a failure the policy retries, reports a replica that refused the connection (it may
/// be gone), and returns the failure as the reason to give if no replica answers.
fn note_failure(
    cx: &Exchange<'_>,
    replicas: &Arc<ReplicaSet>,
    replica: SocketAddr,
    failure: Failure,
    error: &UpstreamError,
) -> String {
    let service = cx.service_name();
    let error = error_chain(error);
    if failure == Failure::NotConnected {
        tracing::warn!(%service, %replica, error = %error, "replica refused the connection");
        replicas.report_failure(replica);
    } else {
        tracing::debug!(%service, %replica, error = %error, "connection closed before an answer; retrying");
    }
    format!("{replica}: {error}")
}

/// Relay: the replica's response becomes the client's (hop-by-hop headers dropped, a 101
/// joined to the client's upgrade), with the service's response header rules and the
/// sticky session's cookie.
pub(super) fn relay(
    cx: &Exchange<'_>,
    response: Response<UpstreamResponse>,
    replica: SocketAddr,
    outbound: &mut Outbound<'_>,
) -> Result<Response<Body>, ProxyError> {
    let upgrade = outbound.client_upgrade.take();
    let mut response = relay_response(response, upgrade, cx.dest(), cx.service_name())?;
    header_rules::apply(response.headers_mut(), &cx.service().response_headers);
    outbound
        .pick
        .stamp(response.headers_mut(), replica, cx.peer.tls);
    Ok(response)
}

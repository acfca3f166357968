//! Sending the upstream request (with `Host`), with the server timeout counted from when the
//! request body has been sent whole.
use std::{net::SocketAddr, time::Duration};

use hyper::{Request, Response, header};

use crate::upstream::{UpstreamBody, UpstreamClient, UpstreamError, UpstreamResponse};

/// Sends `req` to `replica`; `timeout` counts from when the request body has been sent whole.
pub(super) async fn send(
    client: &UpstreamClient,
    replica: SocketAddr,
    req: Request<UpstreamBody>,
    body_sent: Option<&mut tokio::sync::oneshot::Receiver<()>>,
    timeout: Duration,
) -> Result<Result<Response<UpstreamResponse>, UpstreamError>, tokio::time::error::Elapsed> {
    let request = client.request(replica, req);
    tokio::pin!(request);
    if let Some(body_sent) = body_sent {
        tokio::select! {
            answered = &mut request => return Ok(answered),
            _ = body_sent => {}
        }
    }
    tokio::time::timeout(timeout, request).await
}

/// A request without `Host` (HTTP/1.0) names the replica, as HTTP/1.1 requires a Host.
pub(super) fn set_host(headers: &mut hyper::HeaderMap, authority: &http::uri::Authority) {
    if !headers.contains_key(header::HOST)
        && let Ok(value) = header::HeaderValue::from_str(authority.as_str())
    {
        headers.insert(header::HOST, value);
    }
}

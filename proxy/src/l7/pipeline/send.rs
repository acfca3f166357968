//! Sending the upstream request, with the server timeout counted from when the request body
//! has been sent whole.
use std::{net::SocketAddr, time::Duration};

use hyper::{Request, Response};

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

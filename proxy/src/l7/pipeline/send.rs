//! Sending the upstream request, and telling which failures left the request unanswered (so
//! that a body-less one may go to another replica).
use std::time::Duration;

use hyper::{Request, Response, body::Incoming};

use crate::upstream::{UpstreamBody, UpstreamClient};

/// Sends `req`; `timeout` counts from when the request body has been sent whole.
pub(super) async fn send(
    client: &UpstreamClient,
    req: Request<UpstreamBody>,
    body_sent: Option<&mut tokio::sync::oneshot::Receiver<()>>,
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

/// True when the replica closed or reset the connection before answering: a pooled
/// connection it had already given up on, or a replica that died (`kill -9`) mid-request.
pub(super) fn closed_before_answer(error: &hyper_util::client::legacy::Error) -> bool {
    let mut source = std::error::Error::source(error);
    while let Some(e) = source {
        if let Some(h) = e.downcast_ref::<hyper::Error>()
            && (h.is_incomplete_message() || h.is_canceled())
        {
            return true;
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            return matches!(
                io.kind(),
                std::io::ErrorKind::ConnectionReset
                    | std::io::ErrorKind::ConnectionAborted
                    | std::io::ErrorKind::BrokenPipe
            );
        }
        source = e.source();
    }
    false
}

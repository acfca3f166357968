//! What a request and its failures are: idempotent or not, which client errors are counted,
//! the error for a service without a replica to answer.
use hyper::Method;

use crate::{l7::body::BodyFailure, l7::errors::ProxyError, metrics::ClientErrorReason};

/// The `flowproxy_client_errors_total` reason of an error the client caused, if it is one of
/// the rejections counted there (a 404 or 401 is an answer, not a rejection).
pub(super) fn client_error_reason(error: &ProxyError) -> Option<ClientErrorReason> {
    match error {
        ProxyError::HeaderTooLarge(_) => Some(ClientErrorReason::HeaderTooLarge),
        ProxyError::BadHost(_) => Some(ClientErrorReason::BadHost),
        ProxyError::Body(BodyFailure::Idle(_)) => Some(ClientErrorReason::TimeoutBody),
        ProxyError::Body(BodyFailure::Client(_)) => Some(ClientErrorReason::BadFraming),
        _ => None,
    }
}

pub(super) fn no_replica(service: &str, reason: &str) -> ProxyError {
    ProxyError::NoReplica {
        service: service.to_owned(),
        reason: reason.to_owned(),
    }
}

pub(super) fn is_idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE | Method::TRACE
    )
}

//! What a request's failures are: which client errors are counted, the error for a service
//! without a replica to answer.
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

/// The 503 of `service` when no replica answered, saying why.
pub(super) fn no_replica(service: &str, reason: &str) -> ProxyError {
    ProxyError::NoReplica {
        service: service.to_owned(),
        reason: reason.to_owned(),
    }
}

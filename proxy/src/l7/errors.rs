//! Why a request could not be proxied, and the response each reason gets: a status and a
//! one-line body saying which. Each error records its source (pingora's rule): a client's
//! fault is a 4xx and never counts against a replica; an upstream's is a 5xx.
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::{Response, StatusCode, header};

use super::{Body, body::BodyFailure, host::HostError, limits::HeaderTooLarge};

/// Whose fault a failed request is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorSource {
    /// The client sent something wrong, or not enough (4xx).
    Client,
    /// A replica refused, failed or did not answer (5xx).
    Upstream,
    /// The proxy could not build the upstream request (500).
    Internal,
}

/// A request the proxy answers itself.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// No route matches host and path (404).
    #[error("no route matches this host and path")]
    NoRoute,
    /// Basic auth is required and missing or wrong (401).
    #[error("authentication required")]
    Unauthorized,
    /// The service refuses this request (`denyHttp`, `allowedMethods`, `deniedMethods`): 403.
    #[error("{0}")]
    Forbidden(&'static str),
    /// The head is over a limit (431).
    #[error("{0}")]
    HeaderTooLarge(HeaderTooLarge),
    /// Host missing, repeated or invalid (400).
    #[error("{0}")]
    BadHost(HostError),
    /// The client's body stopped (408) or did not parse (400).
    #[error("{0}")]
    Body(BodyFailure),
    /// The service has no replica that accepts connections (503).
    #[error("no replica of {service} is reachable: {reason}")]
    NoReplica {
        /// The service.
        service: String,
        /// What went wrong.
        reason: String,
    },
    /// The replica did not answer within `timeoutServer` (504).
    #[error("{service} did not answer in time")]
    Timeout {
        /// The service.
        service: String,
    },
    /// The connection to the replica failed mid-request (502).
    #[error("the connection to {service} failed: {reason}")]
    Upstream {
        /// The service.
        service: String,
        /// What went wrong.
        reason: String,
    },
    /// The upstream request could not be built (500).
    #[error("the request could not be forwarded: {0}")]
    Internal(String),
}

impl ProxyError {
    /// Whose fault this is.
    pub fn origin(&self) -> ErrorSource {
        match self {
            Self::NoRoute
            | Self::Unauthorized
            | Self::Forbidden(_)
            | Self::HeaderTooLarge(_)
            | Self::BadHost(_)
            | Self::Body(_) => ErrorSource::Client,
            Self::NoReplica { .. } | Self::Timeout { .. } | Self::Upstream { .. } => {
                ErrorSource::Upstream
            }
            Self::Internal(_) => ErrorSource::Internal,
        }
    }

    /// The HTTP status of this error.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::NoRoute => StatusCode::NOT_FOUND,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::HeaderTooLarge(_) => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Self::BadHost(_) | Self::Body(BodyFailure::Client(_)) => StatusCode::BAD_REQUEST,
            Self::Body(BodyFailure::Idle(_)) => StatusCode::REQUEST_TIMEOUT,
            Self::NoReplica { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            Self::Upstream { .. } => StatusCode::BAD_GATEWAY,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The response the client gets. A client error closes the connection: after a bad
    /// head or body, what follows on it cannot be trusted to be a request.
    pub fn into_response(self) -> Response<Body> {
        let mut builder = Response::builder()
            .status(self.status())
            .header(header::CONTENT_TYPE, "text/plain; charset=utf-8");
        if matches!(self, Self::Unauthorized) {
            builder = builder.header(header::WWW_AUTHENTICATE, "Basic realm=\"flowproxy\"");
        }
        if matches!(
            self,
            Self::HeaderTooLarge(_) | Self::BadHost(_) | Self::Body(_)
        ) {
            builder = builder.header(header::CONNECTION, "close");
        }
        builder
            .body(text_body(format!("{self}\n")))
            .expect("static headers are valid")
    }
}

/// A complete body from text.
pub fn text_body(text: impl Into<Bytes>) -> Body {
    Full::new(text.into())
        .map_err(|never| match never {})
        .boxed()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn each_failure_has_its_status_and_source() {
        let s = |s: &str| s.to_owned();
        let cases = [
            (ProxyError::NoRoute, 404, ErrorSource::Client),
            (
                ProxyError::BadHost(HostError::Missing),
                400,
                ErrorSource::Client,
            ),
            (
                ProxyError::HeaderTooLarge(HeaderTooLarge::Head { size: 2, limit: 1 }),
                431,
                ErrorSource::Client,
            ),
            (
                ProxyError::Body(BodyFailure::Client(s("bad chunk"))),
                400,
                ErrorSource::Client,
            ),
            (
                ProxyError::Body(BodyFailure::Idle(Duration::from_secs(1))),
                408,
                ErrorSource::Client,
            ),
            (
                ProxyError::NoReplica {
                    service: s("a"),
                    reason: s("x"),
                },
                503,
                ErrorSource::Upstream,
            ),
            (
                ProxyError::Timeout { service: s("a") },
                504,
                ErrorSource::Upstream,
            ),
            (
                ProxyError::Upstream {
                    service: s("a"),
                    reason: s("x"),
                },
                502,
                ErrorSource::Upstream,
            ),
            (ProxyError::Internal(s("x")), 500, ErrorSource::Internal),
        ];
        for (error, status, source) in cases {
            assert_eq!(error.status(), status, "{error:?}");
            assert_eq!(error.origin(), source, "{error:?}");
        }
    }

    #[test]
    fn unauthorized_asks_for_basic_credentials() {
        let resp = ProxyError::Unauthorized.into_response();
        assert_eq!(resp.status(), 401);
        assert!(
            resp.headers()[header::WWW_AUTHENTICATE]
                .to_str()
                .unwrap()
                .starts_with("Basic")
        );
    }
}

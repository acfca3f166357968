//! Why a request could not be proxied, and the response each reason gets: a status and a
//! one-line body saying which. Each error records its source (pingora's rule): a client's
//! fault is a 4xx and never counts against a replica; an upstream's is a 5xx. The body is
//! short and generic ([`ProxyError::public_text`]); the details (replica addresses, the HTTP
//! library's wording) are in the `Display` form, for the log only.
use hyper::{Response, StatusCode, header};

use super::{body::BodyFailure, host::HostError, limits::HeaderTooLarge};
use crate::http_body::{Body, text_body};

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
    #[error("no replica of service {service} is reachable: {reason}")]
    NoReplica {
        /// The service.
        service: String,
        /// What went wrong.
        reason: String,
    },
    /// The replica did not answer within `timeoutServer` (504).
    #[error("service {service} did not answer in time")]
    Timeout {
        /// The service.
        service: String,
    },
    /// The connection to the replica failed mid-request, or its answer cannot be relayed (502).
    #[error("service {service} sent no valid answer: {reason}")]
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

    /// What the client is told: one short line without the proxy's insides.
    pub fn public_text(&self) -> String {
        match self {
            Self::NoReplica { service, .. } => {
                format!("no replica of service {service} is reachable")
            }
            Self::Upstream { service, .. } => format!("service {service} sent no valid answer"),
            Self::Internal(_) => "the request could not be forwarded".to_owned(),
            // hyper's wording of the framing error stays in the log.
            Self::Body(BodyFailure::Client(_)) => {
                "the request body is malformed or cut short".to_owned()
            }
            other => other.to_string(),
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
            .body(text_body(format!("{}\n", self.public_text())))
            .expect("static headers are valid")
    }
}

/// `error` and each of its sources, joined by ": " (hyper-util's "client error (Connect)"
/// alone does not say that the connection was refused).
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        let part = e.to_string();
        // Some layers repeat their source's text in their own.
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = e.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use http_body_util::BodyExt as _;

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

    #[tokio::test]
    async fn bodies_are_generic_and_the_details_stay_in_the_display_form() {
        let s = |s: &str| s.to_owned();
        let cases = [
            (
                ProxyError::NoReplica {
                    service: s("go-demo"),
                    reason: s("198.18.0.2:8080: client error (Connect): Connection refused"),
                },
                "no replica of service go-demo is reachable",
            ),
            (
                ProxyError::Upstream {
                    service: s("go-demo"),
                    reason: s("connection reset by 198.18.0.2:8080"),
                },
                "service go-demo sent no valid answer",
            ),
            (
                ProxyError::Internal(s("http://198.18.0.2/x: invalid uri character")),
                "the request could not be forwarded",
            ),
            (
                ProxyError::Body(BodyFailure::Client(s(
                    "error reading a body from connection",
                ))),
                "the request body is malformed or cut short",
            ),
            (
                ProxyError::Timeout {
                    service: s("go-demo"),
                },
                "service go-demo did not answer in time",
            ),
        ];
        for (error, text) in cases {
            let detail = error.to_string();
            assert!(detail.starts_with(text), "{detail}");
            let body = error.into_response().into_body().collect().await.unwrap();
            let body = String::from_utf8(body.to_bytes().to_vec()).unwrap();
            assert_eq!(body, format!("{text}\n"));
            assert!(
                !body.contains("198.18.") && !body.contains("client error"),
                "{body}"
            );
        }
    }

    #[test]
    fn an_error_chain_names_every_source_once() {
        #[derive(Debug, thiserror::Error)]
        #[error("client error (Connect)")]
        struct Outer(#[source] std::io::Error);
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        let text = error_chain(&Outer(refused));
        assert_eq!(text, "client error (Connect): connection refused");
    }
}

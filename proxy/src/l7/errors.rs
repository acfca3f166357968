//! Why a request could not be proxied, and the response each reason gets: a status and a
//! one-line body saying which.
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::{Response, StatusCode, header};

use super::Body;

/// A request the proxy answers itself.
#[derive(Debug)]
pub enum ProxyError {
    /// No route matches host and path (404).
    NoRoute,
    /// Basic auth is required and missing or wrong (401).
    Unauthorized,
    /// The service refuses this request (`denyHttp`, `allowedMethods`, `deniedMethods`): 403.
    Forbidden(&'static str),
    /// The service has no replica that accepts connections (503).
    NoReplica {
        /// The service.
        service: String,
        /// What went wrong.
        reason: String,
    },
    /// The replica did not answer within `timeoutServer` (504).
    Timeout {
        /// The service.
        service: String,
    },
    /// The connection to the replica failed mid-request (502).
    Upstream {
        /// The service.
        service: String,
        /// What went wrong.
        reason: String,
    },
}

impl ProxyError {
    /// The HTTP status of this error.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::NoRoute => StatusCode::NOT_FOUND,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NoReplica { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            Self::Upstream { .. } => StatusCode::BAD_GATEWAY,
        }
    }

    fn message(&self) -> String {
        match self {
            Self::NoRoute => "no route matches this host and path".into(),
            Self::Unauthorized => "authentication required".into(),
            Self::Forbidden(why) => (*why).into(),
            Self::NoReplica { service, reason } => {
                format!("no replica of {service} is reachable: {reason}")
            }
            Self::Timeout { service } => format!("{service} did not answer in time"),
            Self::Upstream { service, reason } => {
                format!("the connection to {service} failed: {reason}")
            }
        }
    }

    /// The response the client gets.
    pub fn into_response(self) -> Response<Body> {
        let mut builder = Response::builder()
            .status(self.status())
            .header(header::CONTENT_TYPE, "text/plain; charset=utf-8");
        if matches!(self, Self::Unauthorized) {
            builder = builder.header(header::WWW_AUTHENTICATE, "Basic realm=\"flowproxy\"");
        }
        builder
            .body(text_body(format!("{}\n", self.message())))
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
    use super::*;

    #[test]
    fn each_failure_has_its_status() {
        let upstream = |s: &str| s.to_owned();
        assert_eq!(ProxyError::NoRoute.status(), 404);
        assert_eq!(
            ProxyError::NoReplica {
                service: upstream("a"),
                reason: upstream("x")
            }
            .status(),
            503
        );
        assert_eq!(
            ProxyError::Timeout {
                service: upstream("a")
            }
            .status(),
            504
        );
        assert_eq!(
            ProxyError::Upstream {
                service: upstream("a"),
                reason: upstream("x")
            }
            .status(),
            502
        );
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

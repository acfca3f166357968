//! The API token (`--api-token`/`API_TOKEN`). Without one the API is open, as Docker Flow
//! Proxy's is. With one, every endpoint that reads or changes the configuration needs it, sent
//! as `Authorization: Bearer <token>` or as a `token` query parameter; health checks and
//! metrics stay open so that Docker's HEALTHCHECK and Prometheus work unchanged.
use std::fmt;

use hyper::{HeaderMap, header};

/// Paths answered without a token: health checks and Prometheus metrics.
pub const OPEN_PATHS: [&str; 4] = [
    "/v1/docker-flow-proxy/ping",
    "/ping",
    "/v1/docker-flow-proxy/successfulinitreload",
    "/metrics",
];

/// Why a request was refused (status 401).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    /// No token came with the request.
    #[error(
        "this API requires a token: send the header 'Authorization: Bearer <API_TOKEN>' or add token=<API_TOKEN> to the query"
    )]
    Missing,
    /// A token came, and it is not the configured one.
    #[error("the API token is wrong: send the value of the proxy's API_TOKEN")]
    Wrong,
}

/// The token every protected request must carry.
#[derive(Clone)]
pub struct ApiToken(String);

impl fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiToken(<redacted>)")
    }
}

impl ApiToken {
    /// The token; surrounding whitespace (a newline at the end of a secret file) is dropped.
    /// An empty token means none.
    pub fn new(token: &str) -> Option<Self> {
        let token = token.trim();
        (!token.is_empty()).then(|| Self(token.to_owned()))
    }

    /// The token's value, for calls to peer replicas.
    pub fn value(&self) -> &str {
        &self.0
    }

    /// Whether a request for `path` with these headers and query may proceed.
    pub fn check(
        &self,
        path: &str,
        headers: &HeaderMap,
        query: &[(String, String)],
    ) -> Result<(), Denied> {
        if OPEN_PATHS.contains(&path) {
            return Ok(());
        }
        let bearer = headers
            .get_all(header::AUTHORIZATION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .filter_map(|v| {
                let (scheme, token) = v.trim().split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
            });
        let from_query = query
            .iter()
            .filter(|(k, _)| k == "token")
            .map(|(_, v)| v.as_str());
        let mut offered = bearer.chain(from_query).peekable();
        if offered.peek().is_none() {
            return Err(Denied::Missing);
        }
        // Every offered token is compared (in constant time), so which one was right leaks
        // nothing either.
        let mut any = false;
        for token in offered {
            any |= constant_time_eq(token.as_bytes(), self.0.as_bytes());
        }
        if any { Ok(()) } else { Err(Denied::Wrong) }
    }
}

/// Compares without an early exit, so the time taken does not tell how much of a guess matched.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;

    fn headers(auth: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(a) = auth {
            h.insert(header::AUTHORIZATION, HeaderValue::from_str(a).unwrap());
        }
        h
    }

    fn query(token: Option<&str>) -> Vec<(String, String)> {
        let mut q = vec![("serviceName".to_owned(), "go-demo".to_owned())];
        if let Some(t) = token {
            q.push(("token".to_owned(), t.to_owned()));
        }
        q
    }

    const PATH: &str = "/v1/docker-flow-proxy/reconfigure";

    #[test]
    fn a_bearer_header_or_a_query_token_is_accepted() {
        let token = ApiToken::new("s3cret").unwrap();
        assert_eq!(
            token.check(PATH, &headers(Some("Bearer s3cret")), &query(None)),
            Ok(())
        );
        assert_eq!(
            token.check(PATH, &headers(Some("bearer  s3cret ")), &query(None)),
            Ok(())
        );
        assert_eq!(
            token.check(PATH, &headers(None), &query(Some("s3cret"))),
            Ok(())
        );
    }

    #[test]
    fn missing_and_wrong_tokens_are_told_apart() {
        let token = ApiToken::new("s3cret").unwrap();
        assert_eq!(
            token.check(PATH, &headers(None), &query(None)),
            Err(Denied::Missing)
        );
        assert_eq!(
            token.check(PATH, &headers(Some("Basic czNjcmV0")), &query(None)),
            Err(Denied::Missing),
            "basic auth carries no bearer token"
        );
        assert_eq!(
            token.check(PATH, &headers(Some("Bearer s3cre")), &query(None)),
            Err(Denied::Wrong)
        );
        assert_eq!(
            token.check(PATH, &headers(None), &query(Some("S3CRET"))),
            Err(Denied::Wrong)
        );
        assert!(
            Denied::Missing
                .to_string()
                .contains("Authorization: Bearer")
        );
    }

    #[test]
    fn health_checks_and_metrics_stay_open() {
        let token = ApiToken::new("s3cret").unwrap();
        for path in OPEN_PATHS {
            assert_eq!(token.check(path, &headers(None), &[]), Ok(()), "{path}");
        }
        assert!(
            token
                .check("/v1/flowproxy/config", &headers(None), &[])
                .is_err()
        );
        assert!(
            token
                .check("/v1/docker-flow-proxy/config", &headers(None), &[])
                .is_err()
        );
    }

    #[test]
    fn an_empty_token_means_none_and_whitespace_is_trimmed() {
        assert!(ApiToken::new("").is_none());
        assert!(ApiToken::new(" \n").is_none());
        assert_eq!(ApiToken::new("abc\n").unwrap().value(), "abc");
        assert!(!format!("{:?}", ApiToken::new("abc").unwrap()).contains("abc"));
    }

    #[test]
    fn comparison_needs_equal_length_and_bytes() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
        assert!(!constant_time_eq(b"", b"a"));
    }
}

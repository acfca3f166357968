//! Which host a request is for (RFC 9112 §3.2, RFC 9113 §8.3.1): the request target's
//! authority when it has one (absolute form, HTTP/2 `:authority`), else the one Host header.
//! A request whose host is ambiguous is refused, so routing, auth and the replica cannot
//! disagree about it.
use http::uri::Authority;
use hyper::{
    HeaderMap, Uri, Version,
    header::{self, HeaderValue},
};

/// Why a request's host was refused (400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostError {
    /// HTTP/1.1 and HTTP/2 requests must name their host.
    #[error("the request has no Host header")]
    Missing,
    /// More than one Host field.
    #[error("the request has {0} Host headers; exactly one is allowed")]
    Repeated(usize),
    /// Not a `host[:port]`.
    #[error("the Host header is not a valid host[:port]")]
    Invalid,
    /// An HTTP/2 request whose Host names another host than `:authority`.
    #[error("the Host header ({host}) differs from :authority ({authority})")]
    Mismatch {
        /// The Host header.
        host: String,
        /// The `:authority`.
        authority: String,
    },
}

/// The host to route by and to forward as Host; `None` only for HTTP/1.0 requests without one.
pub fn request_host(
    version: Version,
    uri: &Uri,
    headers: &HeaderMap,
) -> Result<Option<HeaderValue>, HostError> {
    let mut fields = headers.get_all(header::HOST).iter();
    let field = fields.next();
    let extra = fields.count();
    if extra > 0 {
        return Err(HostError::Repeated(extra + 1));
    }
    if let Some(authority) = uri.authority() {
        let target = without_userinfo(authority)?;
        // In absolute form the target wins and Host is ignored (RFC 9112 §3.2.2); in HTTP/2
        // a different Host makes the request malformed (RFC 9113 §8.3.1).
        if version == Version::HTTP_2
            && let Some(field) = field
            && !field.as_bytes().eq_ignore_ascii_case(target.as_bytes())
        {
            return Err(HostError::Mismatch {
                host: String::from_utf8_lossy(field.as_bytes()).into_owned(),
                authority: target.to_str().unwrap_or("-").to_owned(),
            });
        }
        return Ok(Some(target));
    }
    match field {
        Some(value) => {
            let authority =
                Authority::try_from(value.as_bytes()).map_err(|_| HostError::Invalid)?;
            without_userinfo(&authority).map(Some)
        }
        None if version >= Version::HTTP_11 => Err(HostError::Missing),
        None => Ok(None),
    }
}

/// `host[:port]` of `authority`; a user name in it is refused (RFC 9110 §4.2.4 deprecates it,
/// and it has no place in Host).
fn without_userinfo(authority: &Authority) -> Result<HeaderValue, HostError> {
    if authority.as_str().contains('@') || authority.host().is_empty() {
        return Err(HostError::Invalid);
    }
    HeaderValue::from_str(authority.as_str()).map_err(|_| HostError::Invalid)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(hosts: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for host in hosts {
            h.append(header::HOST, HeaderValue::from_str(host).unwrap());
        }
        h
    }

    fn host(version: Version, uri: &str, hosts: &[&str]) -> Result<Option<String>, HostError> {
        let uri: Uri = uri.parse().unwrap();
        request_host(version, &uri, &headers(hosts))
            .map(|h| h.map(|v| v.to_str().unwrap().to_owned()))
    }

    #[test]
    fn one_host_header_is_the_host() {
        let got = host(Version::HTTP_11, "/x", &["a.test:8000"]);
        assert_eq!(got, Ok(Some("a.test:8000".into())));
    }

    #[test]
    fn a_missing_or_repeated_or_invalid_host_is_refused() {
        assert_eq!(host(Version::HTTP_11, "/x", &[]), Err(HostError::Missing));
        assert_eq!(host(Version::HTTP_10, "/x", &[]), Ok(None));
        assert_eq!(
            host(Version::HTTP_11, "/x", &["a.test", "b.test"]),
            Err(HostError::Repeated(2))
        );
        assert_eq!(
            host(Version::HTTP_11, "/x", &["a b"]),
            Err(HostError::Invalid)
        );
        assert_eq!(
            host(Version::HTTP_11, "/x", &["user@a.test"]),
            Err(HostError::Invalid)
        );
        assert_eq!(host(Version::HTTP_11, "/x", &[""]), Err(HostError::Invalid));
    }

    #[test]
    fn the_absolute_form_wins_over_host() {
        let got = host(Version::HTTP_11, "http://a.test/x", &["b.test"]);
        assert_eq!(got, Ok(Some("a.test".into())));
    }

    #[test]
    fn http2_uses_the_authority_and_refuses_a_different_host() {
        let uri = "https://a.test/x";
        assert_eq!(host(Version::HTTP_2, uri, &[]), Ok(Some("a.test".into())));
        assert_eq!(
            host(Version::HTTP_2, uri, &["A.test"]),
            Ok(Some("a.test".into()))
        );
        assert!(matches!(
            host(Version::HTTP_2, uri, &["b.test"]),
            Err(HostError::Mismatch { .. })
        ));
    }
}

//! The access phase of a request: HTTPS redirects (`httpsOnly`, `HTTPS_ONLY`,
//! `redirectWhenHttpProto`, `redirectUnlessHttpsProto`), `denyHttp`, method filters and basic
//! auth. Each refusal is a [`ProxyError`] with its own status.
use hyper::{HeaderMap, Method};

use super::errors::ProxyError;
use crate::{
    credentials::{Credentials, Verdict},
    routes::{Destination, Service},
};

/// The `X-Forwarded-Proto` a TLS-terminating load balancer in front of us set.
fn forwarded_proto(headers: &HeaderMap) -> Option<&str> {
    headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(',').next().unwrap_or_default().trim())
}

/// Whether a request must be redirected to HTTPS.
///
/// `redirectWhenHttpProto` and `redirectUnlessHttpsProto` read the client's
/// `X-Forwarded-Proto` (set by a load balancer that terminated TLS); over our own TLS the
/// request is already secure.
pub fn redirect_to_https(
    service: &Service,
    dest: &Destination,
    tls: bool,
    https_only: bool,
    believe_forwarded: bool,
    headers: &HeaderMap,
) -> bool {
    if tls {
        return false;
    }
    let proto = forwarded_proto(headers).filter(|_| believe_forwarded);
    dest.https_only
        || https_only
        || (service.redirect_when_http_proto
            && proto.is_some_and(|p| p.eq_ignore_ascii_case("http")))
        || (service.redirect_unless_https_proto
            && !proto.is_some_and(|p| p.eq_ignore_ascii_case("https")))
}

/// Applies `denyHttp`, the method filters and basic auth. `Ok(true)` means credentials
/// were checked, so the `Authorization` header is the proxy's and must not reach the
/// replica (as DFP removes it).
pub fn authorize(
    credentials: &Credentials,
    service: &Service,
    dest: &Destination,
    tls: bool,
    method: &Method,
    headers: &HeaderMap,
) -> Result<bool, ProxyError> {
    if dest.access.deny_http && !tls {
        return Err(ProxyError::Forbidden(
            "this service is served over HTTPS only",
        ));
    }
    if !dest.access.admits(method.as_str()) {
        return Err(ProxyError::Forbidden("this method is not allowed here"));
    }
    match credentials.check(service, dest, headers) {
        Verdict::Open => Ok(false),
        Verdict::Allowed => Ok(true),
        Verdict::Denied => Err(ProxyError::Unauthorized),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routes::parse_reconfigure;

    fn service(extra: &[(&str, &str)]) -> Service {
        let mut q = vec![
            ("serviceName".to_owned(), "app".to_owned()),
            ("servicePath".to_owned(), "/app".to_owned()),
            ("port".to_owned(), "80".to_owned()),
        ];
        q.extend(
            extra
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        parse_reconfigure(&q).unwrap()
    }

    fn proto(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-proto", value.parse().unwrap());
        h
    }

    #[test]
    fn forwarded_proto_redirects() {
        // (service, tls, https_only, believed, headers) -> redirect?
        let check = |svc: &Service, tls, only, believed, h: &HeaderMap| {
            redirect_to_https(svc, &svc.destinations[0], tls, only, believed, h)
        };
        let none = HeaderMap::new();
        let when = service(&[("redirectWhenHttpProto", "true")]);
        assert!(check(&when, false, false, true, &proto("http")));
        assert!(!check(&when, false, false, true, &proto("https")));
        assert!(!check(&when, false, false, true, &none));
        // An untrusted client's header is not believed when a trusted list is set.
        assert!(!check(&when, false, false, false, &proto("http")));
        let unless = service(&[("redirectUnlessHttpsProto", "true")]);
        assert!(check(&unless, false, false, true, &none));
        assert!(!check(&unless, false, false, true, &proto("https")));
        assert!(check(&unless, false, false, false, &proto("https")));
        assert!(!check(&unless, true, false, true, &none));
        let plain = service(&[]);
        assert!(!check(&plain, false, false, true, &proto("http")));
        assert!(check(&plain, false, true, true, &none));
    }

    #[test]
    fn deny_http_and_methods_are_403() {
        let creds = Credentials::new(None, false, "/x".into()).unwrap();
        let svc = service(&[("denyHttp", "true"), ("deniedMethods", "DELETE")]);
        let d = &svc.destinations[0];
        let h = HeaderMap::new();
        let err = authorize(&creds, &svc, d, false, &Method::GET, &h).unwrap_err();
        assert_eq!(err.status(), 403);
        assert_eq!(
            authorize(&creds, &svc, d, true, &Method::GET, &h).ok(),
            Some(false)
        );
        let err = authorize(&creds, &svc, d, true, &Method::DELETE, &h).unwrap_err();
        assert_eq!(err.status(), 403);
        let allowed = service(&[("allowedMethods", "GET")]);
        let d = &allowed.destinations[0];
        assert!(authorize(&creds, &allowed, d, false, &Method::POST, &h).is_err());
        assert!(authorize(&creds, &allowed, d, false, &Method::GET, &h).is_ok());
    }
}

//! How the client's request becomes the replica's and the replica's response the client's:
//! the upstream target, the HTTPS redirect, hop-by-hop headers on the way back and the start
//! of a tunnel after a 101.
use http::uri::PathAndQuery;
use http_body_util::{BodyExt as _, Empty};
use hyper::{Request, Response, StatusCode, Uri, Version, header};

use super::{errors::ProxyError, headers, tunnel};
use crate::{
    http_body::{Body, text_body},
    routes::Destination,
    upstream::UpstreamResponse,
};

/// The redirect of a plain request to the same host, path and query over HTTPS.
pub fn redirect_to_https<B>(
    req: &Request<B>,
    host: Option<&str>,
    port: Option<u16>,
    code: u16,
) -> Response<Body> {
    let host = host.unwrap_or("localhost");
    // Drop the plain port; add the HTTPS one unless it is the default.
    let name = match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    };
    let port = port
        .filter(|p| *p != 443)
        .map(|p| format!(":{p}"))
        .unwrap_or_default();
    let path = req.uri().path_and_query().map_or("/", |pq| pq.as_str());
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::FOUND);
    Response::builder()
        .status(status)
        .header(header::LOCATION, format!("https://{name}{port}{path}"))
        .body(text_body(""))
        .unwrap_or_else(|_| {
            let mut bad = Response::new(text_body("the Host header cannot be redirected\n"));
            *bad.status_mut() = StatusCode::BAD_REQUEST;
            bad
        })
}

/// The path and query to send upstream: the client's own when the route keeps the path
/// (shared, not copied), else the `rewritten` path with the client's query.
pub fn upstream_path(uri: &Uri, rewritten: Option<&str>) -> Result<PathAndQuery, ProxyError> {
    let text = match (rewritten, uri.path_and_query()) {
        (None, Some(original)) => return Ok(original.clone()),
        (None, None) => "/".to_owned(),
        (Some(path), _) => match uri.query() {
            Some(q) => format!("{path}?{q}"),
            None => path.to_owned(),
        },
    };
    PathAndQuery::try_from(text).map_err(|e| ProxyError::Internal(format!("{uri}: {e}")))
}

/// A 301 to `location` (`redirectFromDomain`, as DFP answers it).
pub fn moved_permanently(location: &str) -> Response<Body> {
    Response::builder()
        .status(hyper::StatusCode::MOVED_PERMANENTLY)
        .header(header::LOCATION, location)
        .body(text_body(""))
        .unwrap_or_else(|_| ProxyError::Internal("a bad redirect location".into()).into_response())
}

/// Turns the replica's response into the client's: hop-by-hop headers stay behind, and a 101
/// starts the tunnel, but only for an upgrade the allow-list let through: a replica switching
/// protocols unasked (to h2c, say) would open a tunnel past routing and auth, so that is a 502.
pub fn relay_response(
    mut response: Response<UpstreamResponse>,
    client_upgrade: Option<hyper::upgrade::OnUpgrade>,
    dest: &Destination,
    service: &str,
) -> Result<Response<Body>, ProxyError> {
    if response.status() == StatusCode::SWITCHING_PROTOCOLS {
        let Some(client) = client_upgrade else {
            return Err(ProxyError::Upstream {
                service: service.to_owned(),
                reason: "it switched protocols without an allowed upgrade".to_owned(),
            });
        };
        let upstream = hyper::upgrade::on(&mut response);
        tunnel::spawn(client, upstream, dest.timeout_tunnel, service.to_owned());
        let (parts, _) = response.into_parts();
        let empty = Empty::new().map_err(|never| match never {}).boxed();
        return Ok(Response::from_parts(parts, empty));
    }
    let (mut parts, body) = response.into_parts();
    headers::strip_hop_by_hop(&mut parts.headers, None);
    // The client's connection decides the protocol, not the replica's (which may be HTTP/1.0).
    parts.version = Version::HTTP_11;
    Ok(Response::from_parts(parts, body.boxed()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_upstream_path_keeps_the_query_and_takes_a_rewrite() {
        let uri: Uri = "/demo/x?a=1&b=2".parse().unwrap();
        assert_eq!(upstream_path(&uri, None).unwrap(), "/demo/x?a=1&b=2");
        assert_eq!(upstream_path(&uri, Some("/x")).unwrap(), "/x?a=1&b=2");
        let plain: Uri = "/demo".parse().unwrap();
        assert_eq!(upstream_path(&plain, Some("/")).unwrap(), "/");
        let authority_only: Uri = "example.com:443".parse().unwrap();
        assert_eq!(upstream_path(&authority_only, None).unwrap(), "/");
    }
}

//! Header rules between client and replica: hop-by-hop headers stay on their hop, the
//! X-Forwarded-* headers tell the replica who asked, and Host is preserved.
use std::net::IpAddr;

use hyper::{
    HeaderMap,
    header::{self, HeaderName, HeaderValue},
};

/// Headers that describe one connection, never forwarded (RFC 9110 §7.6.1). Prebuilt names:
/// parsing them from strings on every request showed up in the benchmark's profile.
static HOP_BY_HOP: [HeaderName; 9] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    HeaderName::from_static("proxy-connection"),
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// The `Upgrade` protocol a request asks for (e.g. `websocket`), if it asks for one.
pub fn upgrade_protocol(headers: &HeaderMap) -> Option<HeaderValue> {
    let connection_upgrade = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|token| token.trim().eq_ignore_ascii_case("upgrade"));
    connection_upgrade
        .then(|| headers.get(header::UPGRADE).cloned())
        .flatten()
}

/// Removes hop-by-hop headers, including those the Connection header names. With `upgrade`,
/// the upgrade itself is forwarded (`Connection: upgrade`, `Upgrade: <protocol>`).
pub fn strip_hop_by_hop(headers: &mut HeaderMap, upgrade: Option<HeaderValue>) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in &HOP_BY_HOP {
        headers.remove(name);
    }
    if let Some(protocol) = upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(header::UPGRADE, protocol);
    }
}

/// Adds the client to X-Forwarded-For and sets X-Forwarded-Proto and X-Forwarded-Host.
pub fn add_forwarded(
    headers: &mut HeaderMap,
    client: IpAddr,
    proto: &'static str,
    host: Option<&str>,
) {
    let xff = HeaderName::from_static("x-forwarded-for");
    let chain = match headers.get(&xff).and_then(|v| v.to_str().ok()) {
        Some(previous) => format!("{previous}, {client}"),
        None => client.to_string(),
    };
    if let Ok(value) = HeaderValue::from_str(&chain) {
        headers.insert(xff, value);
    }
    headers.insert(
        HeaderName::from_static("x-forwarded-proto"),
        HeaderValue::from_static(proto),
    );
    if let Some(value) = host.and_then(|h| HeaderValue::from_str(h).ok()) {
        headers.insert(HeaderName::from_static("x-forwarded-host"), value.clone());
        headers.insert(header::HOST, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    #[test]
    fn hop_by_hop_and_connection_named_headers_are_removed() {
        let mut h = map(&[
            ("connection", "keep-alive, x-secret"),
            ("keep-alive", "timeout=5"),
            ("x-secret", "1"),
            ("te", "trailers"),
            ("accept", "*/*"),
        ]);
        strip_hop_by_hop(&mut h, None);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("accept"));
    }

    #[test]
    fn an_upgrade_survives_stripping() {
        let mut h = map(&[("connection", "Upgrade"), ("upgrade", "websocket")]);
        let protocol = upgrade_protocol(&h);
        assert_eq!(protocol.as_ref().unwrap(), "websocket");
        strip_hop_by_hop(&mut h, protocol);
        assert_eq!(h["connection"], "upgrade");
        assert_eq!(h["upgrade"], "websocket");
        assert!(upgrade_protocol(&map(&[("upgrade", "websocket")])).is_none());
    }

    #[test]
    fn forwarded_headers_extend_the_chain_and_keep_the_host() {
        let mut h = map(&[("x-forwarded-for", "203.0.113.9")]);
        add_forwarded(
            &mut h,
            "198.18.0.2".parse().unwrap(),
            "http",
            Some("example.com:8000"),
        );
        assert_eq!(h["x-forwarded-for"], "203.0.113.9, 198.18.0.2");
        assert_eq!(h["x-forwarded-proto"], "http");
        assert_eq!(h["x-forwarded-host"], "example.com:8000");
        assert_eq!(h["host"], "example.com:8000");
    }
}

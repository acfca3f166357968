//! Header rules between client and replica: hop-by-hop headers stay on their hop, the
//! X-Forwarded-* headers tell the replica who asked, and Host is preserved.
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

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

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
    // Most messages carry none or only `Connection`: one pass over the names is cheaper than
    // a hashed removal per hop-by-hop name.
    if upgrade.is_none() && !headers.keys().any(|name| HOP_BY_HOP.contains(name)) {
        return;
    }
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

/// Adds the client (`client`: its IP as text) to X-Forwarded-For and sets X-Forwarded-Proto
/// and X-Forwarded-Host; `host` becomes the Host header.
pub fn add_forwarded(
    headers: &mut HeaderMap,
    client: &HeaderValue,
    proto: &'static str,
    host: Option<&HeaderValue>,
) {
    let chain = match headers.get(&X_FORWARDED_FOR) {
        Some(previous) => {
            let mut chain = Vec::with_capacity(previous.len() + 2 + client.len());
            chain.extend_from_slice(previous.as_bytes());
            chain.extend_from_slice(b", ");
            chain.extend_from_slice(client.as_bytes());
            HeaderValue::from_bytes(&chain).ok()
        }
        None => Some(client.clone()),
    };
    if let Some(value) = chain {
        headers.insert(X_FORWARDED_FOR.clone(), value);
    }
    headers.insert(X_FORWARDED_PROTO.clone(), HeaderValue::from_static(proto));
    if let Some(value) = host {
        headers.insert(X_FORWARDED_HOST.clone(), value.clone());
        headers.insert(header::HOST, value.clone());
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
            &HeaderValue::from_static("198.18.0.2"),
            "http",
            Some(&HeaderValue::from_static("example.com:8000")),
        );
        assert_eq!(h["x-forwarded-for"], "203.0.113.9, 198.18.0.2");
        assert_eq!(h["x-forwarded-proto"], "http");
        assert_eq!(h["x-forwarded-host"], "example.com:8000");
        assert_eq!(h["host"], "example.com:8000");
        let mut first = HeaderMap::new();
        add_forwarded(
            &mut first,
            &HeaderValue::from_static("198.18.0.2"),
            "https",
            None,
        );
        assert_eq!(first["x-forwarded-for"], "198.18.0.2");
        assert_eq!(first["x-forwarded-proto"], "https");
        assert!(!first.contains_key("host"));
    }

    #[test]
    fn messages_without_hop_by_hop_headers_are_left_alone() {
        let mut h = map(&[("accept", "*/*"), ("x-custom", "1")]);
        strip_hop_by_hop(&mut h, None);
        assert_eq!(h.len(), 2);
        let mut h = map(&[("te", "trailers"), ("accept", "*/*")]);
        strip_hop_by_hop(&mut h, None);
        assert_eq!(h.len(), 1);
    }
}

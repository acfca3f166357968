//! Header rules between client and replica: hop-by-hop headers stay on their hop, the
//! X-Forwarded-* headers tell the replica who asked, and Host is preserved.
use hyper::{
    HeaderMap,
    header::{self, HeaderName, HeaderValue},
};

/// Headers that describe one connection, never forwarded (RFC 9110 §7.6.1). Prebuilt names:
/// parsing them from strings on every request showed up in the benchmark's profile.
/// `HTTP2-Settings` belongs to an h2c upgrade of this one connection (RFC 9113 §3.2.1).
static HOP_BY_HOP: [HeaderName; 10] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    HeaderName::from_static("proxy-connection"),
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    HeaderName::from_static("http2-settings"),
];

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// Removes hop-by-hop headers, including those the Connection header names. With `upgrade`,
/// the upgrade itself is forwarded (`Connection: upgrade`, `Upgrade: <protocol>`).
pub fn strip_hop_by_hop(headers: &mut HeaderMap, upgrade: Option<HeaderValue>) {
    // Most messages carry none or only `Connection`: one pass over the names is cheaper than
    // a hashed removal per hop-by-hop name.
    if upgrade.is_none() {
        let mut found = headers.keys().filter(|name| HOP_BY_HOP.contains(name));
        let (first, more) = (found.next(), found.next().is_some());
        match first {
            None => return,
            // The common case of a browser or an HTTP/1.0 client: `Connection: keep-alive`
            // (or `close`) alone names no other header to strip.
            Some(name) if !more && *name == header::CONNECTION && only_persistence(headers) => {
                headers.remove(header::CONNECTION);
                return;
            }
            Some(_) => {}
        }
    }
    let named: Vec<HeaderName> = connection_tokens(headers)
        .filter_map(|name| HeaderName::from_bytes(name.as_bytes()).ok())
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

/// The options the `Connection` fields list (header names, `close`, `keep-alive`, ...).
pub fn connection_tokens(headers: &HeaderMap) -> impl Iterator<Item = &str> {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
}

/// True when the one `Connection` field is just `keep-alive` or `close`.
fn only_persistence(headers: &HeaderMap) -> bool {
    let mut values = headers.get_all(header::CONNECTION).iter();
    match (values.next(), values.next()) {
        (Some(value), None) => {
            let value = value.as_bytes();
            value.eq_ignore_ascii_case(b"keep-alive") || value.eq_ignore_ascii_case(b"close")
        }
        _ => false,
    }
}

/// Joins several `Cookie` fields into one, as the replica's HTTP/1.1 expects. HTTP/2 clients
/// (browsers among them) send each cookie as a field of its own (RFC 9113 §8.2.3), and an
/// HTTP/1.1 server may read only the first field, losing the session's other cookies.
pub fn join_cookies(headers: &mut HeaderMap) {
    let mut fields = headers.get_all(header::COOKIE).iter();
    if fields.next().is_none() || fields.next().is_none() {
        return;
    }
    let joined = join(headers.get_all(header::COOKIE).iter(), b"; ");
    if let Some(value) = joined {
        headers.insert(header::COOKIE, value);
    }
}

/// `values` joined with `separator`; `None` if that is not a valid header value (it always is
/// when each part is, and the separator is plain text).
fn join<'a>(
    values: impl Iterator<Item = &'a HeaderValue>,
    separator: &[u8],
) -> Option<HeaderValue> {
    let mut out = Vec::new();
    for value in values {
        if !out.is_empty() {
            out.extend_from_slice(separator);
        }
        out.extend_from_slice(value.as_bytes());
    }
    HeaderValue::from_bytes(&out).ok()
}

/// Adds the client (`client`: its IP as text) to X-Forwarded-For and sets X-Forwarded-Proto
/// and X-Forwarded-Host; `host` becomes the Host header.
///
/// From a trusted proxy (`--trusted-proxies`), the `X-Forwarded-Proto` and `-Host` it set are
/// kept: it terminated TLS and saw the original host, which this hop cannot know.
pub fn add_forwarded(
    headers: &mut HeaderMap,
    client: &HeaderValue,
    proto: &'static str,
    host: Option<&HeaderValue>,
    trusted: bool,
) {
    // Every earlier hop counts, also when they came as several fields.
    let chain = if headers.contains_key(&X_FORWARDED_FOR) {
        let previous = headers.get_all(&X_FORWARDED_FOR).iter();
        join(previous.chain(std::iter::once(client)), b", ")
    } else {
        Some(client.clone())
    };
    if let Some(value) = chain {
        headers.insert(X_FORWARDED_FOR.clone(), value);
    }
    if !(trusted && headers.contains_key(&X_FORWARDED_PROTO)) {
        headers.insert(X_FORWARDED_PROTO.clone(), HeaderValue::from_static(proto));
    }
    if let Some(value) = host {
        if !(trusted && headers.contains_key(&X_FORWARDED_HOST)) {
            headers.insert(X_FORWARDED_HOST.clone(), value.clone());
        }
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
    fn a_plain_persistence_connection_header_goes_and_nothing_else() {
        for value in ["keep-alive", "Keep-Alive", "close"] {
            let mut h = map(&[("connection", value), ("accept", "*/*")]);
            strip_hop_by_hop(&mut h, None);
            assert_eq!(h.len(), 1, "{value}: {h:?}");
            assert!(h.contains_key("accept"));
        }
        // Not the short cut: a second Connection field names a header to strip.
        let mut h = map(&[
            ("connection", "keep-alive"),
            ("connection", "x-secret"),
            ("x-secret", "1"),
        ]);
        strip_hop_by_hop(&mut h, None);
        assert!(h.is_empty(), "{h:?}");
        // Nor with another hop-by-hop header beside it.
        let mut h = map(&[("connection", "keep-alive"), ("keep-alive", "timeout=5")]);
        strip_hop_by_hop(&mut h, None);
        assert!(h.is_empty(), "{h:?}");
    }

    #[test]
    fn an_upgrade_survives_stripping() {
        let mut h = map(&[("connection", "Upgrade"), ("upgrade", "websocket")]);
        strip_hop_by_hop(&mut h, Some(HeaderValue::from_static("websocket")));
        assert_eq!(h["connection"], "upgrade");
        assert_eq!(h["upgrade"], "websocket");
    }

    #[test]
    fn a_refused_h2c_upgrade_leaves_no_trace() {
        let mut h = map(&[
            ("connection", "Upgrade, HTTP2-Settings"),
            ("upgrade", "h2c"),
            ("http2-settings", "AAMAAABkAARAAAAAAAIAAAAA"),
            ("accept", "*/*"),
        ]);
        strip_hop_by_hop(&mut h, None);
        assert_eq!(h.len(), 1, "{h:?}");
        // Also when Connection does not name it.
        let mut h = map(&[("http2-settings", "AAMAAABkAARAAAAAAAIAAAAA")]);
        strip_hop_by_hop(&mut h, None);
        assert!(h.is_empty());
    }

    #[test]
    fn forwarded_headers_extend_the_chain_and_keep_the_host() {
        let mut h = map(&[("x-forwarded-for", "203.0.113.9")]);
        add_forwarded(
            &mut h,
            &HeaderValue::from_static("198.18.0.2"),
            "http",
            Some(&HeaderValue::from_static("example.com:8000")),
            false,
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
            false,
        );
        assert_eq!(first["x-forwarded-for"], "198.18.0.2");
        assert_eq!(first["x-forwarded-proto"], "https");
        assert!(!first.contains_key("host"));
    }

    #[test]
    fn a_trusted_proxys_proto_and_host_are_kept_and_anyone_elses_replaced() {
        let incoming = || {
            map(&[
                ("x-forwarded-proto", "https"),
                ("x-forwarded-host", "shop.example"),
            ])
        };
        let client = HeaderValue::from_static("198.18.0.2");
        let routed = HeaderValue::from_static("internal:80");
        let mut trusted = incoming();
        add_forwarded(&mut trusted, &client, "http", Some(&routed), true);
        assert_eq!(trusted["x-forwarded-proto"], "https");
        assert_eq!(trusted["x-forwarded-host"], "shop.example");
        assert_eq!(trusted["host"], "internal:80");
        let mut untrusted = incoming();
        add_forwarded(&mut untrusted, &client, "http", Some(&routed), false);
        assert_eq!(untrusted["x-forwarded-proto"], "http");
        assert_eq!(untrusted["x-forwarded-host"], "internal:80");
    }

    #[test]
    fn cookie_fields_are_joined_into_one() {
        let mut h = map(&[("cookie", "a=1"), ("cookie", "b=2"), ("cookie", "c=3")]);
        join_cookies(&mut h);
        let all: Vec<_> = h.get_all(header::COOKIE).iter().collect();
        assert_eq!(all, ["a=1; b=2; c=3"]);
        let mut one = map(&[("cookie", "a=1; b=2")]);
        join_cookies(&mut one);
        assert_eq!(one.get_all(header::COOKIE).iter().count(), 1);
        assert_eq!(one[header::COOKIE], "a=1; b=2");
    }

    #[test]
    fn a_forwarded_chain_in_several_fields_is_kept_whole() {
        let mut h = map(&[
            ("x-forwarded-for", "198.18.0.1"),
            ("x-forwarded-for", "198.18.0.2, 198.18.0.3"),
        ]);
        add_forwarded(
            &mut h,
            &HeaderValue::from_static("198.18.0.9"),
            "http",
            None,
            false,
        );
        let all: Vec<_> = h.get_all(&X_FORWARDED_FOR).iter().collect();
        assert_eq!(all, ["198.18.0.1, 198.18.0.2, 198.18.0.3, 198.18.0.9"]);
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

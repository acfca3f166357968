//! Header rewriting between client and replica, in the order the pipeline applies it
//! (`strip_hop_by_hop`, `join_cookies`, `add_forwarded`): the result is a valid header map
//! with no hop-by-hop header left (but the forwarded upgrade), the headers `Connection`
//! named gone, at most one `Cookie` holding every cookie in order, and exactly the expected
//! X-Forwarded-* and Host values (lists compared by their non-empty elements).
#![no_main]

use arbitrary::Arbitrary;
use flowproxy::l7::headers::{add_forwarded, join_cookies, strip_hop_by_hop};
use http::{HeaderMap, HeaderName, HeaderValue, header};
use libfuzzer_sys::fuzz_target;

/// Names that matter here, so the fuzzer need not guess them.
const NAMES: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "http2-settings",
    "cookie",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "host",
    "x-secret",
    "accept",
];

/// The hop-by-hop ones (RFC 9110 §7.6.1, and h2c's HTTP2-Settings): the first ten names.
const HOP_BY_HOP: &[&str] = NAMES.split_at(10).0;

#[derive(Debug, Arbitrary)]
struct Input {
    headers: Vec<(Name, Vec<u8>)>,
    upgrade: Option<Vec<u8>>,
    client: Vec<u8>,
    https: bool,
    host: Option<Vec<u8>>,
    /// The client is a `--trusted-proxies` one: its forwarded proto and host stand.
    trusted: bool,
}

#[derive(Debug, Arbitrary)]
enum Name {
    Known(u8),
    Raw(Vec<u8>),
}

fn value(bytes: &[u8]) -> Option<HeaderValue> {
    HeaderValue::from_bytes(bytes).ok()
}

fn values(h: &HeaderMap, name: &HeaderName) -> Vec<Vec<u8>> {
    h.get_all(name)
        .iter()
        .map(|v| v.as_bytes().to_vec())
        .collect()
}

/// The elements of a comma- (or, for cookies, semicolon-) separated list: empty ones carry
/// nothing (RFC 9110 §5.6.1), so `add_forwarded` and `join_cookies` may drop them.
fn elements(fields: &[Vec<u8>], separator: u8) -> Vec<Vec<u8>> {
    fields
        .iter()
        .flat_map(|f| f.split(move |&b| b == separator))
        .map(|e| e.trim_ascii().to_vec())
        .filter(|e| !e.is_empty())
        .collect()
}

fuzz_target!(|input: Input| {
    let mut h = HeaderMap::new();
    for (name, v) in input.headers.iter().take(32) {
        let name = match name {
            Name::Known(i) => HeaderName::from_static(NAMES[usize::from(*i) % NAMES.len()]),
            Name::Raw(raw) => match HeaderName::from_bytes(raw) {
                Ok(n) => n,
                Err(_) => continue,
            },
        };
        if let Some(v) = value(v) {
            h.append(name, v);
        }
    }
    let (Some(client), upgrade, host) = (
        value(&input.client),
        input.upgrade.as_deref().and_then(value),
        input.host.as_deref().and_then(value),
    ) else {
        return;
    };
    let proto = if input.https { "https" } else { "http" };
    let before = h.clone();
    // What Connection names (valid names only), as the client sent it.
    let named: Vec<HeaderName> = before
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    let removed = |name: &HeaderName| HOP_BY_HOP.contains(&name.as_str()) || named.contains(name);

    strip_hop_by_hop(&mut h, upgrade.clone());
    for name in HOP_BY_HOP {
        let name = HeaderName::from_static(name);
        let left = values(&h, &name);
        match (&upgrade, name.as_str()) {
            (Some(_), "connection") => assert_eq!(left, [b"upgrade".to_vec()]),
            (Some(p), "upgrade") => assert_eq!(left, [p.as_bytes().to_vec()]),
            _ => assert!(left.is_empty(), "{name} left: {h:?}"),
        }
    }
    for name in &named {
        if upgrade.is_none() || (name != header::CONNECTION && name != header::UPGRADE) {
            assert!(
                !h.contains_key(name),
                "{name} was named by Connection: {h:?}"
            );
        }
    }
    // Everything else is untouched.
    for name in before.keys() {
        if !removed(name) {
            assert_eq!(values(&h, name), values(&before, name), "{name} changed");
        }
    }

    let cookies = values(&h, &header::COOKIE);
    join_cookies(&mut h);
    let after = values(&h, &header::COOKIE);
    if cookies.is_empty() {
        assert!(after.is_empty());
    } else {
        assert_eq!(after.len(), 1, "{after:?}");
        assert_eq!(elements(&after, b';'), elements(&cookies, b';'));
    }

    let xff = HeaderName::from_static("x-forwarded-for");
    let xfh = HeaderName::from_static("x-forwarded-host");
    let mut chain = values(&h, &xff);
    let xfp = HeaderName::from_static("x-forwarded-proto");
    let earlier_hosts = (values(&h, &header::HOST), values(&h, &xfh));
    let earlier_proto = values(&h, &xfp);
    add_forwarded(&mut h, &client, proto, host.as_ref(), input.trusted);
    chain.push(client.as_bytes().to_vec());
    let forwarded = values(&h, &xff);
    assert_eq!(forwarded.len(), 1, "{forwarded:?}");
    assert_eq!(elements(&forwarded, b','), elements(&chain, b','));
    // A trusted proxy's own X-Forwarded-Proto/-Host stand; anyone else's are replaced.
    if input.trusted && !earlier_proto.is_empty() {
        assert_eq!(values(&h, &xfp), earlier_proto);
    } else {
        assert_eq!(values(&h, &xfp), [proto.as_bytes().to_vec()]);
    }
    match &host {
        Some(host) => {
            assert_eq!(values(&h, &header::HOST), [host.as_bytes().to_vec()]);
            if input.trusted && !earlier_hosts.1.is_empty() {
                assert_eq!(values(&h, &xfh), earlier_hosts.1);
            } else {
                assert_eq!(values(&h, &xfh), [host.as_bytes().to_vec()]);
            }
        }
        None => assert_eq!((values(&h, &header::HOST), values(&h, &xfh)), earlier_hosts),
    }
    // Every value is still one a request may carry (HeaderValue::from_bytes accepts it).
    for (name, v) in &h {
        assert!(
            HeaderValue::from_bytes(v.as_bytes()).is_ok(),
            "{name}: {v:?} is not a valid header value"
        );
    }
});

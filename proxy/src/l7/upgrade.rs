//! Which `Upgrade` requests reach a replica. After a 101 the connection is a tunnel that
//! bypasses routing and auth for whatever follows, so only protocols on the allow-list
//! (`--allowed-upgrades`, `websocket` by default) are forwarded; any other (`h2c` above all:
//! it would smuggle requests past the proxy) is dropped and the request goes on as a plain
//! one.
use hyper::{
    HeaderMap,
    header::{self, HeaderValue},
};

/// What a request asked for by `Connection: upgrade` + `Upgrade`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpgradeRequest {
    /// No upgrade.
    None,
    /// These protocols (the allowed ones among those asked for) are forwarded.
    Allowed(HeaderValue),
    /// Nothing asked for is allowed: the upgrade headers are dropped.
    Refused,
}

/// The protocols an upgrade may switch to, lowercase names without versions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpgradeAllowList(Vec<String>);

/// Refused in the allow-list itself: an h2c tunnel would carry requests the proxy never sees.
pub const NEVER_ALLOWED: &str = "h2c";

/// An allow-list naming a protocol that can never be allowed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{NEVER_ALLOWED} upgrades cannot be allowed: the tunnel would bypass routing and auth")]
pub struct NeverAllowed;

impl UpgradeAllowList {
    /// The allow-list of `protocols` (case-insensitive); `h2c` is refused.
    pub fn new<'a>(protocols: impl IntoIterator<Item = &'a str>) -> Result<Self, NeverAllowed> {
        let mut names = Vec::new();
        for protocol in protocols {
            let lower = protocol.trim().to_ascii_lowercase();
            let name = lower.split('/').next().unwrap_or_default().to_owned();
            if name == NEVER_ALLOWED {
                return Err(NeverAllowed);
            }
            if !name.is_empty() {
                names.push(name);
            }
        }
        Ok(Self(names))
    }

    fn allows(&self, protocol: &str) -> bool {
        // `websocket/13` is `websocket`, version aside (RFC 9110 §7.8).
        let name = protocol.split('/').next().unwrap_or(protocol).trim();
        self.0
            .iter()
            .any(|allowed| allowed.eq_ignore_ascii_case(name))
    }
}

impl Default for UpgradeAllowList {
    fn default() -> Self {
        Self(vec!["websocket".to_owned()])
    }
}

/// The upgrade `headers` ask for, judged by `allowed`.
pub fn upgrade_request(headers: &HeaderMap, allowed: &UpgradeAllowList) -> UpgradeRequest {
    let connection_upgrade = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|token| token.trim().eq_ignore_ascii_case("upgrade"));
    if !connection_upgrade {
        return UpgradeRequest::None;
    }
    let asked: Vec<&str> = headers
        .get_all(header::UPGRADE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect();
    if asked.is_empty() {
        return UpgradeRequest::None;
    }
    let kept: Vec<&str> = asked.into_iter().filter(|p| allowed.allows(p)).collect();
    match HeaderValue::from_str(&kept.join(", ")) {
        Ok(value) if !kept.is_empty() => UpgradeRequest::Allowed(value),
        _ => UpgradeRequest::Refused,
    }
}

#[cfg(test)]
mod tests {
    use hyper::header::HeaderName;

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
    fn websocket_is_allowed_and_h2c_is_not() {
        let allowed = UpgradeAllowList::default();
        let ws = map(&[("connection", "Upgrade"), ("upgrade", "WebSocket")]);
        assert_eq!(
            upgrade_request(&ws, &allowed),
            UpgradeRequest::Allowed(HeaderValue::from_static("WebSocket"))
        );
        let h2c = map(&[
            ("connection", "Upgrade, HTTP2-Settings"),
            ("upgrade", "h2c"),
            ("http2-settings", "AAMAAABkAARAAAAAAAIAAAAA"),
        ]);
        assert_eq!(upgrade_request(&h2c, &allowed), UpgradeRequest::Refused);
        let mixed = map(&[("connection", "upgrade"), ("upgrade", "h2c, websocket/13")]);
        assert_eq!(
            upgrade_request(&mixed, &allowed),
            UpgradeRequest::Allowed(HeaderValue::from_static("websocket/13"))
        );
        let no_connection = map(&[("upgrade", "websocket")]);
        assert_eq!(
            upgrade_request(&no_connection, &allowed),
            UpgradeRequest::None
        );
    }

    #[test]
    fn the_allow_list_never_takes_h2c() {
        assert!(UpgradeAllowList::new(["websocket", "H2C"]).is_err());
        let list = UpgradeAllowList::new(["websocket", " TLS/1.2 "]).unwrap();
        assert!(list.allows("tls"));
        assert!(!list.allows("h2c"));
    }
}

//! Sticky sessions (`sessionType=sticky-server`): a cookie pins a client to a replica.
//!
//! Unlike DFP, whose cookie names a server's position (so a rolling update or a scale
//! moves every client), the cookie holds a keyed hash of the replica's address: every proxy
//! replica on every node computes the same value and honours the same cookie, and a pinned
//! replica that is gone or ejected is replaced (and the cookie rewritten) without an error.
use std::net::SocketAddr;

use hyper::{
    HeaderMap,
    header::{self, HeaderValue},
};
use ring::hmac;

use super::ReplicaSet;

/// How a request picks its replica: round robin, or a sticky session's.
pub enum Pick<'a> {
    /// Round robin.
    RoundRobin,
    /// A sticky service: its cookie name and key, and the value the client sent.
    Sticky {
        /// The cookie's name.
        cookie: &'a str,
        /// The key of the replica ids (boxed: it is large, and most services are not sticky).
        key: Box<hmac::Key>,
        /// The replica id the client sent, if any.
        wanted: Option<String>,
    },
}

impl<'a> Pick<'a> {
    /// The pick for a request to a service with `cookie` (`None`: not sticky). `secret`
    /// is mixed into the key so that, when set, addresses cannot be guessed from cookies.
    pub fn new(cookie: Option<&'a str>, service: &str, secret: &[u8], headers: &HeaderMap) -> Self {
        let Some(cookie) = cookie else {
            return Self::RoundRobin;
        };
        let mut material = Vec::with_capacity(service.len() + secret.len() + 1);
        material.extend_from_slice(service.as_bytes());
        material.push(0);
        material.extend_from_slice(secret);
        Self::Sticky {
            cookie,
            key: Box::new(hmac::Key::new(hmac::HMAC_SHA256, &material)),
            wanted: cookie_value(headers, cookie).map(str::to_owned),
        }
    }

    /// The replica to try, given the ones `tried` already.
    pub fn target(
        &self,
        replicas: &ReplicaSet,
        tried: &[SocketAddr],
    ) -> Option<(SocketAddr, http::uri::Authority)> {
        if let Self::Sticky {
            key,
            wanted: Some(wanted),
            ..
        } = self
            && let Some(found) =
                replicas.find_target(tried, |addr| replica_id(key, addr) == *wanted)
        {
            return Some(found);
        }
        replicas.pick_target(tried)
    }

    /// Adds the `Set-Cookie` that pins the client to `replica`, unless its cookie already
    /// does.
    pub fn stamp(&self, headers: &mut HeaderMap, replica: SocketAddr, tls: bool) {
        let Self::Sticky {
            cookie,
            key,
            wanted,
            ..
        } = self
        else {
            return;
        };
        let id = replica_id(key, replica);
        if wanted.as_deref() == Some(id.as_str()) {
            return;
        }
        let secure = if tls { "; Secure" } else { "" };
        let value = format!("{cookie}={id}; Path=/; HttpOnly; SameSite=Lax{secure}");
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.append(header::SET_COOKIE, value);
        }
    }
}

/// A replica's id: the first 16 hex digits of HMAC-SHA256(key, address).
fn replica_id(key: &hmac::Key, addr: SocketAddr) -> String {
    let tag = hmac::sign(key, addr.to_string().as_bytes());
    tag.as_ref()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The value of cookie `name` in the request's `Cookie` fields.
fn cookie_value<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(service: &str) -> hmac::Key {
        match Pick::new(Some("c"), service, b"", &HeaderMap::new()) {
            Pick::Sticky { key, .. } => *key,
            Pick::RoundRobin => unreachable!("a cookie makes it sticky"),
        }
    }

    #[test]
    fn ids_are_stable_per_service_and_differ_per_replica() {
        let a: SocketAddr = "198.18.0.2:8080".parse().unwrap();
        let b: SocketAddr = "198.18.0.3:8080".parse().unwrap();
        assert_eq!(replica_id(&key("web"), a), replica_id(&key("web"), a));
        assert_ne!(replica_id(&key("web"), a), replica_id(&key("web"), b));
        assert_ne!(replica_id(&key("web"), a), replica_id(&key("api"), a));
        assert_eq!(replica_id(&key("web"), a).len(), 16);
        assert!(!replica_id(&key("web"), a).contains("198"));
    }

    #[test]
    fn the_cookie_is_read_from_any_field() {
        let mut h = HeaderMap::new();
        h.append(header::COOKIE, HeaderValue::from_static("a=1; web=abc"));
        h.append(header::COOKIE, HeaderValue::from_static("other=2"));
        assert_eq!(cookie_value(&h, "web"), Some("abc"));
        assert_eq!(cookie_value(&h, "other"), Some("2"));
        assert_eq!(cookie_value(&h, "we"), None);
    }

    #[test]
    fn a_stamp_is_added_only_when_the_pin_changes() {
        let replica: SocketAddr = "198.18.0.2:8080".parse().unwrap();
        let fresh = Pick::new(Some("web"), "web", b"", &HeaderMap::new());
        let mut h = HeaderMap::new();
        fresh.stamp(&mut h, replica, true);
        let set = h[header::SET_COOKIE].to_str().unwrap().to_owned();
        assert!(set.starts_with("web=") && set.contains("HttpOnly"), "{set}");
        assert!(
            set.contains("SameSite=Lax") && set.ends_with("; Secure"),
            "{set}"
        );
        let mut request = HeaderMap::new();
        let pair = set.split(';').next().unwrap();
        request.insert(header::COOKIE, HeaderValue::from_str(pair).unwrap());
        let pinned = Pick::new(Some("web"), "web", b"", &request);
        let mut again = HeaderMap::new();
        pinned.stamp(&mut again, replica, false);
        assert!(again.is_empty());
        let mut plain = HeaderMap::new();
        Pick::RoundRobin.stamp(&mut plain, replica, false);
        assert!(plain.is_empty());
    }
}

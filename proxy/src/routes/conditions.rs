//! A destination's extra routing conditions on request headers: DFP's `serviceHeader`
//! (HAProxy `hdr(Name) value` ACLs, all required) and `userAgent` (one
//! `hdr_sub(User-Agent) -i a b` ACL: any of the texts).
//!
//! A request that does not meet them does not take the destination; the route index then
//! tries the next candidate, as HAProxy goes on to the next `use_backend` line.

use http::HeaderMap;
use http::header::{HeaderName, USER_AGENT};

use super::error::RouteError;
use super::rules::is_token;
use super::values::list_items;

/// The conditions of one destination; empty (the common case) admits every request without
/// looking at its headers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Conditions {
    /// `serviceHeader`: each header must have this exact (case-sensitive) value among its
    /// comma-separated values, as HAProxy's `hdr()` compares.
    pub headers: Vec<(HeaderName, String)>,
    /// `userAgent`, lower-cased: the User-Agent must contain one of them, ignoring case.
    pub user_agents: Vec<String>,
}

impl Conditions {
    /// No condition at all.
    pub fn is_empty(&self) -> bool {
        self.headers.is_empty() && self.user_agents.is_empty()
    }

    /// Whether a request with `headers` meets every condition.
    pub fn admit(&self, headers: &HeaderMap) -> bool {
        self.headers.iter().all(|(name, want)| {
            headers.get_all(name).iter().any(|v| {
                v.as_bytes()
                    .split(|b| *b == b',')
                    .any(|item| item.trim_ascii() == want.as_bytes())
            })
        }) && (self.user_agents.is_empty()
            || headers.get_all(USER_AGENT).iter().any(|ua| {
                let ua = ua.as_bytes().to_ascii_lowercase();
                self.user_agents
                    .iter()
                    .any(|want| contains(&ua, want.as_bytes()))
            }))
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

/// Parses `serviceHeader=Name:value,Name2:value2`. DFP silently drops an item that is not
/// exactly `name:value`; here it is refused, so nothing is half applied.
pub(super) fn parse_service_header(
    param: &str,
    value: &str,
    separator: &str,
) -> Result<Vec<(HeaderName, String)>, RouteError> {
    list_items(value, separator)
        .map(|item| {
            let Some((name, want)) = item.split_once(':').map(|(n, v)| (n.trim(), v.trim())) else {
                return Err(RouteError::invalid(
                    param,
                    item,
                    "write headers as Name:value[,Name2:value2]",
                ));
            };
            let header = HeaderName::from_bytes(name.as_bytes())
                .ok()
                .filter(|_| is_token(name))
                .ok_or_else(|| RouteError::invalid(param, name, "is not a valid header name"))?;
            if want.is_empty() || want.chars().any(char::is_control) {
                return Err(RouteError::invalid(
                    param,
                    item,
                    "give each header a value without control characters",
                ));
            }
            Ok((header, want.to_owned()))
        })
        .collect()
}

/// Parses `userAgent=googlebot,iphone` (lower-cased: HAProxy's `-i`).
pub(super) fn parse_user_agents(
    param: &str,
    value: &str,
    separator: &str,
) -> Result<Vec<String>, RouteError> {
    list_items(value, separator)
        .map(|item| {
            if item.chars().any(char::is_control) || !item.is_ascii() {
                Err(RouteError::invalid(
                    param,
                    item,
                    "must be ASCII text without control characters",
                ))
            } else {
                Ok(item.to_ascii_lowercase())
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(*k, v.parse().unwrap());
        }
        map
    }

    #[test]
    fn every_service_header_must_match_exactly() {
        let c = Conditions {
            headers: parse_service_header("serviceHeader", "X-Version:3, name:viktor", ",")
                .unwrap(),
            user_agents: vec![],
        };
        assert!(c.admit(&headers(&[("x-version", "3"), ("name", "viktor")])));
        assert!(c.admit(&headers(&[("x-version", "2, 3"), ("name", "viktor")])));
        assert!(c.admit(&headers(&[
            ("x-version", "2"),
            ("x-version", "3"),
            ("name", "viktor")
        ])));
        assert!(!c.admit(&headers(&[("x-version", "3")])));
        assert!(!c.admit(&headers(&[("x-version", "33"), ("name", "viktor")])));
        assert!(!c.admit(&headers(&[("x-version", "3"), ("name", "Viktor")])));
        assert!(Conditions::default().admit(&HeaderMap::new()));
    }

    #[test]
    fn user_agents_match_as_substrings_ignoring_case() {
        let c = Conditions {
            headers: vec![],
            user_agents: parse_user_agents("userAgent", "Googlebot,iPhone", ",").unwrap(),
        };
        assert!(c.admit(&headers(&[(
            "user-agent",
            "Mozilla/5.0 (compatible; googlebot/2.1)"
        )])));
        assert!(c.admit(&headers(&[("user-agent", "Mozilla (IPHONE; CPU)")])));
        assert!(!c.admit(&headers(&[("user-agent", "curl/8")])));
        assert!(!c.admit(&HeaderMap::new()));
    }

    #[test]
    fn bad_service_headers_name_the_parameter() {
        for bad in ["X-Version", "Bad Name:1", ":1", "X-A:", "X(A):1"] {
            let err = parse_service_header("serviceHeader.2", bad, ",").unwrap_err();
            assert!(
                err.to_string().starts_with("serviceHeader.2="),
                "{bad}: {err}"
            );
        }
        assert!(parse_user_agents("userAgent", "bot\u{7}", ",").is_err());
    }
}

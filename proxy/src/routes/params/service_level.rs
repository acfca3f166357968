//! Service-level parameters: users, header rules, sticky sessions.

use std::collections::BTreeMap;

use super::{non_empty, separator};
use crate::routes::domain::{ALGO_CHOICES, DomainAlgo, default_domain_algo};
use crate::routes::error::RouteError;
use crate::routes::rules::{HeaderRules, parse_header_names, parse_header_pairs};
use crate::routes::service::BasicUser;
use crate::routes::values::parse_bool;

/// The first of `keys` that is set (DFP reads `addReqHeader` before its `addHeader` alias).
fn first_of<'a>(
    params: &'a BTreeMap<String, String>,
    keys: &[&'a str],
) -> Option<(&'a str, &'a str)> {
    keys.iter()
        .find_map(|k| non_empty(params, k).map(|v| (*k, v)))
}

pub(super) fn header_rules(
    params: &BTreeMap<String, String>,
    add: &[&str],
    set: &[&str],
    del: &str,
) -> Result<HeaderRules, RouteError> {
    let pairs = |keys: &[&str]| match first_of(params, keys) {
        Some((key, value)) => parse_header_pairs(key, value, separator()),
        None => Ok(Vec::new()),
    };
    Ok(HeaderRules {
        add: pairs(add)?,
        set: pairs(set)?,
        del: match non_empty(params, del) {
            Some(value) => parse_header_names(del, value, separator())?,
            None => Vec::new(),
        },
    })
}

/// `sessionType=sticky-server` (the one kind DFP has) with `sessionCookie`, flowproxy's
/// addition, naming the cookie.
pub(super) fn sticky_cookie(
    params: &BTreeMap<String, String>,
    service: &str,
) -> Result<Option<String>, RouteError> {
    let cookie = non_empty(params, "sessionCookie");
    match non_empty(params, "sessionType") {
        None if cookie.is_some() => Err(RouteError::invalid(
            "sessionCookie",
            cookie.unwrap_or_default(),
            "needs sessionType=sticky-server",
        )),
        None => Ok(None),
        Some("sticky-server") => {
            let name = cookie.unwrap_or(service);
            if crate::routes::rules::is_token(name) {
                Ok(Some(name.to_owned()))
            } else {
                Err(RouteError::invalid(
                    "sessionCookie",
                    name,
                    "must be a cookie name (letters, digits, '-', '_')",
                ))
            }
        }
        Some(other) => Err(RouteError::invalid(
            "sessionType",
            other,
            "must be sticky-server, the one kind of sticky session there is",
        )),
    }
}

/// A secret's name becomes part of a file path: no separators, no `..`.
pub(super) fn check_secret_name(name: &str) -> Result<(), RouteError> {
    let ok = name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
        && !name.starts_with('.');
    if ok {
        Ok(())
    } else {
        Err(RouteError::invalid(
            "usersSecret",
            name,
            "must be a Docker secret name suffix (letters, digits, '_', '-', '.'); the file read is /run/secrets/dfp_users_<usersSecret>",
        ))
    }
}

/// Reads `users=u:p,u2:p2`. A user without a password takes it from `usersSecret` or the
/// global `USERS` when the request is checked (`crate::credentials`), as in DFP.
pub(super) fn parse_users(params: &BTreeMap<String, String>) -> Result<Vec<BasicUser>, RouteError> {
    let Some(users) = non_empty(params, "users") else {
        return Ok(Vec::new());
    };
    users
        // DFP splits users on commas and new lines whatever SEPARATOR is.
        .split([',', '\n'])
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .map(|entry| {
            let (user, password) = match entry.split_once(':') {
                Some((user, password)) => (user.trim(), Some(password.trim())),
                None => (entry, None),
            };
            // Error values carry only the user name: messages end up in logs.
            let bad = |reason: &str| RouteError::invalid("users", user, reason);
            if user.is_empty() || password == Some("") {
                Err(bad("write users as user:password[,user2:password2] (or a bare user name to take the password from usersSecret or USERS)"))
            } else if entry.chars().any(char::is_control) || user.contains(char::is_whitespace) {
                Err(bad("remove whitespace and control characters"))
            } else {
                Ok(BasicUser {
                    user: user.to_owned(),
                    password: password.map(str::to_owned),
                })
            }
        })
        .collect()
}

/// `serviceDomainAlgo`, else `SERVICE_DOMAIN_ALGO` (`--service-domain-algo`). DFP's deprecated
/// `serviceDomainMatchAll=true` means `hdr_dom`; with another `serviceDomainAlgo` the two
/// contradict each other and the change is refused (DFP silently takes `hdr_dom`).
pub(super) fn domain_algo(params: &BTreeMap<String, String>) -> Result<DomainAlgo, RouteError> {
    let algo = non_empty(params, "serviceDomainAlgo")
        .map(|v| {
            DomainAlgo::parse(v)
                .ok_or_else(|| RouteError::invalid("serviceDomainAlgo", v, ALGO_CHOICES))
        })
        .transpose()?;
    let match_all = non_empty(params, "serviceDomainMatchAll")
        .map(|v| parse_bool("serviceDomainMatchAll", v))
        .transpose()?
        .unwrap_or(false);
    match (algo, match_all) {
        (Some(a), true) if a != DomainAlgo::HdrDom => Err(RouteError::invalid(
            "serviceDomainMatchAll",
            "true",
            "means serviceDomainAlgo=hdr_dom, which contradicts the serviceDomainAlgo given; remove one",
        )),
        (_, true) => Ok(DomainAlgo::HdrDom),
        (Some(a), false) => Ok(a),
        (None, false) => Ok(default_domain_algo()),
    }
}

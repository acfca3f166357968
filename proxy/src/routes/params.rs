//! Turns `/reconfigure` query parameters into a validated [`Service`].
//!
//! Follows DFP's `GetServiceFromProvider` and `IsValidReconf`: indexed
//! destinations `param.N` (N = 1..=10), unsuffixed values as defaults for
//! every index, empty values treated as absent, and the same order of checks
//! so the same bad request gets the same status.

use std::collections::BTreeMap;

use super::catalog;
use super::error::{MAX_VALUE_LEN, RouteError};
use super::service::Service;
use super::values::{check_name, is_digits, parse_bool, parse_go_bool};

/// DFP's highest destination index.
const MAX_DESTINATIONS: usize = 10;

/// A `.N` on any of these creates destination N (DFP `isServiceDestValid`).
const INDEX_KEYS: [&str; 4] = ["servicePath", "port", "serviceDomain", "httpsPort"];

/// DFP's `SEPARATOR` between the items of a list value (`servicePath`, `serviceDomain`,
/// header rules, methods, ...), set once at start; a comma when never set.
static SEPARATOR: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Sets the list separator (`SEPARATOR`) before any service is parsed, saved ones included:
/// a service's parameters are kept as given, so they are read back with the same separator.
/// An empty separator is refused (nothing could be split on it).
pub fn set_separator(separator: &str) -> Result<(), RouteError> {
    if separator.is_empty() {
        return Err(RouteError::invalid(
            "SEPARATOR",
            separator,
            "must not be empty",
        ));
    }
    let _ = SEPARATOR.set(separator.to_owned());
    Ok(())
}

/// The list separator in force.
fn separator() -> &'static str {
    SEPARATOR.get().map_or(",", String::as_str)
}

/// Parses a reconfigure query; for duplicate keys the first value wins, as in DFP (Go's
/// `url.Values.Get`).
///
/// The returned service keeps its parameters in `params`; every one of them is in
/// [`catalog::CATALOG`] (unknown and refused ones are errors).
pub fn parse_reconfigure(query: &[(String, String)]) -> Result<Service, RouteError> {
    parse_params(query.iter().rev().cloned().collect())
}

/// Parses already-collected parameters, e.g. ones read back from storage.
///
/// `parse_params(service.params.clone())` gives back an equal service.
pub fn parse_params(params: BTreeMap<String, String>) -> Result<Service, RouteError> {
    let name = non_empty(&params, "serviceName").ok_or(RouteError::MissingServiceName)?;
    for (key, value) in &params {
        if key.len() > MAX_VALUE_LEN || value.len() > MAX_VALUE_LEN {
            return Err(RouteError::TooLong {
                param: truncate(key, 64).to_owned(),
            });
        }
    }
    check_name("serviceName", name)?;
    catalog::check(&params)?;
    if non_empty(&params, "serviceCert").is_some() {
        // The API takes it out and stores it as a certificate; anywhere else (labels read
        // from Docker, a listener's list) there is nothing to store it with.
        return Err(RouteError::invalid(
            "serviceCert",
            "...",
            "is applied by the reconfigure API only; upload the certificate with PUT /v1/docker-flow-proxy/cert or mount it as a cert-* secret",
        ));
    }
    let acl_name = match non_empty(&params, "aclName") {
        Some(acl) => {
            check_name("aclName", acl)?;
            acl
        }
        None => name,
    };
    if let Some(replicas) = non_empty(&params, "replicas")
        && (!is_digits(replicas) || replicas.parse::<u32>().is_err())
    {
        return Err(RouteError::invalid(
            "replicas",
            replicas,
            "must be a whole number",
        ));
    }
    let users = parse_users(&params)?;
    let users_secret = non_empty(&params, "usersSecret")
        .map(|s| {
            check_secret_name(s)?;
            Ok::<_, RouteError>(s.to_owned())
        })
        .transpose()?;
    let flag = |key: &str| {
        non_empty(&params, key)
            .map(|v| parse_bool(key, v))
            .transpose()
            .map(Option::unwrap_or_default)
    };
    let users_encrypted = flag("usersPassEncrypted")?;
    let redirect_when_http_proto = flag("redirectWhenHttpProto")?;
    let is_default_backend = flag("isDefaultBackend")?;
    let sticky_cookie = sticky_cookie(&params, name)?;
    let redirect_unless_https_proto = flag("redirectUnlessHttpsProto")?;
    let request_headers = header_rules(
        &params,
        &["addReqHeader", "addHeader"],
        &["setReqHeader", "setHeader"],
        "delReqHeader",
    )?;
    let response_headers = header_rules(
        &params,
        &["addResHeader"],
        &["setResHeader"],
        "delResHeader",
    )?;
    let algo = domain_algo(&params)?;
    let destinations = destination_indexes(&params)?
        .into_iter()
        .map(|index| {
            parse_destination(&Lookup {
                params: &params,
                index,
                algo,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Service {
        name: name.to_owned(),
        acl_name: acl_name.to_owned(),
        destinations,
        users,
        users_secret,
        users_encrypted,
        is_default_backend,
        sticky_cookie,
        redirect_when_http_proto,
        redirect_unless_https_proto,
        request_headers,
        response_headers,
        params,
    })
}

/// Whether the request asks to be fanned out to every proxy replica.
///
/// Absent or unparsable means false, as in DFP.
pub fn distribute_requested(query: &[(String, String)]) -> bool {
    query
        .iter()
        .find(|(k, _)| k == "distribute")
        .and_then(|(_, v)| parse_go_bool(v))
        .unwrap_or(false)
}

fn non_empty<'a>(params: &'a BTreeMap<String, String>, key: &str) -> Option<&'a str> {
    params
        .get(key)
        .map(String::as_str)
        .filter(|v| !v.is_empty())
}

fn truncate(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Finds the destination indexes: `[0]` for an unsuffixed-only request,
/// else `1..=N`. Gaps are an error rather than DFP's silent truncation,
/// because a forgotten `.2` would otherwise drop `.3` without a word.
fn destination_indexes(params: &BTreeMap<String, String>) -> Result<Vec<usize>, RouteError> {
    let mut found: BTreeMap<usize, (&str, &str)> = BTreeMap::new();
    for (key, value) in params.iter().filter(|(_, v)| !v.is_empty()) {
        let Some((base, n)) = key.rsplit_once('.') else {
            continue;
        };
        if !INDEX_KEYS.contains(&base) || !is_digits(n) {
            continue;
        }
        match n.parse::<usize>() {
            Ok(n) if (1..=MAX_DESTINATIONS).contains(&n) => {
                found.entry(n).or_insert((key, value));
            }
            _ => {
                return Err(RouteError::invalid(
                    key,
                    value,
                    "destination indexes run from 1 to 10",
                ));
            }
        }
    }
    if found.is_empty() {
        return Ok(vec![0]);
    }
    for (expected, (&n, &(key, value))) in (1..).zip(&found) {
        if n != expected {
            return Err(RouteError::invalid(
                key,
                value,
                format!(
                    "destination {expected} is missing; number destinations 1, 2, 3... without gaps"
                ),
            ));
        }
    }
    Ok(found.into_keys().collect())
}

mod destination;
mod service_level;

use destination::{Lookup, parse_destination};
use service_level::{check_secret_name, domain_algo, header_rules, parse_users, sticky_cookie};

// Tests live in params/tests.rs to keep this file about the parsing rules.
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_routing;

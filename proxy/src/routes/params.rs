//! Turns `/reconfigure` query parameters into a validated [`Service`].
//!
//! Follows DFP's `GetServiceFromProvider` and `IsValidReconf`: indexed
//! destinations `param.N` (N = 1..=10), unsuffixed values as defaults for
//! every index, empty values treated as absent, and the same order of checks
//! so the same bad request gets the same status.

use std::collections::BTreeMap;

use super::error::{MAX_VALUE_LEN, RouteError};
use super::service::{
    BasicUser, DEFAULT_HTTPS_REDIRECT_CODE, DEFAULT_TIMEOUT_SERVER, DEFAULT_TIMEOUT_TUNNEL,
    Destination, PathType, ReqMode, Service,
};
use super::values::{
    check_token, compile_regex, is_digits, parse_bool, parse_domain, parse_go_bool, parse_port,
    parse_rewrites, parse_secs,
};

/// DFP's highest destination index.
const MAX_DESTINATIONS: usize = 10;

/// A `.N` on any of these creates destination N (DFP `isServiceDestValid`).
const INDEX_KEYS: [&str; 4] = ["servicePath", "port", "serviceDomain", "httpsPort"];

/// DFP's default `SEPARATOR` for list values.
const SEPARATOR: char = ',';

/// Parses a reconfigure query; for duplicate keys the last value wins.
///
/// The returned service keeps every parameter, known or not, in `params`.
pub fn parse_reconfigure(query: &[(String, String)]) -> Result<Service, RouteError> {
    parse_params(query.iter().cloned().collect())
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
    check_token("serviceName", name)?;
    let acl_name = match non_empty(&params, "aclName") {
        Some(acl) => {
            check_token("aclName", acl)?;
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
    let destinations = destination_indexes(&params)?
        .into_iter()
        .map(|index| {
            parse_destination(&Lookup {
                params: &params,
                index,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Service {
        name: name.to_owned(),
        acl_name: acl_name.to_owned(),
        destinations,
        users,
        params,
    })
}

/// Whether the request asks to be fanned out to every proxy replica.
///
/// Absent or unparsable means false, as in DFP.
pub fn distribute_requested(query: &[(String, String)]) -> bool {
    query
        .iter()
        .rev()
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

/// Reads destination parameters for one index, falling back to unsuffixed.
struct Lookup<'a> {
    params: &'a BTreeMap<String, String>,
    index: usize,
}

impl<'a> Lookup<'a> {
    /// The value and the parameter name it came from (for error messages).
    fn get(&self, key: &str) -> Option<(String, &'a str)> {
        if self.index > 0 {
            let indexed = format!("{key}.{}", self.index);
            if let Some(v) = non_empty(self.params, &indexed) {
                return Some((indexed, v));
            }
        }
        non_empty(self.params, key).map(|v| (key.to_owned(), v))
    }

    fn list(&self, key: &str) -> (String, Vec<&'a str>) {
        match self.get(key) {
            Some((param, v)) => (
                param,
                v.split(SEPARATOR).filter(|s| !s.is_empty()).collect(),
            ),
            None => (key.to_owned(), Vec::new()),
        }
    }
}

fn parse_destination(lookup: &Lookup<'_>) -> Result<Destination, RouteError> {
    let req_mode = match lookup.get("reqMode") {
        None => ReqMode::Http,
        Some((_, m)) if m.eq_ignore_ascii_case("http") => ReqMode::Http,
        Some((_, m)) if m.eq_ignore_ascii_case("tcp") => ReqMode::Tcp,
        Some((param, m)) => {
            return Err(RouteError::invalid(
                &param,
                m,
                "must be http or tcp (sni is not supported)",
            ));
        }
    };
    let (path_param, raw_paths) = lookup.list("servicePath");
    let (domain_param, raw_domains) = lookup.list("serviceDomain");
    let port = lookup.get("port");
    let src_port = lookup.get("srcPort");

    // Same order as DFP's IsValidReconf, so statuses match for multi-error requests.
    match req_mode {
        ReqMode::Http if raw_paths.is_empty() && raw_domains.is_empty() => {
            return Err(RouteError::MissingPathOrDomain);
        }
        ReqMode::Tcp if src_port.is_none() || port.is_none() => {
            return Err(RouteError::TcpNeedsPorts);
        }
        _ => {}
    }
    let (port_param, port) = port.ok_or(RouteError::MissingPort)?;
    let port = parse_port(&port_param, port)?;
    let src_port = src_port.map(|(p, v)| parse_port(&p, v)).transpose()?;

    let mut paths = Vec::with_capacity(raw_paths.len().max(1));
    for p in &raw_paths {
        check_token(&path_param, p)?;
        paths.push((*p).to_owned());
    }
    // DFP routes a domain-only http destination as the whole site.
    if paths.is_empty() && req_mode == ReqMode::Http {
        paths.push("/".to_owned());
    }
    let path_type = match lookup.get("pathType") {
        None => PathType::Prefix,
        Some((_, "path_beg")) => PathType::Prefix,
        Some((_, "path")) => PathType::Exact,
        Some((_, "path_reg")) => PathType::Regex(
            paths
                .iter()
                .map(|p| compile_regex(&path_param, p))
                .collect::<Result<_, _>>()?,
        ),
        Some((param, other)) => {
            return Err(RouteError::invalid(
                &param,
                other,
                "must be path_beg, path or path_reg",
            ));
        }
    };
    if !matches!(path_type, PathType::Regex(_))
        && let Some(bad) = paths.iter().find(|p| !p.starts_with('/'))
    {
        return Err(RouteError::invalid(
            &path_param,
            bad,
            "paths must start with '/'",
        ));
    }
    let domains = raw_domains
        .iter()
        .map(|d| parse_domain(&domain_param, d))
        .collect::<Result<Vec<_>, _>>()?;

    Ok(Destination {
        index: lookup.index,
        port,
        paths,
        path_type,
        domains,
        req_mode,
        src_port,
        path_rewrites: parse_path_rewrites(lookup)?,
        timeout_server: optional(lookup, "timeoutServer", parse_secs)?
            .unwrap_or(DEFAULT_TIMEOUT_SERVER),
        timeout_tunnel: optional(lookup, "timeoutTunnel", parse_secs)?
            .unwrap_or(DEFAULT_TIMEOUT_TUNNEL),
        outbound_hostname: optional(lookup, "outboundHostname", |p, v| {
            check_token(p, v).map(|()| v.to_owned())
        })?,
        https_only: optional(lookup, "httpsOnly", parse_bool)?.unwrap_or(false),
        https_redirect_code: optional(lookup, "httpsRedirectCode", parse_redirect_code)?
            .unwrap_or(DEFAULT_HTTPS_REDIRECT_CODE),
    })
}

fn optional<T>(
    lookup: &Lookup<'_>,
    key: &str,
    parse: impl Fn(&str, &str) -> Result<T, RouteError>,
) -> Result<Option<T>, RouteError> {
    lookup
        .get(key)
        .map(|(param, v)| parse(&param, v))
        .transpose()
}

fn parse_redirect_code(param: &str, value: &str) -> Result<u16, RouteError> {
    match value {
        "301" | "302" | "303" | "307" | "308" => {
            Ok(value.parse().unwrap_or(DEFAULT_HTTPS_REDIRECT_CODE))
        }
        _ => Err(RouteError::invalid(
            param,
            value,
            "must be 301, 302, 303, 307 or 308",
        )),
    }
}

/// The deprecated service-level `reqPathSearch`/`reqPathReplace` pair comes
/// first, then `reqPathSearchReplace`, the order DFP emits them in.
fn parse_path_rewrites(lookup: &Lookup<'_>) -> Result<Vec<(regex::Regex, String)>, RouteError> {
    let mut rewrites = Vec::new();
    if let Some(search) = non_empty(lookup.params, "reqPathSearch") {
        let replace = lookup
            .params
            .get("reqPathReplace")
            .map_or("", String::as_str);
        if replace.contains([':', ',']) {
            return Err(RouteError::invalid(
                "reqPathReplace",
                replace,
                "must not contain ':' or ','",
            ));
        }
        if search.contains([':', ',']) {
            return Err(RouteError::invalid(
                "reqPathSearch",
                search,
                "must not contain ':' or ','",
            ));
        }
        rewrites.extend(parse_rewrites(
            "reqPathSearch",
            &format!("{search},{replace}"),
        )?);
    }
    if let Some((param, value)) = lookup.get("reqPathSearchReplace") {
        rewrites.extend(parse_rewrites(&param, value)?);
    }
    Ok(rewrites)
}

/// Reads `users=u:p,u2:p2`. Secrets files and encrypted passwords are refused
/// rather than ignored: ignoring them would publish the service without auth.
fn parse_users(params: &BTreeMap<String, String>) -> Result<Vec<BasicUser>, RouteError> {
    if let Some(secret) = non_empty(params, "usersSecret") {
        return Err(RouteError::invalid(
            "usersSecret",
            secret,
            "secret files are not supported; pass users=user:password instead",
        ));
    }
    if let Some(enc) =
        non_empty(params, "usersPassEncrypted").filter(|v| parse_go_bool(v) == Some(true))
    {
        return Err(RouteError::invalid(
            "usersPassEncrypted",
            enc,
            "encrypted passwords are not supported; pass plain passwords in users",
        ));
    }
    let Some(users) = non_empty(params, "users") else {
        return Ok(Vec::new());
    };
    users
        .split(SEPARATOR)
        .filter(|u| !u.is_empty())
        .map(|entry| {
            let (user, password) = entry.split_once(':').unwrap_or((entry, ""));
            // Error values carry only the user name: messages end up in logs.
            let bad = |reason: &str| RouteError::invalid("users", user, reason);
            if user.is_empty() || password.is_empty() {
                Err(bad("write users as user:password[,user2:password2]"))
            } else if entry.chars().any(char::is_control) || user.contains(char::is_whitespace) {
                Err(bad("remove whitespace and control characters"))
            } else {
                Ok(BasicUser {
                    user: user.to_owned(),
                    password: password.to_owned(),
                })
            }
        })
        .collect()
}

// Tests live in params/tests.rs to keep this file about the parsing rules.
#[cfg(test)]
mod tests;

//! Turns `/reconfigure` query parameters into a validated [`Service`].
//!
//! Follows DFP's `GetServiceFromProvider` and `IsValidReconf`: indexed
//! destinations `param.N` (N = 1..=10), unsuffixed values as defaults for
//! every index, empty values treated as absent, and the same order of checks
//! so the same bad request gets the same status.

use std::collections::BTreeMap;

use super::catalog;
use super::error::{MAX_VALUE_LEN, RouteError};
use super::rules::{HeaderRules, parse_header_names, parse_header_pairs, parse_methods};
use super::service::{
    Access, BasicUser, DEFAULT_HTTPS_REDIRECT_CODE, DEFAULT_TIMEOUT_SERVER, DEFAULT_TIMEOUT_TUNNEL,
    Destination, PathType, ReqMode, Service,
};
use super::values::{
    check_name, check_path, check_token, compile_regex, is_digits, parse_bool, parse_domain,
    parse_go_bool, parse_port, parse_rewrites, parse_secs,
};

/// DFP's highest destination index.
const MAX_DESTINATIONS: usize = 10;

/// A `.N` on any of these creates destination N (DFP `isServiceDestValid`).
const INDEX_KEYS: [&str; 4] = ["servicePath", "port", "serviceDomain", "httpsPort"];

/// DFP's default `SEPARATOR` for list values.
const SEPARATOR: char = ',';

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

/// The first of `keys` that is set (DFP reads `addReqHeader` before its `addHeader` alias).
fn first_of<'a>(
    params: &'a BTreeMap<String, String>,
    keys: &[&'a str],
) -> Option<(&'a str, &'a str)> {
    keys.iter()
        .find_map(|k| non_empty(params, k).map(|v| (*k, v)))
}

fn header_rules(
    params: &BTreeMap<String, String>,
    add: &[&str],
    set: &[&str],
    del: &str,
) -> Result<HeaderRules, RouteError> {
    let pairs = |keys: &[&str]| match first_of(params, keys) {
        Some((key, value)) => parse_header_pairs(key, value, SEPARATOR),
        None => Ok(Vec::new()),
    };
    Ok(HeaderRules {
        add: pairs(add)?,
        set: pairs(set)?,
        del: match non_empty(params, del) {
            Some(value) => parse_header_names(del, value, SEPARATOR)?,
            None => Vec::new(),
        },
    })
}

/// `sessionType=sticky-server` (the one kind DFP has) with `sessionCookie`, flowproxy's
/// addition, naming the cookie.
fn sticky_cookie(
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
            if super::rules::is_token(name) {
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
fn check_secret_name(name: &str) -> Result<(), RouteError> {
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

    let regex_paths = matches!(lookup.get("pathType"), Some((_, "path_reg")));
    let mut paths = Vec::with_capacity(raw_paths.len().max(1));
    for p in &raw_paths {
        if regex_paths {
            check_token(&path_param, p)?;
        } else {
            check_path(&path_param, p)?;
        }
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
    let (redirect_param, raw_redirects) = lookup.list("redirectFromDomain");
    let redirect_from = raw_redirects
        .iter()
        .map(|d| parse_domain(&redirect_param, d))
        .collect::<Result<Vec<_>, _>>()?;
    if let Some(first) = raw_redirects.first()
        && !matches!(
            domains.first(),
            Some(super::service::DomainPattern::Exact(_))
        )
    {
        return Err(RouteError::invalid(
            &redirect_param,
            first,
            "redirects go to the first serviceDomain, which must be a host name such as example.com",
        ));
    }

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
        path_excludes: parse_excludes(lookup)?,
        redirect_from,
        access: Access {
            allowed_methods: optional(lookup, "allowedMethods", |p, v| {
                parse_methods(p, v, SEPARATOR)
            })?
            .unwrap_or_default(),
            denied_methods: optional(lookup, "deniedMethods", |p, v| {
                parse_methods(p, v, SEPARATOR)
            })?
            .unwrap_or_default(),
            deny_http: optional(lookup, "denyHttp", parse_bool)?.unwrap_or(false),
            ignore_authorization: optional(lookup, "ignoreAuthorization", parse_bool)?
                .unwrap_or(false),
        },
    })
}

/// `servicePathExclude`: path prefixes, each starting with `/`.
fn parse_excludes(lookup: &Lookup<'_>) -> Result<Vec<String>, RouteError> {
    let (param, items) = lookup.list("servicePathExclude");
    items
        .into_iter()
        .map(|p| {
            check_path(&param, p)?;
            if p.starts_with('/') {
                Ok(p.to_owned())
            } else {
                Err(RouteError::invalid(&param, p, "paths must start with '/'"))
            }
        })
        .collect()
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

/// Reads `users=u:p,u2:p2`. A user without a password takes it from `usersSecret` or the
/// global `USERS` when the request is checked (`crate::credentials`), as in DFP.
fn parse_users(params: &BTreeMap<String, String>) -> Result<Vec<BasicUser>, RouteError> {
    let Some(users) = non_empty(params, "users") else {
        return Ok(Vec::new());
    };
    users
        .split(SEPARATOR)
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

// Tests live in params/tests.rs to keep this file about the parsing rules.
#[cfg(test)]
mod tests;

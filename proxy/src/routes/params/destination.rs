//! Destination-level parameters (`name` or `name.N`): one [`Destination`] per index.

use std::collections::BTreeMap;

use super::{non_empty, separator};
use crate::routes::conditions::{Conditions, parse_service_header, parse_user_agents};
use crate::routes::domain::DomainAlgo;
use crate::routes::error::RouteError;
use crate::routes::rules::parse_methods;
use crate::routes::service::{
    Access, DEFAULT_HTTPS_REDIRECT_CODE, Destination, PathType, ReqMode, default_timeouts,
};
use crate::routes::values::{
    check_path, check_token, compile_regex, parse_bool, parse_domain, parse_port, parse_rewrites,
    parse_secs,
};

/// Reads destination parameters for one index, falling back to unsuffixed.
pub(super) struct Lookup<'a> {
    pub(super) params: &'a BTreeMap<String, String>,
    pub(super) index: usize,
    /// How this service's domains without `*` match.
    pub(super) algo: DomainAlgo,
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
                v.split(separator()).filter(|s| !s.is_empty()).collect(),
            ),
            None => (key.to_owned(), Vec::new()),
        }
    }
}

pub(super) fn parse_destination(lookup: &Lookup<'_>) -> Result<Destination, RouteError> {
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
        .map(|d| parse_domain(&domain_param, d, lookup.algo))
        .collect::<Result<Vec<_>, _>>()?;
    let (redirect_param, raw_redirects) = lookup.list("redirectFromDomain");
    let redirect_from = raw_redirects
        .iter()
        .map(|d| parse_domain(&redirect_param, d, DomainAlgo::Hdr))
        .collect::<Result<Vec<_>, _>>()?;
    if let Some(first) = raw_redirects.first()
        && domains.first().and_then(|d| d.host_name()).is_none()
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
            .unwrap_or(default_timeouts().server),
        timeout_tunnel: optional(lookup, "timeoutTunnel", parse_secs)?
            .unwrap_or(default_timeouts().tunnel),
        timeout_client: optional(lookup, "timeoutClient", parse_secs)?,
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
                parse_methods(p, v, separator())
            })?
            .unwrap_or_default(),
            denied_methods: optional(lookup, "deniedMethods", |p, v| {
                parse_methods(p, v, separator())
            })?
            .unwrap_or_default(),
            deny_http: optional(lookup, "denyHttp", parse_bool)?.unwrap_or(false),
            ignore_authorization: optional(lookup, "ignoreAuthorization", parse_bool)?
                .unwrap_or(false),
        },
        conditions: Conditions {
            headers: optional(lookup, "serviceHeader", |p, v| {
                parse_service_header(p, v, separator())
            })?
            .unwrap_or_default(),
            user_agents: optional(lookup, "userAgent", |p, v| {
                parse_user_agents(p, v, separator())
            })?
            .unwrap_or_default(),
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

//! The route table: an immutable snapshot of every service and the index
//! that answers "which destination serves this host and path?".
//!
//! Tables are built, checked for conflicts, then swapped in by the caller;
//! nothing here mutates a table, so readers never need a lock.

use std::borrow::Cow;
use std::cmp::Reverse;
use std::collections::{BTreeMap, HashMap};

use regex::Regex;

use super::error::RouteError;
use super::service::{Destination, DomainPattern, PathType, ReqMode, Service};

/// An immutable, validated set of services with a precomputed HTTP index.
#[derive(Debug, Clone, Default)]
pub struct RouteTable {
    services: BTreeMap<String, Service>,
    /// HTTP routes, best match first; lookup takes the first that matches.
    routes: Vec<Route>,
}

/// The result of an HTTP lookup.
#[derive(Debug, Clone, PartialEq)]
pub struct RouteMatch<'a> {
    /// The service that owns the route.
    pub service: &'a Service,
    /// The destination that matched.
    pub destination: &'a Destination,
    /// The path to send upstream, after `reqPathSearchReplace`.
    pub path: Cow<'a, str>,
}

/// One (host pattern, path pattern) pair of one destination.
#[derive(Debug, Clone)]
struct Route {
    /// Key into `RouteTable::services`.
    service: String,
    /// Position in the service's `destinations`.
    dest: usize,
    host: Option<DomainPattern>,
    path: PathMatch,
}

#[derive(Debug, Clone)]
enum PathMatch {
    Exact(String),
    Prefix(String),
    Regex(Regex),
}

impl RouteTable {
    /// Validates that no route is claimed by two services and indexes them.
    ///
    /// When two services clash, the one whose name sorts first is reported
    /// as the owner; [`RouteTable::with_service`] names the real newcomer.
    pub fn build(services: BTreeMap<String, Service>) -> Result<RouteTable, RouteError> {
        check_conflicts(services.iter())?;
        Ok(Self::index(services))
    }

    /// A new table with `service` added, or replacing the one of that name.
    ///
    /// On a conflict the error names the existing owner; `self` is untouched.
    pub fn with_service(&self, service: Service) -> Result<RouteTable, RouteError> {
        let name = service.name.clone();
        let mut services = self.services.clone();
        services.insert(name.clone(), service);
        let others = services.iter().filter(|(k, _)| **k != name);
        check_conflicts(others.chain(services.get_key_value(&name)))?;
        Ok(Self::index(services))
    }

    /// A new table without the service `name`, and whether it was there.
    pub fn without_service(&self, name: &str) -> (RouteTable, bool) {
        let mut services = self.services.clone();
        let removed = services.remove(name).is_some();
        // Removing routes cannot create a conflict, so no check is needed.
        (Self::index(services), removed)
    }

    /// All services, by name.
    pub fn services(&self) -> &BTreeMap<String, Service> {
        &self.services
    }

    /// Finds the HTTP destination for a request.
    ///
    /// `host` is the raw Host header (any case, optional `:port`); `path` is
    /// the request path without the query string. The most specific route
    /// wins: longest pattern first; at equal length a route for the exact
    /// host beats a wildcard one, which beats a route for any host; then
    /// exact beats prefix beats regex.
    pub fn lookup<'a>(&'a self, host: Option<&str>, path: &'a str) -> Option<RouteMatch<'a>> {
        let host = host.and_then(normalize_host);
        let route = self
            .routes
            .iter()
            .find(|r| r.matches(host.as_deref(), path))?;
        let service = self.services.get(&route.service)?;
        let destination = service.destinations.get(route.dest)?;
        let path = match destination.rewrite_path(path) {
            Some(rewritten) => Cow::Owned(rewritten),
            None => Cow::Borrowed(path),
        };
        Some(RouteMatch {
            service,
            destination,
            path,
        })
    }

    /// Every tcp destination with its service, ordered by service name.
    pub fn tcp_services(&self) -> impl Iterator<Item = (&Service, &Destination)> + '_ {
        self.services.values().flat_map(|s| {
            s.destinations
                .iter()
                .filter(|d| d.req_mode == ReqMode::Tcp)
                .map(move |d| (s, d))
        })
    }

    fn index(services: BTreeMap<String, Service>) -> RouteTable {
        // Service name and positions break ties, so the order is deterministic.
        let mut ranked = Vec::new();
        for (key, svc) in &services {
            for (pos, dest) in svc.destinations.iter().enumerate() {
                for (route, path_idx) in routes_of(key, pos, dest) {
                    ranked.push(((Rank::of(&route), key, pos, path_idx), route));
                }
            }
        }
        ranked.sort_by(|a, b| a.0.cmp(&b.0));
        let routes = ranked.into_iter().map(|(_, r)| r).collect();
        RouteTable { services, routes }
    }
}

/// How specific a route is; smaller sorts first and wins.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Rank {
    /// Pattern length (a regex counts its source text).
    len: Reverse<usize>,
    /// Exact host (2) over wildcard (1) over any host (0), then suffix length.
    host: Reverse<(u8, usize)>,
    /// Exact (2) over prefix (1) over regex (0).
    kind: Reverse<u8>,
}

impl Rank {
    fn of(route: &Route) -> Rank {
        let (len, kind) = match &route.path {
            PathMatch::Exact(p) => (p.len(), 2),
            PathMatch::Prefix(p) => (p.len(), 1),
            PathMatch::Regex(r) => (r.as_str().len(), 0),
        };
        let host = match &route.host {
            Some(DomainPattern::Exact(d)) => (2, d.len()),
            Some(DomainPattern::Wildcard(s)) => (1, s.len()),
            None => (0, 0),
        };
        Rank {
            len: Reverse(len),
            host: Reverse(host),
            kind: Reverse(kind),
        }
    }
}

/// Expands an HTTP destination into one route per (path, domain) pair, so
/// that each can be ranked on its own. Returns the path's position too.
fn routes_of(service: &str, dest_pos: usize, dest: &Destination) -> Vec<(Route, usize)> {
    if dest.req_mode != ReqMode::Http {
        return Vec::new();
    }
    let hosts: Vec<Option<DomainPattern>> = if dest.domains.is_empty() {
        vec![None]
    } else {
        dest.domains.iter().cloned().map(Some).collect()
    };
    let mut out = Vec::with_capacity(hosts.len() * dest.paths.len());
    for (path_idx, path) in dest.paths.iter().enumerate() {
        let matcher = match &dest.path_type {
            PathType::Prefix => PathMatch::Prefix(path.clone()),
            PathType::Exact => PathMatch::Exact(path.clone()),
            // parse keeps one compiled regex per path, in the same order.
            PathType::Regex(res) => match res.get(path_idx) {
                Some(re) => PathMatch::Regex(re.clone()),
                None => continue,
            },
        };
        for host in &hosts {
            let route = Route {
                service: service.to_owned(),
                dest: dest_pos,
                host: host.clone(),
                path: matcher.clone(),
            };
            out.push((route, path_idx));
        }
    }
    out
}

impl Route {
    fn matches(&self, host: Option<&str>, path: &str) -> bool {
        let host_ok = match &self.host {
            None => true,
            Some(pattern) => host.is_some_and(|h| pattern.matches(h)),
        };
        host_ok
            && match &self.path {
                PathMatch::Exact(p) => path == p,
                PathMatch::Prefix(p) => path.starts_with(p.as_str()),
                PathMatch::Regex(r) => r.is_match(path),
            }
    }

    /// Human-readable route for conflict messages, e.g. `path_beg /demo on any host`.
    fn describe(&self) -> String {
        let (kind, pattern) = match &self.path {
            PathMatch::Exact(p) => ("path", p.as_str()),
            PathMatch::Prefix(p) => ("path_beg", p.as_str()),
            PathMatch::Regex(r) => ("path_reg", r.as_str()),
        };
        match &self.host {
            None => format!("{kind} {pattern} on any host"),
            Some(h) => format!("{kind} {pattern} on host {h}"),
        }
    }
}

/// Rejects a route (or tcp `srcPort`) that two services claim. Services are
/// visited in the given order, so the earlier one is named as the owner.
/// Duplicates inside one service are allowed: its first destination wins.
fn check_conflicts<'a>(
    services: impl Iterator<Item = (&'a String, &'a Service)>,
) -> Result<(), RouteError> {
    let mut http_owners: HashMap<String, &str> = HashMap::new();
    let mut tcp_owners: HashMap<u16, &str> = HashMap::new();
    for (key, svc) in services {
        for (pos, dest) in svc.destinations.iter().enumerate() {
            for (route, _) in routes_of(key, pos, dest) {
                let described = route.describe();
                let owner = *http_owners.entry(described.clone()).or_insert(key);
                if owner != key {
                    return Err(conflict(described, owner, key));
                }
            }
            if let (ReqMode::Tcp, Some(src)) = (dest.req_mode, dest.src_port) {
                let owner = *tcp_owners.entry(src).or_insert(key);
                if owner != key {
                    return Err(conflict(format!("tcp srcPort {src}"), owner, key));
                }
            }
        }
    }
    Ok(())
}

fn conflict(route: String, owner: &str, service: &str) -> RouteError {
    RouteError::Conflict {
        route,
        owner: owner.to_owned(),
        service: service.to_owned(),
    }
}

/// Lower-cases the Host header and strips its port and trailing dot, the
/// same normalisation `serviceDomain` values get at parse time.
fn normalize_host(raw: &str) -> Option<Cow<'_, str>> {
    let raw = raw.trim();
    let host = if raw.starts_with('[') {
        // IPv6 literal: keep the brackets, drop what follows them.
        raw.find(']').map_or(raw, |end| &raw[..=end])
    } else {
        match raw.rsplit_once(':') {
            Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
            _ => raw,
        }
    };
    let host = host.strip_suffix('.').unwrap_or(host);
    if host.is_empty() {
        None
    } else if host.bytes().any(|b| b.is_ascii_uppercase()) {
        Some(Cow::Owned(host.to_ascii_lowercase()))
    } else {
        Some(Cow::Borrowed(host))
    }
}

// Tests live in table/tests.rs to keep this file about the table itself.
#[cfg(test)]
mod tests;

//! The route table: an immutable snapshot of every service and the index
//! that answers "which destination serves this host and path?".
//!
//! Tables are built, checked for conflicts, then swapped in by the caller;
//! nothing here mutates a table, so readers never need a lock.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;

use http::HeaderMap;
use imbl::OrdMap;
use regex::Regex;

use super::error::RouteError;
use super::service::{Destination, DomainPattern, PathType, ReqMode, Service};

mod index;
#[cfg(any(test, fuzzing))]
pub mod reference;

use index::{Kind, RouteIndex, Target};

/// An immutable, validated set of services with a precomputed HTTP index.
///
/// Cloning is cheap and a change costs O(log n): the maps are persistent, so the next table
/// shares everything it did not change with the current one.
#[derive(Debug, Clone, Default)]
pub struct RouteTable {
    services: OrdMap<String, Arc<Service>>,
    /// HTTP routes by host and path.
    index: RouteIndex,
    /// TCP destinations by `srcPort`: (service, destination position).
    tcp: OrdMap<u16, (Arc<Service>, usize)>,
    /// The `isDefaultBackend` service: requests no route takes go to it.
    default: Option<Arc<Service>>,
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
    /// Set when the host is one of the destination's `redirectFromDomain`s: the host to
    /// redirect to (its first `serviceDomain`).
    pub redirect_to: Option<&'a str>,
}

/// One (host pattern, path pattern) pair of one destination.
struct Route<'a> {
    host: Option<&'a DomainPattern>,
    kind: Kind,
    pattern: &'a str,
    regex: Option<&'a Regex>,
    path_idx: usize,
}

impl RouteTable {
    /// Indexes the services, refusing two default backends or two tcp destinations on one
    /// `srcPort`.
    ///
    /// When two services clash, the one whose name sorts first is reported
    /// as the owner; [`RouteTable::with_service`] names the real newcomer.
    pub fn build(services: BTreeMap<String, Service>) -> Result<RouteTable, RouteError> {
        let mut table = RouteTable::default();
        for service in services.into_values() {
            table.add(Arc::new(service))?;
        }
        Ok(table)
    }

    /// A new table with `service` added, or replacing the one of that name.
    ///
    /// On a conflict the error names the existing owner; `self` is untouched.
    pub fn with_service(&self, service: Service) -> Result<RouteTable, RouteError> {
        let mut next = self.clone();
        if let Some(old) = next.services.get(&service.name).cloned() {
            next.unindex(&old);
        }
        next.add(Arc::new(service))?;
        Ok(next)
    }

    /// A new table without the service `name`, and whether it was there.
    pub fn without_service(&self, name: &str) -> (RouteTable, bool) {
        let mut next = self.clone();
        let Some(old) = next.services.remove(name) else {
            return (next, false);
        };
        // Removing routes cannot create a conflict, so no check is needed.
        next.unindex(&old);
        (next, true)
    }

    /// All services, by name.
    pub fn services(&self) -> &OrdMap<String, Arc<Service>> {
        &self.services
    }

    /// Finds the HTTP destination for a request.
    ///
    /// `host` is the raw Host header (any case, optional `:port`); `path` is
    /// the request path without the query string; `headers` are read only for destinations
    /// with `serviceHeader` or `userAgent`. The most specific route wins: longest pattern
    /// first; at equal length a route for the exact host beats a domain pattern (longer
    /// first; then `*`/hdr_end, hdr_beg, hdr_dom), which beats a route for any host; then
    /// exact beats prefix beats regex. Routes that tie on all of that (several services or
    /// destinations on one path and domain, or regexes of one length) are tried in DFP's
    /// order (`/.well-known` paths first, `/`-only destinations last, else by `aclName`,
    /// service name, destination and path position): the first whose conditions the request
    /// meets wins, and one without conditions hides those after it.
    /// A request no route takes goes to the `isDefaultBackend` service, if there is one.
    pub fn lookup<'a>(
        &'a self,
        host: Option<&str>,
        path: &'a str,
        headers: &HeaderMap,
    ) -> Option<RouteMatch<'a>> {
        let host = host.and_then(normalize_host);
        let (service, destination) = match self.index.lookup(host.as_deref(), path, headers) {
            Some(target) => {
                let service = &*target.service;
                (service, service.destinations.get(target.dest)?)
            }
            None => {
                let service = self.default.as_deref()?;
                let dest = service
                    .destinations
                    .iter()
                    .find(|d| d.req_mode == ReqMode::Http)?;
                (service, dest)
            }
        };
        let path = match destination.rewrite_path(path) {
            Some(rewritten) => Cow::Owned(rewritten),
            None => Cow::Borrowed(path),
        };
        let redirect_to = host.as_deref().and_then(|h| {
            let redirected = destination.redirect_from.iter().any(|d| d.matches(h))
                && !destination.domains.iter().any(|d| d.matches(h));
            match destination.domains.first().and_then(|d| d.host_name()) {
                Some(to) if redirected => Some(to),
                _ => None,
            }
        });
        Some(RouteMatch {
            service,
            destination,
            path,
            redirect_to,
        })
    }

    /// Every tcp destination with its service, ordered by service name.
    pub fn tcp_services(&self) -> impl Iterator<Item = (&Service, &Destination)> + '_ {
        self.services.values().flat_map(|s| {
            s.destinations
                .iter()
                .filter(|d| d.req_mode == ReqMode::Tcp)
                .map(move |d| (&**s, d))
        })
    }

    /// The `srcPort`s of the tcp destinations, in order (without visiting every service).
    pub fn tcp_ports(&self) -> impl Iterator<Item = u16> + '_ {
        self.tcp.keys().copied()
    }

    /// The tcp destination listening on `port`, with its service.
    pub fn tcp_service(&self, port: u16) -> Option<(&Service, &Destination)> {
        let (service, dest) = self.tcp.get(&port)?;
        Some((&**service, service.destinations.get(*dest)?))
    }

    /// Indexes `service`, refusing a `srcPort` another service owns or a second default
    /// backend. HTTP routes never clash: several services (or destinations) on one route are
    /// all kept, as candidates tried in DFP's order (see [`RouteTable::lookup`]).
    fn add(&mut self, service: Arc<Service>) -> Result<(), RouteError> {
        if service.is_default_backend {
            match &self.default {
                Some(owner) if owner.name != service.name => {
                    return Err(conflict(
                        "the default backend (isDefaultBackend)".to_owned(),
                        &owner.name,
                        &service.name,
                    ));
                }
                _ => self.default = Some(Arc::clone(&service)),
            }
        }
        // Check the ports before touching the index, so a refused service leaves no routes.
        for dest in &service.destinations {
            if let (ReqMode::Tcp, Some(src)) = (dest.req_mode, dest.src_port)
                && let Some((owner, _)) = self.tcp.get(&src)
                && owner.name != service.name
            {
                return Err(conflict(
                    format!("tcp srcPort {src}"),
                    &owner.name,
                    &service.name,
                ));
            }
        }
        for (pos, dest) in service.destinations.iter().enumerate() {
            for route in routes_of(dest) {
                self.index.insert(
                    route.host,
                    route.kind,
                    route.pattern,
                    route.regex,
                    Target {
                        service: Arc::clone(&service),
                        dest: pos,
                        path_idx: route.path_idx,
                    },
                );
            }
            if let (ReqMode::Tcp, Some(src)) = (dest.req_mode, dest.src_port)
                && !self.tcp.contains_key(&src)
            {
                self.tcp.insert(src, (Arc::clone(&service), pos));
            }
        }
        self.services.insert(service.name.clone(), service);
        Ok(())
    }

    /// Drops `service`'s routes and ports from the indexes (not from `services`).
    fn unindex(&mut self, service: &Service) {
        if self
            .default
            .as_ref()
            .is_some_and(|d| d.name == service.name)
        {
            self.default = None;
        }
        for dest in &service.destinations {
            for route in routes_of(dest) {
                self.index
                    .remove(route.host, route.kind, route.pattern, &service.name);
            }
            if let Some(src) = dest.src_port
                && self
                    .tcp
                    .get(&src)
                    .is_some_and(|(s, _)| s.name == service.name)
            {
                self.tcp.remove(&src);
            }
        }
    }
}

/// Expands an HTTP destination into one route per (path, domain) pair, paths outer.
fn routes_of(dest: &Destination) -> Vec<Route<'_>> {
    if dest.req_mode != ReqMode::Http {
        return Vec::new();
    }
    let hosts: Vec<Option<&DomainPattern>> = if dest.domains.is_empty() {
        vec![None]
    } else {
        // Redirected hosts are routed here too, so that the redirect is this service's.
        dest.domains
            .iter()
            .chain(&dest.redirect_from)
            .map(Some)
            .collect()
    };
    let mut out = Vec::with_capacity(hosts.len() * dest.paths.len());
    for (path_idx, path) in dest.paths.iter().enumerate() {
        let (kind, pattern, regex) = match &dest.path_type {
            PathType::Prefix => (Kind::Prefix, path.as_str(), None),
            PathType::Exact => (Kind::Exact, path.as_str(), None),
            // parse keeps one compiled regex per path, in the same order.
            PathType::Regex(res) => match res.get(path_idx) {
                Some(re) => (Kind::Regex, re.as_str(), Some(re)),
                None => continue,
            },
        };
        for host in &hosts {
            out.push(Route {
                host: *host,
                kind,
                pattern,
                regex,
                path_idx,
            });
        }
    }
    out
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
#[cfg(test)]
mod tests_reference;
#[cfg(test)]
mod tests_routing;

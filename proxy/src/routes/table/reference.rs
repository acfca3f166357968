//! The slow model of [`RouteTable::lookup`]: every route of every service scanned in the rank
//! order `lookup` documents. The unit tests and the `route_lookup` fuzz target check that the
//! index answers exactly as this scan does; it is compiled only for them.

use std::cmp::Reverse;

use http::HeaderMap;

use super::index::Kind;
use super::{RouteTable, normalize_host, routes_of};
use crate::routes::service::{Destination, DomainPattern, ReqMode, Service};

/// The service and destination a request for `host`, `path` and `headers` goes to, found by a
/// scan.
///
/// Every route of every destination is a candidate: one matches when its host pattern, path
/// pattern, `servicePathExclude` and conditions (`serviceHeader`, `userAgent`) all let the
/// request in; the smallest rank wins (length, host, kind, then DFP's order of group,
/// `aclName`, service, destination and path position, then host and path pattern text). With
/// no match the `isDefaultBackend` service's first HTTP destination answers.
pub fn lookup<'a>(
    t: &'a RouteTable,
    host: Option<&str>,
    path: &str,
    headers: &HeaderMap,
) -> Option<(&'a Service, &'a Destination)> {
    let host = host.and_then(normalize_host);
    let mut best: Option<(_, (&Service, &Destination))> = None;
    for svc in t.services().values() {
        for (pos, dest) in svc.destinations.iter().enumerate() {
            for route in routes_of(dest) {
                let host_text = match route.host {
                    None => "",
                    Some(p) if host.as_deref().is_some_and(|h| p.matches(h)) => p.text(),
                    Some(_) => continue,
                };
                let matched = match (route.kind, route.regex) {
                    (Kind::Exact, _) => path == route.pattern,
                    (Kind::Prefix, _) => path.starts_with(route.pattern),
                    (Kind::Regex, Some(re)) => re.is_match(path),
                    (Kind::Regex, None) => continue,
                };
                if !matched || dest.excludes(path) || !dest.conditions.admit(headers) {
                    continue;
                }
                let key = (
                    Reverse(route.pattern.len()),
                    Reverse(host_rank(route.host)),
                    Reverse(route.kind.rank()),
                    (
                        dest.dfp_group(),
                        svc.acl_name.as_str(),
                        svc.name.as_str(),
                        pos,
                        route.path_idx,
                    ),
                    host_text,
                    route.pattern,
                );
                if best.as_ref().is_none_or(|(b, _)| key < *b) {
                    best = Some((key, (&**svc, dest)));
                }
            }
        }
    }
    best.map(|(_, found)| found).or_else(|| {
        let service = t.services().values().find(|s| s.is_default_backend)?;
        let dest = service
            .destinations
            .iter()
            .find(|d| d.req_mode == ReqMode::Http)?;
        Some((&**service, dest))
    })
}

/// The host part of the rank, written out independently of the index.
fn host_rank(host: Option<&DomainPattern>) -> (u8, usize, u8) {
    match host {
        None => (0, 0, 0),
        Some(DomainPattern::Exact(d)) => (2, d.len(), 0),
        Some(DomainPattern::Suffix(s)) => (1, s.len(), 2),
        Some(DomainPattern::Prefix(p)) => (1, p.len(), 1),
        Some(DomainPattern::Domain(d)) => (1, d.len(), 0),
    }
}

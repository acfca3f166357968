//! The slow model of [`RouteTable::lookup`]: every route of every service scanned in the rank
//! order `lookup` documents. The unit tests and the `route_lookup` fuzz target check that the
//! index answers exactly as this scan does; it is compiled only for them.

use super::index::Kind;
use super::{DomainPattern, RouteTable, normalize_host, routes_of};
use crate::routes::service::{Destination, ReqMode, Service};

/// The service and destination a request for `host` and `path` goes to, found by a scan.
///
/// A route another route of the same service already claims (same host pattern, kind and
/// pattern) is skipped: the first destination wins. A destination whose `servicePathExclude`
/// keeps `path` out does not match; with no match the `isDefaultBackend` service's first HTTP
/// destination answers.
pub fn lookup<'a>(
    t: &'a RouteTable,
    host: Option<&str>,
    path: &str,
) -> Option<(&'a Service, &'a Destination)> {
    let host = host.and_then(normalize_host);
    let mut best: Option<(_, (&Service, &Destination))> = None;
    for (name, svc) in t.services() {
        let mut claimed: Vec<(Option<&DomainPattern>, Kind, &str)> = Vec::new();
        for (pos, dest) in svc.destinations.iter().enumerate() {
            for route in routes_of(dest) {
                let claim = (route.host, route.kind, route.pattern);
                if claimed.contains(&claim) {
                    continue;
                }
                claimed.push(claim);
                let host_rank = match route.host {
                    None => (0, 0),
                    Some(p) if host.as_deref().is_some_and(|h| p.matches(h)) => match p {
                        DomainPattern::Exact(d) => (2, d.len()),
                        DomainPattern::Wildcard(s) => (1, s.len()),
                    },
                    Some(_) => continue,
                };
                let (matched, kind) = match (route.kind, route.regex) {
                    (Kind::Exact, _) => (path == route.pattern, 2),
                    (Kind::Prefix, _) => (path.starts_with(route.pattern), 1),
                    (Kind::Regex, Some(re)) => (re.is_match(path), 0),
                    (Kind::Regex, None) => continue,
                };
                if !matched || dest.excludes(path) {
                    continue;
                }
                let key = (
                    std::cmp::Reverse(route.pattern.len()),
                    std::cmp::Reverse(host_rank),
                    std::cmp::Reverse(kind),
                    name.clone(),
                    pos,
                    route.path_idx,
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

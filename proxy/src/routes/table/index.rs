//! The lookup index of a route table: routes bucketed by host pattern, then by path kind, in
//! persistent maps, so a lookup costs a few hash probes however many services there are, and
//! a reconfigure derives the next index from the current one in O(log n) while requests keep
//! reading the old one.
//!
//! One (host pattern, path kind, path pattern) key holds every destination that claims it,
//! in DFP's order (HAProxy's `use_backend` order: `/.well-known` first, `/`-only last, else by
//! `aclName`); the first whose `serviceHeader`/`userAgent` conditions the request meets (and
//! whose `servicePathExclude` lets the path in) takes the key. A destination without
//! conditions always takes it, so those after it on the same key are unreachable, as in DFP.
//!
//! It answers exactly as a scan of every route in rank order would (the order
//! [`super::RouteTable::lookup`] documents): each bucket yields its best match, and the best of
//! those by the full rank wins.

use std::cmp::Reverse;
use std::sync::Arc;

use http::HeaderMap;
use imbl::{HashMap, OrdMap};
use regex::Regex;

use crate::routes::domain::{DomainPattern, dom_positions};
use crate::routes::service::Service;

/// Where a route leads: the service, the destination's position and the path's position.
#[derive(Debug, Clone)]
pub struct Target {
    /// The owning service.
    pub service: Arc<Service>,
    /// Position in the service's `destinations`.
    pub dest: usize,
    /// Position in the destination's `paths`.
    pub path_idx: usize,
}

/// A candidate's place in DFP's order: group, `aclName`, service name, destination, path.
pub type Order<'a> = (u8, &'a str, &'a str, usize, usize);

impl Target {
    /// Whether this destination takes a request for `path` with `headers`: its
    /// `servicePathExclude` lets the path in and its conditions hold.
    fn takes(&self, path: &str, headers: &HeaderMap) -> bool {
        self.service.destinations.get(self.dest).is_some_and(|d| {
            !d.excludes(path) && (d.conditions.is_empty() || d.conditions.admit(headers))
        })
    }

    /// Its place in DFP's order.
    pub fn order(&self) -> Order<'_> {
        let group = self
            .service
            .destinations
            .get(self.dest)
            .map_or(1, |d| d.dfp_group());
        (
            group,
            &self.service.acl_name,
            &self.service.name,
            self.dest,
            self.path_idx,
        )
    }
}

/// The candidates of one key, in DFP's order.
type Candidates = Vec<Target>;

fn pick<'a>(candidates: &'a [Target], path: &str, headers: &HeaderMap) -> Option<&'a Target> {
    candidates.iter().find(|t| t.takes(path, headers))
}

fn add_candidate(candidates: &mut Candidates, target: Target) {
    let at = candidates.partition_point(|t| t.order() <= target.order());
    candidates.insert(at, target);
}

/// How a route's path matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `path`: equal.
    Exact,
    /// `path_beg`: a string prefix.
    Prefix,
    /// `path_reg`: an unanchored regex.
    Regex,
}

impl Kind {
    /// At equal length exact beats prefix beats regex.
    pub fn rank(self) -> u8 {
        match self {
            Kind::Exact => 2,
            Kind::Prefix => 1,
            Kind::Regex => 0,
        }
    }
}

/// The routes of one host pattern.
#[derive(Debug, Clone, Default)]
struct PathRoutes {
    exact: HashMap<Arc<str>, Candidates>,
    prefix: HashMap<Arc<str>, Candidates>,
    /// Lengths of the prefixes present, with their counts: lookups try the longest first.
    prefix_lens: OrdMap<usize, usize>,
    /// By (source length, longest first; source): rank order.
    regex: OrdMap<(Reverse<usize>, Arc<str>), (Regex, Candidates)>,
}

/// A bucket's best match: path length, kind rank, the target and the path pattern.
type Found<'a> = (usize, u8, &'a Target, &'a str);

impl PathRoutes {
    fn is_empty(&self) -> bool {
        self.exact.is_empty() && self.prefix.is_empty() && self.regex.is_empty()
    }

    fn insert(&mut self, kind: Kind, pattern: &str, regex: Option<&Regex>, target: Target) {
        match (kind, regex) {
            (Kind::Exact, _) => {
                add_candidate(self.exact.entry(pattern.into()).or_default(), target)
            }
            (Kind::Prefix, _) => {
                if !self.prefix.contains_key(pattern) {
                    *self.prefix_lens.entry(pattern.len()).or_insert(0) += 1;
                }
                add_candidate(self.prefix.entry(pattern.into()).or_default(), target);
            }
            (Kind::Regex, Some(re)) => {
                let key = (Reverse(pattern.len()), Arc::from(pattern));
                let entry = self
                    .regex
                    .entry(key)
                    .or_insert_with(|| (re.clone(), Vec::new()));
                add_candidate(&mut entry.1, target);
            }
            (Kind::Regex, None) => {}
        }
    }

    /// Drops `service`'s candidates from the key (kind, pattern).
    fn remove(&mut self, kind: Kind, pattern: &str, service: &str) {
        let keep = |c: &mut Candidates| {
            c.retain(|t| t.service.name != service);
            !c.is_empty()
        };
        match kind {
            Kind::Exact => {
                if let Some(c) = self.exact.get_mut(pattern)
                    && !keep(c)
                {
                    self.exact.remove(pattern);
                }
            }
            Kind::Prefix => {
                if let Some(c) = self.prefix.get_mut(pattern)
                    && !keep(c)
                {
                    self.prefix.remove(pattern);
                    let len = pattern.len();
                    match self.prefix_lens.get(&len).copied() {
                        Some(1) | None => {
                            self.prefix_lens.remove(&len);
                        }
                        Some(n) => {
                            self.prefix_lens.insert(len, n - 1);
                        }
                    }
                }
            }
            Kind::Regex => {
                let key = (Reverse(pattern.len()), Arc::from(pattern));
                if let Some((_, c)) = self.regex.get_mut(&key)
                    && !keep(c)
                {
                    self.regex.remove(&key);
                }
            }
        }
    }

    /// The best route of this bucket for the request. A key none of whose candidates takes
    /// the request is passed over, so the next best one is tried, as HAProxy goes on to the
    /// next `use_backend ... if url !exclude hdr_...` line.
    fn best(&self, path: &str, headers: &HeaderMap) -> Option<Found<'_>> {
        let mut best: Option<Found<'_>> = self.exact.get_key_value(path).and_then(|(k, c)| {
            pick(c, path, headers).map(|t| (path.len(), Kind::Exact.rank(), t, &**k))
        });
        let longest_prefix = self
            .prefix_lens
            .range(..=path.len())
            .rev()
            .filter(|(len, _)| path.is_char_boundary(**len))
            .find_map(|(len, _)| {
                let (k, c) = self.prefix.get_key_value(&path[..*len])?;
                pick(c, path, headers).map(|t| (*len, Kind::Prefix.rank(), t, &**k))
            });
        // At equal length exact beats prefix; a longer prefix beats a shorter exact (which
        // cannot match anyway: an exact match has the path's full length).
        if let Some(prefix) = longest_prefix
            && best.is_none_or(|b| prefix.0 > b.0)
        {
            best = Some(prefix);
        }
        let floor = best.map_or(0, |b| b.0);
        // The longest matching regexes; among several of that length, DFP's order decides.
        let mut regex: Option<Found<'_>> = None;
        for ((Reverse(len), source), (re, c)) in self.regex.iter() {
            if *len <= floor || regex.is_some_and(|r| r.0 > *len) {
                break;
            }
            if !re.is_match(path) {
                continue;
            }
            if let Some(t) = pick(c, path, headers)
                && regex.is_none_or(|r| t.order() < r.2.order())
            {
                regex = Some((*len, Kind::Regex.rank(), t, &**source));
            }
        }
        regex.or(best)
    }
}

/// Buckets of one kind of host pattern, with the pattern lengths present (lookups probe the
/// request's host at those lengths only).
#[derive(Debug, Clone, Default)]
struct Patterns {
    buckets: HashMap<Arc<str>, PathRoutes>,
    lens: OrdMap<usize, usize>,
}

impl Patterns {
    fn bucket_mut(&mut self, text: &str) -> &mut PathRoutes {
        if !self.buckets.contains_key(text) {
            *self.lens.entry(text.len()).or_insert(0) += 1;
        }
        self.buckets.entry(text.into()).or_default()
    }

    fn remove(&mut self, text: &str, kind: Kind, pattern: &str, service: &str) {
        let Some(bucket) = self.buckets.get_mut(text) else {
            return;
        };
        bucket.remove(kind, pattern, service);
        if bucket.is_empty() {
            self.buckets.remove(text);
            match self.lens.get(&text.len()).copied() {
                Some(1) | None => {
                    self.lens.remove(&text.len());
                }
                Some(n) => {
                    self.lens.insert(text.len(), n - 1);
                }
            }
        }
    }

    fn lens_up_to(&self, max: usize) -> impl Iterator<Item = usize> + '_ {
        self.lens.range(1..=max).map(|(len, _)| *len)
    }
}

/// Every HTTP route of a table.
#[derive(Debug, Clone, Default)]
pub struct RouteIndex {
    any: PathRoutes,
    hosts: HashMap<Arc<str>, PathRoutes>,
    /// `*`-prefixed domains and `hdr_end`, by the text the host must end with.
    suffixes: Patterns,
    /// `hdr_beg`, by the text the host must begin with.
    prefixes: Patterns,
    /// `hdr_dom`, by the domain.
    doms: Patterns,
}

/// A candidate's full rank: smaller wins.
type Rank<'a> = (
    Reverse<usize>,
    Reverse<(u8, usize, u8)>,
    Reverse<u8>,
    Order<'a>,
    &'a str,
    &'a str,
);

/// Keeps `bucket`'s best match in `best` if it ranks better.
fn offer<'a>(
    best: &mut Option<(Rank<'a>, &'a Target)>,
    bucket: Option<&'a PathRoutes>,
    host: (u8, usize, u8),
    host_text: &'a str,
    path: &str,
    headers: &HeaderMap,
) {
    if let Some((len, kind, target, pattern)) = bucket.and_then(|b| b.best(path, headers)) {
        let rank = (
            Reverse(len),
            Reverse(host),
            Reverse(kind),
            target.order(),
            host_text,
            pattern,
        );
        if best.as_ref().is_none_or(|(b, _)| rank < *b) {
            *best = Some((rank, target));
        }
    }
}

impl RouteIndex {
    /// Adds a route as a candidate of its key, in DFP's order.
    pub fn insert(
        &mut self,
        host: Option<&DomainPattern>,
        kind: Kind,
        pattern: &str,
        regex: Option<&Regex>,
        target: Target,
    ) {
        let bucket = match host {
            None => &mut self.any,
            Some(DomainPattern::Exact(h)) => self.hosts.entry(h.as_str().into()).or_default(),
            Some(DomainPattern::Suffix(s)) => self.suffixes.bucket_mut(s),
            Some(DomainPattern::Prefix(p)) => self.prefixes.bucket_mut(p),
            Some(DomainPattern::Domain(d)) => self.doms.bucket_mut(d),
        };
        bucket.insert(kind, pattern, regex, target);
    }

    /// Removes `service`'s candidates for (host, kind, pattern).
    pub fn remove(
        &mut self,
        host: Option<&DomainPattern>,
        kind: Kind,
        pattern: &str,
        service: &str,
    ) {
        match host {
            None => self.any.remove(kind, pattern, service),
            Some(DomainPattern::Exact(h)) => {
                if let Some(bucket) = self.hosts.get_mut(h.as_str()) {
                    bucket.remove(kind, pattern, service);
                    if bucket.is_empty() {
                        self.hosts.remove(h.as_str());
                    }
                }
            }
            Some(DomainPattern::Suffix(s)) => self.suffixes.remove(s, kind, pattern, service),
            Some(DomainPattern::Prefix(p)) => self.prefixes.remove(p, kind, pattern, service),
            Some(DomainPattern::Domain(d)) => self.doms.remove(d, kind, pattern, service),
        }
    }

    /// The best route for a normalised `host`, `path` and the request's `headers`. The host
    /// part of the rank: an exact host beats any pattern, a longer pattern a shorter one (at
    /// equal length `*`/hdr_end, then hdr_beg, then hdr_dom), and a route for any host comes
    /// last.
    pub fn lookup(&self, host: Option<&str>, path: &str, headers: &HeaderMap) -> Option<&Target> {
        let mut best = None;
        offer(&mut best, Some(&self.any), (0, 0, 0), "", path, headers);
        if let Some(host) = host {
            let bucket = self.hosts.get_key_value(host);
            if let Some((text, routes)) = bucket {
                offer(
                    &mut best,
                    Some(routes),
                    (2, host.len(), 0),
                    text,
                    path,
                    headers,
                );
            }
            for len in self.suffixes.lens_up_to(host.len()) {
                let start = host.len() - len;
                if host.is_char_boundary(start)
                    && let Some((text, routes)) =
                        self.suffixes.buckets.get_key_value(&host[start..])
                {
                    offer(&mut best, Some(routes), (1, len, 2), text, path, headers);
                }
            }
            for len in self.prefixes.lens_up_to(host.len()) {
                if host.is_char_boundary(len)
                    && let Some((text, routes)) = self.prefixes.buckets.get_key_value(&host[..len])
                {
                    offer(&mut best, Some(routes), (1, len, 1), text, path, headers);
                }
            }
            for len in self.doms.lens_up_to(host.len()) {
                for (start, end) in dom_positions(host, len) {
                    if let Some((text, routes)) = self.doms.buckets.get_key_value(&host[start..end])
                    {
                        offer(&mut best, Some(routes), (1, len, 0), text, path, headers);
                    }
                }
            }
        }
        best.map(|(_, target)| target)
    }
}

//! The lookup index of a route table: routes bucketed by host pattern, then by path kind, in
//! persistent maps, so a lookup costs a few hash probes however many services there are, and
//! a reconfigure derives the next index from the current one in O(log n) while requests keep
//! reading the old one.
//!
//! It answers exactly as a scan of every route in rank order would (the order
//! [`super::RouteTable::lookup`] documents): each bucket yields its best match, and the best of
//! those by the full rank wins.

use std::cmp::Reverse;
use std::sync::Arc;

use imbl::{HashMap, OrdMap};
use regex::Regex;

use crate::routes::service::{DomainPattern, Service};

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

impl Target {
    /// False when the destination's `servicePathExclude` keeps `path` out.
    fn admits(&self, path: &str) -> bool {
        self.service
            .destinations
            .get(self.dest)
            .is_none_or(|d| !d.excludes(path))
    }

    fn tie_break(&self) -> (&str, usize, usize) {
        (&self.service.name, self.dest, self.path_idx)
    }
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

/// The routes of one host pattern.
#[derive(Debug, Clone, Default)]
struct PathRoutes {
    exact: HashMap<Arc<str>, Target>,
    prefix: HashMap<Arc<str>, Target>,
    /// Lengths of the prefixes present, with their counts: lookups try the longest first.
    prefix_lens: OrdMap<usize, usize>,
    /// By (source length, longest first; service, destination, path): rank order.
    regex: OrdMap<RegexKey, (Regex, Target)>,
}

type RegexKey = (Reverse<usize>, Arc<str>, usize, usize);

impl PathRoutes {
    fn is_empty(&self) -> bool {
        self.exact.is_empty() && self.prefix.is_empty() && self.regex.is_empty()
    }

    fn owner(&self, kind: Kind, pattern: &str) -> Option<&Target> {
        match kind {
            Kind::Exact => self.exact.get(pattern),
            Kind::Prefix => self.prefix.get(pattern),
            Kind::Regex => self
                .regex
                .values()
                .find(|(re, _)| re.as_str() == pattern)
                .map(|(_, t)| t),
        }
    }

    fn insert(&mut self, kind: Kind, pattern: &str, regex: Option<&Regex>, target: Target) {
        match (kind, regex) {
            (Kind::Exact, _) => {
                self.exact.insert(pattern.into(), target);
            }
            (Kind::Prefix, _) => {
                self.prefix.insert(pattern.into(), target);
                *self.prefix_lens.entry(pattern.len()).or_insert(0) += 1;
            }
            (Kind::Regex, Some(re)) => {
                let key = (
                    Reverse(pattern.len()),
                    Arc::from(target.service.name.as_str()),
                    target.dest,
                    target.path_idx,
                );
                self.regex.insert(key, (re.clone(), target));
            }
            (Kind::Regex, None) => {}
        }
    }

    fn remove(&mut self, kind: Kind, pattern: &str) {
        match kind {
            Kind::Exact => {
                self.exact.remove(pattern);
            }
            Kind::Prefix => {
                if self.prefix.remove(pattern).is_some() {
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
                let key = self
                    .regex
                    .iter()
                    .find(|(_, (re, _))| re.as_str() == pattern)
                    .map(|(key, _)| key.clone());
                if let Some(key) = key {
                    self.regex.remove(&key);
                }
            }
        }
    }

    /// The best route of this bucket for `path`, with its rank's path part. A route whose
    /// destination excludes the path (`servicePathExclude`) is passed over, so the next best
    /// one takes the request, as HAProxy's `use_backend ... if url !exclude` does.
    fn best(&self, path: &str) -> Option<(usize, u8, &Target)> {
        let mut best: Option<(usize, u8, &Target)> = self
            .exact
            .get(path)
            .filter(|t| t.admits(path))
            .map(|t| (path.len(), 2, t));
        let longest_prefix = self
            .prefix_lens
            .range(..=path.len())
            .rev()
            .filter(|(len, _)| path.is_char_boundary(**len))
            .find_map(|(len, _)| {
                self.prefix
                    .get(&path[..*len])
                    .filter(|t| t.admits(path))
                    .map(|t| (*len, 1, t))
            });
        // At equal length exact beats prefix; a longer prefix beats a shorter exact (which
        // cannot match anyway: an exact match has the path's full length).
        if let Some(prefix) = longest_prefix
            && best.is_none_or(|b| prefix.0 > b.0)
        {
            best = Some(prefix);
        }
        let floor = best.map_or(0, |b| b.0);
        let regex = self
            .regex
            .iter()
            .take_while(|((Reverse(len), ..), _)| *len > floor)
            .find(|(_, (re, t))| re.is_match(path) && t.admits(path))
            .map(|((Reverse(len), ..), (_, t))| (*len, 0, t));
        regex.or(best)
    }
}

/// Every HTTP route of a table.
#[derive(Debug, Clone, Default)]
pub struct RouteIndex {
    any: PathRoutes,
    hosts: HashMap<Arc<str>, PathRoutes>,
    /// By suffix (`.example.com` for `*.example.com`).
    wildcards: HashMap<Arc<str>, PathRoutes>,
}

/// Keeps `bucket`'s best match in `best` if it ranks better.
fn offer<'a>(
    best: &mut Option<(Rank<'a>, &'a Target)>,
    bucket: Option<&'a PathRoutes>,
    host_rank: (u8, usize),
    path: &str,
) {
    if let Some((len, kind, target)) = bucket.and_then(|b| b.best(path)) {
        let rank = (
            Reverse(len),
            Reverse(host_rank),
            Reverse(kind),
            target.tie_break(),
        );
        if best.as_ref().is_none_or(|(b, _)| rank < *b) {
            *best = Some((rank, target));
        }
    }
}

/// A candidate's full rank: smaller wins.
type Rank<'a> = (
    Reverse<usize>,
    Reverse<(u8, usize)>,
    Reverse<u8>,
    (&'a str, usize, usize),
);

impl RouteIndex {
    /// The route that claims (host, kind, pattern), if any.
    pub fn owner(
        &self,
        host: Option<&DomainPattern>,
        kind: Kind,
        pattern: &str,
    ) -> Option<&Target> {
        self.bucket(host)?.owner(kind, pattern)
    }

    /// Adds a route; the caller has checked that nobody else owns it.
    pub fn insert(
        &mut self,
        host: Option<&DomainPattern>,
        kind: Kind,
        pattern: &str,
        regex: Option<&Regex>,
        target: Target,
    ) {
        match host {
            None => self.any.insert(kind, pattern, regex, target),
            Some(DomainPattern::Exact(h)) => {
                let mut bucket = self.hosts.get(h.as_str()).cloned().unwrap_or_default();
                bucket.insert(kind, pattern, regex, target);
                self.hosts.insert(h.as_str().into(), bucket);
            }
            Some(DomainPattern::Wildcard(s)) => {
                let mut bucket = self.wildcards.get(s.as_str()).cloned().unwrap_or_default();
                bucket.insert(kind, pattern, regex, target);
                self.wildcards.insert(s.as_str().into(), bucket);
            }
        }
    }

    /// Removes the route claiming (host, kind, pattern).
    pub fn remove(&mut self, host: Option<&DomainPattern>, kind: Kind, pattern: &str) {
        let (map, key) = match host {
            None => return self.any.remove(kind, pattern),
            Some(DomainPattern::Exact(h)) => (&mut self.hosts, h),
            Some(DomainPattern::Wildcard(s)) => (&mut self.wildcards, s),
        };
        if let Some(mut bucket) = map.get(key.as_str()).cloned() {
            bucket.remove(kind, pattern);
            if bucket.is_empty() {
                map.remove(key.as_str());
            } else {
                map.insert(key.as_str().into(), bucket);
            }
        }
    }

    /// The best route for a normalised `host` and `path`.
    pub fn lookup(&self, host: Option<&str>, path: &str) -> Option<&Target> {
        let mut best = None;
        offer(&mut best, Some(&self.any), (0, 0), path);
        if let Some(host) = host {
            offer(&mut best, self.hosts.get(host), (2, host.len()), path);
            for (i, _) in host.match_indices('.').filter(|(i, _)| *i > 0) {
                let suffix = &host[i..];
                offer(
                    &mut best,
                    self.wildcards.get(suffix),
                    (1, suffix.len()),
                    path,
                );
            }
        }
        best.map(|(_, target)| target)
    }

    fn bucket(&self, host: Option<&DomainPattern>) -> Option<&PathRoutes> {
        match host {
            None => Some(&self.any),
            Some(DomainPattern::Exact(h)) => self.hosts.get(h.as_str()),
            Some(DomainPattern::Wildcard(s)) => self.wildcards.get(s.as_str()),
        }
    }
}

//! `serviceDomain` patterns and the algorithm (`serviceDomainAlgo`) that turns a domain into
//! one, with DFP's meaning: HAProxy's `hdr`, `hdr_beg`, `hdr_end` and `hdr_dom` matches on
//! the Host header, case-insensitive.
//!
//! Unlike HAProxy, the host is compared without its `:port` (flowproxy routes one listener
//! per scheme, so a port in the Host header says nothing about the service).

use std::fmt;
use std::sync::OnceLock;

/// One `serviceDomain` item, lower-cased.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DomainPattern {
    /// `hdr(host)`: the host equals the domain.
    Exact(String),
    /// `hdr_end(host)`: the host ends with this text. From a `*`-prefixed domain (the text
    /// after the `*`: `*.example.com` holds `.example.com`, so `example.com` itself does not
    /// match; `*example.com` also takes `myexample.com`), or any domain with
    /// `serviceDomainAlgo=hdr_end`.
    Suffix(String),
    /// `hdr_beg(host)`: the host begins with the domain.
    Prefix(String),
    /// `hdr_dom(host)`: the domain appears in the host as whole dot-separated labels
    /// (`example.com` matches `example.com`, `www.example.com` and `example.com.au`).
    Domain(String),
}

impl DomainPattern {
    /// Whether `host` (already lower-cased, without port) matches: the rule the route index
    /// implements with hash look-ups (its tests compare against this), and how a request's
    /// host is told to be one of a destination's `redirectFromDomain`s.
    pub fn matches(&self, host: &str) -> bool {
        match self {
            DomainPattern::Exact(d) => host == d,
            DomainPattern::Suffix(s) => host.ends_with(s.as_str()),
            DomainPattern::Prefix(p) => host.starts_with(p.as_str()),
            DomainPattern::Domain(d) => dom_positions(host, d.len()).any(|(s, e)| &host[s..e] == d),
        }
    }

    /// The text the pattern compares with.
    pub fn text(&self) -> &str {
        match self {
            DomainPattern::Exact(s)
            | DomainPattern::Suffix(s)
            | DomainPattern::Prefix(s)
            | DomainPattern::Domain(s) => s,
        }
    }

    /// The HAProxy fetch DFP writes for this pattern.
    pub fn fetch(&self) -> &'static str {
        match self {
            DomainPattern::Exact(_) => "hdr(host)",
            DomainPattern::Suffix(_) => "hdr_end(host)",
            DomainPattern::Prefix(_) => "hdr_beg(host)",
            DomainPattern::Domain(_) => "hdr_dom(host)",
        }
    }

    /// The host a redirect may go to: the domain itself, unless it is only a suffix.
    pub fn host_name(&self) -> Option<&str> {
        match self {
            DomainPattern::Suffix(_) => None,
            other => Some(other.text()),
        }
    }
}

/// The `(start, end)` byte ranges of `host` that are `len` long and start and end at a label
/// boundary (the host's ends or a dot): where `hdr_dom` looks for its domain.
pub fn dom_positions(host: &str, len: usize) -> impl Iterator<Item = (usize, usize)> + '_ {
    let starts = std::iter::once(0).chain(host.match_indices('.').map(|(i, _)| i + 1));
    starts.filter_map(move |start| {
        let end = start.checked_add(len)?;
        let at_boundary = end == host.len() || host.as_bytes().get(end) == Some(&b'.');
        (end <= host.len() && at_boundary && host.is_char_boundary(end)).then_some((start, end))
    })
}

impl fmt::Display for DomainPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DomainPattern::Exact(d) => f.write_str(d),
            DomainPattern::Suffix(s) => write!(f, "*{s}"),
            DomainPattern::Prefix(p) => write!(f, "{p}* (hdr_beg)"),
            DomainPattern::Domain(d) => write!(f, "{d} (hdr_dom)"),
        }
    }
}

/// `serviceDomainAlgo` / `SERVICE_DOMAIN_ALGO`: how a domain without `*` matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DomainAlgo {
    /// `hdr`: the exact host (flowproxy's default; DFP's image defaults to `hdr_beg`).
    #[default]
    Hdr,
    /// `hdr_beg`: hosts beginning with the domain.
    HdrBeg,
    /// `hdr_end`: hosts ending with the domain.
    HdrEnd,
    /// `hdr_dom`: hosts containing the domain as whole labels.
    HdrDom,
}

/// What a bad algorithm is told.
pub const ALGO_CHOICES: &str =
    "must be hdr, hdr_beg, hdr_end or hdr_dom (DFP's hdr(host) spellings are accepted too)";

impl DomainAlgo {
    /// Reads `hdr_beg` or DFP's spelling `hdr_beg(host)`; `None` for anything else
    /// (`req.ssl_sni` included: SNI routing of TCP services is not implemented).
    pub fn parse(value: &str) -> Option<DomainAlgo> {
        let name = value.strip_suffix("(host)").unwrap_or(value);
        match name {
            "hdr" => Some(DomainAlgo::Hdr),
            "hdr_beg" => Some(DomainAlgo::HdrBeg),
            "hdr_end" => Some(DomainAlgo::HdrEnd),
            "hdr_dom" => Some(DomainAlgo::HdrDom),
            _ => None,
        }
    }

    /// The pattern `domain` (lower-cased, no `*`) becomes under this algorithm.
    pub fn pattern(self, domain: String) -> DomainPattern {
        match self {
            DomainAlgo::Hdr => DomainPattern::Exact(domain),
            DomainAlgo::HdrBeg => DomainPattern::Prefix(domain),
            DomainAlgo::HdrEnd => DomainPattern::Suffix(domain),
            DomainAlgo::HdrDom => DomainPattern::Domain(domain),
        }
    }
}

static DEFAULT_ALGO: OnceLock<DomainAlgo> = OnceLock::new();

/// Sets the algorithm of services without `serviceDomainAlgo` once, at start, before any
/// service is parsed (a saved service takes a changed default at the next start, as in DFP).
pub fn set_default_domain_algo(algo: DomainAlgo) {
    let _ = DEFAULT_ALGO.set(algo);
}

/// The default: as set at start, else `hdr`.
pub fn default_domain_algo() -> DomainAlgo {
    DEFAULT_ALGO.get().copied().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_pattern_matches_like_haproxy() {
        let exact = DomainPattern::Exact("example.com".into());
        assert!(exact.matches("example.com") && !exact.matches("www.example.com"));
        let beg = DomainPattern::Prefix("api.".into());
        assert!(beg.matches("api.example.com") && !beg.matches("www.api.com"));
        let end = DomainPattern::Suffix("example.com".into());
        for host in ["example.com", "www.example.com", "myexample.com"] {
            assert!(end.matches(host), "{host}");
        }
        assert!(!end.matches("example.com.au"));
        let wild = DomainPattern::Suffix(".example.com".into());
        assert!(wild.matches("a.b.example.com"));
        assert!(!wild.matches("example.com") && !wild.matches("badexample.com"));
        assert_eq!(wild.to_string(), "*.example.com");
        let dom = DomainPattern::Domain("example.com".into());
        for host in [
            "example.com",
            "www.example.com",
            "example.com.au",
            "a.example.com.b",
        ] {
            assert!(dom.matches(host), "{host}");
        }
        for host in ["myexample.com", "example.comx", "example.co", "com"] {
            assert!(!dom.matches(host), "{host}");
        }
    }

    #[test]
    fn algorithms_take_both_spellings() {
        assert_eq!(DomainAlgo::parse("hdr"), Some(DomainAlgo::Hdr));
        assert_eq!(DomainAlgo::parse("hdr_beg(host)"), Some(DomainAlgo::HdrBeg));
        assert_eq!(DomainAlgo::parse("hdr_end"), Some(DomainAlgo::HdrEnd));
        assert_eq!(DomainAlgo::parse("hdr_dom(host)"), Some(DomainAlgo::HdrDom));
        for bad in ["req.ssl_sni", "HDR", "hdr_sub", "", "hdr(Host)"] {
            assert_eq!(DomainAlgo::parse(bad), None, "{bad}");
        }
    }
}

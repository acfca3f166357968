//! Route lookup against its reference model: small tables built from the input (services
//! added, replaced and removed, refused ones leaving the table as it was), then every query
//! must reach the same service and destination as a scan of every route in rank order
//! (`routes::reference::lookup`), with domain algorithms, `aclName`s and `serviceHeader` /
//! `userAgent` conditions in the mix and requests carrying some of those headers.
#![no_main]

use arbitrary::Arbitrary;
use flowproxy::routes::{RouteTable, parse_reconfigure, reference};
use http::{HeaderMap, HeaderName, HeaderValue};
use libfuzzer_sys::fuzz_target;

const PATHS: &[&str] = &[
    "/", "/a", "/ab", "/a/b", "/api", "/api/v1", "/b", "/é", "/x/y/z",
];
const REGEXES: &[&str] = &["^/a", "b$", "^/api/v[0-9]", "/.*/", "é", "^/$"];
const DOMAINS: &[&str] = &[
    "a.com", "*.a.com", "b.a.com", "*.b.a.com", "c.org", "*.org", "*a.com", "a", "com",
];
const ALGOS: &[&str] = &["", "hdr", "hdr_beg", "hdr_end(host)", "hdr_dom", "bad"];
const CONDITIONS: &[(&str, &str)] = &[
    ("", ""),
    ("userAgent", "bot"),
    ("serviceHeader", "X-V:1"),
    ("serviceHeader", "X-V:1,X-W:2"),
];
/// Header sets the queries carry.
const HEADERS: &[&[(&str, &str)]] = &[
    &[],
    &[("user-agent", "a Bot")],
    &[("x-v", "1"), ("x-w", "2")],
    &[("x-v", "1"), ("user-agent", "robot")],
];
const HOSTS: &[&str] = &[
    "a.com",
    "B.A.com:80",
    "x.b.a.com",
    "c.org",
    "d.org",
    "a.com.",
    "[::1]:80",
    "ba.com",
    "b.com.au",
];

#[derive(Debug, Arbitrary)]
struct Input {
    ops: Vec<Op>,
    queries: Vec<(Option<Text>, Text, u8)>,
}

#[derive(Debug, Arbitrary)]
enum Op {
    Put(Spec),
    Remove(u8),
}

#[derive(Debug, Arbitrary)]
struct Spec {
    name: u8,
    default_backend: bool,
    algo: u8,
    acl: Option<u8>,
    destinations: Vec<Dest>,
}

#[derive(Debug, Arbitrary)]
struct Dest {
    path_type: u8,
    paths: Vec<Text>,
    domains: Vec<Text>,
    excludes: Vec<Text>,
    redirect_from: Vec<Text>,
    rewrite: Option<(Text, Text)>,
    tcp_port: Option<u8>,
    condition: u8,
}

/// A value from the pools (most of the time, so that routes collide) or any text.
#[derive(Debug, Arbitrary)]
enum Text {
    Pool(u8),
    Raw(String),
}

impl Text {
    fn get<'a>(&'a self, pool: &[&'a str]) -> &'a str {
        match self {
            Text::Pool(i) => pool[usize::from(*i) % pool.len()],
            Text::Raw(s) => s,
        }
    }
}

fn list(items: &[Text], pool: &[&str]) -> String {
    let parts: Vec<&str> = items.iter().take(3).map(|t| t.get(pool)).collect();
    parts.join(",")
}

/// The reconfigure query of `spec` (destinations `.1`, `.2`, ...).
fn query(spec: &Spec) -> Vec<(String, String)> {
    let mut q = vec![("serviceName".to_owned(), format!("s{}", spec.name % 6))];
    if spec.default_backend {
        q.push(("isDefaultBackend".to_owned(), "true".to_owned()));
    }
    let algo = ALGOS[usize::from(spec.algo) % ALGOS.len()];
    if !algo.is_empty() {
        q.push(("serviceDomainAlgo".to_owned(), algo.to_owned()));
    }
    if let Some(acl) = spec.acl {
        q.push(("aclName".to_owned(), format!("acl{}", acl % 4)));
    }
    for (i, d) in spec.destinations.iter().take(3).enumerate() {
        let mut put = |key: &str, value: String| {
            if !value.is_empty() {
                q.push((format!("{key}.{}", i + 1), value));
            }
        };
        let path_type = ["path_beg", "path", "path_reg"][usize::from(d.path_type) % 3];
        let source = if path_type == "path_reg" {
            REGEXES
        } else {
            PATHS
        };
        put("port", format!("{}", 8000 + i));
        put("pathType", path_type.to_owned());
        put("servicePath", list(&d.paths, source));
        put("serviceDomain", list(&d.domains, DOMAINS));
        put("servicePathExclude", list(&d.excludes, PATHS));
        put("redirectFromDomain", list(&d.redirect_from, DOMAINS));
        if let Some((search, replace)) = &d.rewrite {
            put(
                "reqPathSearchReplace",
                format!("{},{}", search.get(REGEXES), replace.get(PATHS)),
            );
        }
        let (key, value) = CONDITIONS[usize::from(d.condition) % CONDITIONS.len()];
        if !key.is_empty() {
            put(key, value.to_owned());
        }
        if let Some(port) = d.tcp_port {
            put("reqMode", "tcp".to_owned());
            put("srcPort", format!("{}", 5000 + u16::from(port % 4)));
        }
    }
    q
}

fuzz_target!(|input: Input| {
    let mut table = RouteTable::default();
    for op in input.ops.iter().take(16) {
        match op {
            Op::Put(spec) => {
                let Ok(service) = parse_reconfigure(&query(spec)) else {
                    continue;
                };
                if let Ok(next) = table.with_service(service) {
                    table = next;
                }
            }
            Op::Remove(name) => table = table.without_service(&format!("s{}", name % 6)).0,
        }
    }
    let header_sets: Vec<HeaderMap> = HEADERS
        .iter()
        .map(|pairs| {
            pairs
                .iter()
                .map(|(k, v)| (HeaderName::from_static(k), HeaderValue::from_static(v)))
                .collect()
        })
        .collect();
    let fixed = HOSTS.iter().map(|h| Some(*h)).chain([None]).flat_map(|h| {
        PATHS
            .iter()
            .chain(&["/api/v12/x", "/ab/", "/zzz"])
            .flat_map(move |p| (0..HEADERS.len()).map(move |i| (h, *p, i)))
    });
    let fuzzed = input.queries.iter().take(16).map(|(h, p, i)| {
        (
            h.as_ref().map(|h| h.get(HOSTS)),
            p.get(PATHS),
            usize::from(*i) % HEADERS.len(),
        )
    });
    for (host, path, i) in fixed.chain(fuzzed) {
        let headers = &header_sets[i];
        let got = table.lookup(host, path, headers);
        let want = reference::lookup(&table, host, path, headers);
        let got_ids = got
            .as_ref()
            .map(|m| (m.service.name.as_str(), m.destination.index));
        let want_ids = want.map(|(s, d)| (s.name.as_str(), d.index));
        assert_eq!(
            got_ids,
            want_ids,
            "host {host:?}, path {path:?}, headers {headers:?}, services {:?}",
            table
                .services()
                .values()
                .map(|s| &s.params)
                .collect::<Vec<_>>()
        );
        if let Some(m) = got
            && m.path != path
        {
            assert!(m.path.starts_with('/'), "rewritten path {:?}", m.path);
        }
    }
});

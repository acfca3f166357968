//! Route lookup against its reference model: small tables built from the input (services
//! added, replaced and removed, refused ones leaving the table as it was), then every query
//! must reach the same service and destination as a scan of every route in rank order
//! (`routes::reference::lookup`).
#![no_main]

use arbitrary::Arbitrary;
use flowproxy::routes::{RouteTable, parse_reconfigure, reference};
use libfuzzer_sys::fuzz_target;

const PATHS: &[&str] = &[
    "/", "/a", "/ab", "/a/b", "/api", "/api/v1", "/b", "/é", "/x/y/z",
];
const REGEXES: &[&str] = &["^/a", "b$", "^/api/v[0-9]", "/.*/", "é", "^/$"];
const DOMAINS: &[&str] = &["a.com", "*.a.com", "b.a.com", "*.b.a.com", "c.org", "*.org"];
const HOSTS: &[&str] = &[
    "a.com",
    "B.A.com:80",
    "x.b.a.com",
    "c.org",
    "d.org",
    "a.com.",
    "[::1]:80",
];

#[derive(Debug, Arbitrary)]
struct Input {
    ops: Vec<Op>,
    queries: Vec<(Option<Text>, Text)>,
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
    let fixed = HOSTS.iter().map(|h| Some(*h)).chain([None]).flat_map(|h| {
        PATHS
            .iter()
            .chain(&["/api/v12/x", "/ab/", "/zzz"])
            .map(move |p| (h, *p))
    });
    let fuzzed = input
        .queries
        .iter()
        .take(16)
        .map(|(h, p)| (h.as_ref().map(|h| h.get(HOSTS)), p.get(PATHS)));
    for (host, path) in fixed.chain(fuzzed) {
        let got = table.lookup(host, path);
        let want = reference::lookup(&table, host, path);
        let got_ids = got
            .as_ref()
            .map(|m| (m.service.name.as_str(), m.destination.index));
        let want_ids = want.map(|(s, d)| (s.name.as_str(), d.index));
        assert_eq!(
            got_ids,
            want_ids,
            "host {host:?}, path {path:?}, services {:?}",
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

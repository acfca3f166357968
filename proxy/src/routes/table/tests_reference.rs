//! The index against its reference model: random tables (domain algorithms, aclNames and
//! conditions included), every host, path and header set compared.

use super::*;
use crate::routes::params::parse_reconfigure;

/// The index must agree with the scan of every route in rank order.
fn reference_lookup<'a>(
    t: &'a RouteTable,
    host: Option<&str>,
    path: &str,
    headers: &HeaderMap,
) -> Option<(&'a str, usize)> {
    super::reference::lookup(t, host, path, headers).map(|(s, d)| (s.name.as_str(), d.index))
}

/// A small deterministic generator, so the comparison below is repeatable.
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 33) as usize) % n
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

#[test]
fn the_index_answers_as_a_scan_of_every_route_in_rank_order() {
    const PATHS: &[&str] = &[
        "/", "/a", "/ab", "/a/b", "/api", "/api/v1", "/b", "/é", "/x/y/z",
    ];
    const REGEXES: &[&str] = &["^/a", "b$", "^/api/v[0-9]", "/.*/", "é"];
    const DOMAINS: &[&str] = &[
        "a.com",
        "*.a.com",
        "b.a.com",
        "*.b.a.com",
        "c.org",
        "*.org",
        "*a.com",
        "b",
        "a",
        "com",
    ];
    const ALGOS: &[&str] = &["", "hdr", "hdr_beg", "hdr_end(host)", "hdr_dom"];
    const CONDITIONS: &[(&str, &str)] = &[
        ("", ""),
        ("userAgent", "bot"),
        ("serviceHeader", "X-V:1"),
        ("serviceHeader", "X-V:1,X-W:2"),
    ];
    const HOSTS: &[&str] = &[
        "a.com",
        "B.A.com:80",
        "x.b.a.com",
        "c.org",
        "d.org",
        "a.com.",
        "zz",
        "ba.com",
        "b.com.au",
        "com",
    ];
    let mut rng = Lcg(7);
    for round in 0..60 {
        let mut t = RouteTable::default();
        for i in 0..12 {
            let name = format!("s{}", rng.below(8));
            let path_type = rng.pick(&["path_beg", "path", "path_reg"]);
            let source = if path_type == "path_reg" {
                REGEXES
            } else {
                PATHS
            };
            let mut pairs = vec![
                ("serviceName", name.clone()),
                ("pathType", path_type.to_owned()),
                ("port", format!("{}", 8000 + i)),
                (
                    "servicePath",
                    format!("{},{}", rng.pick(source), rng.pick(source)),
                ),
            ];
            if rng.below(2) == 0 {
                pairs.push(("serviceDomain", rng.pick(DOMAINS).to_owned()));
                pairs.push(("serviceDomainAlgo", rng.pick(ALGOS).to_owned()));
            }
            if rng.below(2) == 0 {
                pairs.push(("aclName", format!("acl{}", rng.below(4))));
            }
            let (key, value) = CONDITIONS[rng.below(CONDITIONS.len())];
            if !key.is_empty() {
                pairs.push((key, value.to_owned()));
            }
            let pairs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let query: Vec<(String, String)> = pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect();
            let Ok(service) = parse_reconfigure(&query) else {
                continue;
            };
            // HTTP routes never conflict; a refused change would leave the table as it was.
            if let Ok(next) = t.with_service(service) {
                t = next;
            }
            if rng.below(5) == 0 {
                t = t.without_service(&format!("s{}", rng.below(8))).0;
            }
        }
        let header_sets: Vec<HeaderMap> = [
            &[][..],
            &[("user-agent", "a Bot")],
            &[("x-v", "1"), ("x-w", "2")],
            &[("x-v", "1"), ("user-agent", "robot")],
        ]
        .iter()
        .map(|pairs| {
            pairs
                .iter()
                .map(|(k, v)| (http::HeaderName::from_static(k), v.parse().unwrap()))
                .collect()
        })
        .collect();
        for host in HOSTS.iter().map(Some).chain([None]) {
            for path in PATHS.iter().chain(["/api/v12/x", "/ab/", "/zzz"].iter()) {
                for headers in &header_sets {
                    let got = t
                        .lookup(host.copied(), path, headers)
                        .map(|m| (m.service.name.as_str(), m.destination.index));
                    assert_eq!(
                        got,
                        reference_lookup(&t, host.copied(), path, headers),
                        "round {round}, host {host:?}, path {path}, headers {headers:?}, table {:?}",
                        t.services().values().map(|s| &s.params).collect::<Vec<_>>()
                    );
                }
            }
        }
    }
}

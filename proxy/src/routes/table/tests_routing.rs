//! DFP's routing extras: domain algorithms, `*suffix` domains, `serviceHeader`/`userAgent`
//! conditions and the aclName order of services sharing a route.

use super::*;
use crate::routes::params::parse_reconfigure;

fn svc(pairs: &[(&str, &str)]) -> Service {
    let query: Vec<(String, String)> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    parse_reconfigure(&query).expect("valid test service")
}

fn table(services: Vec<Service>) -> RouteTable {
    services.into_iter().fold(RouteTable::default(), |t, s| {
        t.with_service(s).expect("no conflict")
    })
}

fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
    pairs
        .iter()
        .map(|(k, v)| (http::HeaderName::from_static(k), v.parse().unwrap()))
        .collect()
}

/// `service.destination-index` serving the request, or "-".
fn served(t: &RouteTable, host: Option<&str>, path: &str, h: &HeaderMap) -> String {
    let got = t
        .lookup(host, path, h)
        .map(|m| (m.service.name.as_str(), m.destination.index));
    let want = reference::lookup(t, host, path, h).map(|(s, d)| (s.name.as_str(), d.index));
    assert_eq!(got, want, "index and reference disagree on {host:?} {path}");
    got.map_or("-".to_owned(), |(s, i)| format!("{s}.{i}"))
}

fn domain_service(algo: &str, domain: &str) -> RouteTable {
    let mut pairs = vec![
        ("serviceName", "site"),
        ("serviceDomain", domain),
        ("port", "80"),
    ];
    if !algo.is_empty() {
        pairs.push(("serviceDomainAlgo", algo));
    }
    table(vec![svc(&pairs)])
}

/// Which of `hosts` the service takes.
fn taken<'a>(t: &RouteTable, hosts: &[&'a str]) -> Vec<&'a str> {
    let none = HeaderMap::new();
    hosts
        .iter()
        .copied()
        .filter(|h| served(t, Some(h), "/", &none) != "-")
        .collect()
}

const HOSTS: &[&str] = &[
    "example.com",
    "EXAMPLE.com:8080",
    "www.example.com",
    "myexample.com",
    "example.com.au",
    "example.org",
    "other.net",
];

#[test]
fn each_domain_algorithm_matches_as_haproxy_does() {
    let cases: &[(&str, &[&str])] = &[
        ("", &["example.com", "EXAMPLE.com:8080"]),
        ("hdr", &["example.com", "EXAMPLE.com:8080"]),
        ("hdr(host)", &["example.com", "EXAMPLE.com:8080"]),
        (
            "hdr_beg",
            &["example.com", "EXAMPLE.com:8080", "example.com.au"],
        ),
        (
            "hdr_end(host)",
            &[
                "example.com",
                "EXAMPLE.com:8080",
                "www.example.com",
                "myexample.com",
            ],
        ),
        (
            "hdr_dom",
            &[
                "example.com",
                "EXAMPLE.com:8080",
                "www.example.com",
                "example.com.au",
            ],
        ),
    ];
    for (algo, want) in cases {
        let t = domain_service(algo, "Example.com");
        assert_eq!(taken(&t, HOSTS), *want, "serviceDomainAlgo={algo}");
    }
    let t = domain_service("hdr_beg", "example");
    assert_eq!(
        taken(&t, HOSTS),
        [
            "example.com",
            "EXAMPLE.com:8080",
            "example.com.au",
            "example.org"
        ]
    );
}

#[test]
fn match_all_means_hdr_dom() {
    let t = table(vec![svc(&[
        ("serviceName", "site"),
        ("serviceDomain", "example.com"),
        ("serviceDomainMatchAll", "true"),
        ("port", "80"),
    ])]);
    assert_eq!(
        taken(&t, HOSTS),
        [
            "example.com",
            "EXAMPLE.com:8080",
            "www.example.com",
            "example.com.au"
        ]
    );
    let exact = table(vec![svc(&[
        ("serviceName", "site"),
        ("serviceDomain", "example.com"),
        ("serviceDomainMatchAll", "false"),
        ("port", "80"),
    ])]);
    assert_eq!(taken(&exact, HOSTS), ["example.com", "EXAMPLE.com:8080"]);
}

#[test]
fn star_domains_are_ends_with_matches_whatever_the_algorithm() {
    let t = domain_service("", "*example.com");
    assert_eq!(
        taken(&t, HOSTS),
        [
            "example.com",
            "EXAMPLE.com:8080",
            "www.example.com",
            "myexample.com"
        ]
    );
    let t = domain_service("hdr_beg", "*.example.com");
    assert_eq!(taken(&t, HOSTS), ["www.example.com"]);
    // Each `*` item alone is a suffix; the others keep the algorithm.
    let t = domain_service("", "other.net,*.example.com");
    assert_eq!(taken(&t, HOSTS), ["www.example.com", "other.net"]);
}

#[test]
fn a_more_specific_host_pattern_wins() {
    let none = HeaderMap::new();
    let t = table(vec![
        svc(&[("serviceName", "any"), ("servicePath", "/"), ("port", "1")]),
        svc(&[
            ("serviceName", "dom"),
            ("serviceDomain", "example.com"),
            ("serviceDomainAlgo", "hdr_dom"),
            ("port", "1"),
        ]),
        svc(&[
            ("serviceName", "www"),
            ("serviceDomain", "www.example.com"),
            ("port", "1"),
        ]),
        svc(&[
            ("serviceName", "beg"),
            ("serviceDomain", "api."),
            ("serviceDomainAlgo", "hdr_beg"),
            ("port", "1"),
        ]),
    ]);
    assert_eq!(served(&t, Some("www.example.com"), "/", &none), "www.0");
    assert_eq!(served(&t, Some("shop.example.com"), "/", &none), "dom.0");
    // hdr_dom's longer pattern beats hdr_beg's shorter one.
    assert_eq!(served(&t, Some("api.example.com"), "/", &none), "dom.0");
    assert_eq!(served(&t, Some("api.other.net"), "/", &none), "beg.0");
    assert_eq!(served(&t, Some("other.net"), "/", &none), "any.0");
}

#[test]
fn service_headers_choose_between_services_on_one_path() {
    let v = |name: &str, version: &str| {
        svc(&[
            ("serviceName", name),
            ("servicePath", "/api"),
            ("serviceHeader", version),
            ("port", "80"),
        ])
    };
    let t = table(vec![
        v("api-v1", "X-Version:1"),
        v("api-v2", "X-Version:2,X-Beta:yes"),
    ]);
    let at = |h: &[(&'static str, &'static str)]| served(&t, None, "/api/x", &headers(h));
    assert_eq!(at(&[("x-version", "1")]), "api-v1.0");
    assert_eq!(at(&[("x-version", "2"), ("x-beta", "yes")]), "api-v2.0");
    assert_eq!(at(&[("x-version", "2")]), "-", "every header must match");
    assert_eq!(at(&[]), "-");
    // A catch-all on the same path takes what the conditions do not.
    let t = t
        .with_service(svc(&[
            ("serviceName", "api-stable"),
            ("servicePath", "/api"),
            ("port", "80"),
        ]))
        .unwrap();
    assert_eq!(
        served(&t, None, "/api/x", &HeaderMap::new()),
        "api-stable.0"
    );
    assert_eq!(
        served(&t, None, "/api/x", &headers(&[("x-version", "1")])),
        "api-stable.0",
        "api-stable sorts first and has no condition: it hides the others"
    );
}

#[test]
fn user_agents_choose_a_destination_and_the_last_one_catches_all() {
    // DFP's documented pattern: indexed destinations, the last without userAgent.
    let t = table(vec![svc(&[
        ("serviceName", "web"),
        ("servicePath.1", "/"),
        ("port.1", "8081"),
        ("userAgent.1", "Googlebot,iPhone"),
        ("servicePath.2", "/"),
        ("port.2", "8082"),
    ])]);
    let ua = |agent: &'static str| served(&t, None, "/x", &headers(&[("user-agent", agent)]));
    assert_eq!(ua("Mozilla/5.0 (compatible; googlebot/2.1)"), "web.1");
    assert_eq!(ua("Mozilla/5.0 (iPhone; CPU iPhone OS)"), "web.1");
    assert_eq!(ua("curl/8.5"), "web.2");
    assert_eq!(served(&t, None, "/x", &HeaderMap::new()), "web.2");
}

#[test]
fn a_failed_condition_falls_to_a_shorter_route_or_the_default_backend() {
    let t = table(vec![
        svc(&[
            ("serviceName", "beta"),
            ("servicePath", "/api/v2"),
            ("serviceHeader", "X-Beta:1"),
            ("port", "80"),
        ]),
        svc(&[
            ("serviceName", "api"),
            ("servicePath", "/api"),
            ("port", "80"),
        ]),
        svc(&[
            ("serviceName", "fallback"),
            ("servicePath", "/fallback"),
            ("isDefaultBackend", "true"),
            ("port", "80"),
        ]),
    ]);
    let beta = headers(&[("x-beta", "1")]);
    assert_eq!(served(&t, None, "/api/v2/x", &beta), "beta.0");
    assert_eq!(served(&t, None, "/api/v2/x", &HeaderMap::new()), "api.0");
    let (t, _) = t.without_service("api");
    assert_eq!(
        t.lookup(None, "/api/v2/x", &HeaderMap::new())
            .unwrap()
            .service
            .name,
        "fallback"
    );
}

#[test]
fn shared_routes_follow_dfp_order() {
    let none = HeaderMap::new();
    let s = |name: &str, acl: &str, path: &str| {
        let mut pairs = vec![("serviceName", name), ("servicePath", path), ("port", "80")];
        if !acl.is_empty() {
            pairs.push(("aclName", acl));
        }
        svc(&pairs)
    };
    // aclName, not the service name, decides.
    let t = table(vec![
        s("a-first", "20-a", "/shop"),
        s("z-last", "10-z", "/shop"),
    ]);
    assert_eq!(served(&t, None, "/shop", &none), "z-last.0");
    // A destination with another path that is not only `/` comes before a `/`-only one.
    let t = table(vec![s("a-root", "", "/"), s("b-mixed", "", "/,/b")]);
    assert_eq!(served(&t, None, "/", &none), "b-mixed.0");
    // `/.well-known` paths come first whatever the name.
    let t = table(vec![
        s("a", "", "/.well-known/acme-challenge,/"),
        s("0-first", "", "/"),
    ]);
    assert_eq!(served(&t, None, "/x", &none), "a.0");
    // The order is the one /config renders.
    let text = crate::routes::render_haproxy(&table(vec![
        s("a-first", "20-a", "/shop"),
        s("z-last", "10-z", "/shop"),
    ]));
    let z = text.find("use_backend 10-z-be").unwrap();
    let a = text.find("use_backend 20-a-be").unwrap();
    assert!(z < a, "{text}");
}

#[test]
fn replacing_one_of_two_sharing_services_keeps_the_other() {
    let none = HeaderMap::new();
    let a = |port: &str| {
        svc(&[
            ("serviceName", "a"),
            ("servicePath", "/p"),
            ("serviceDomain", "*.x.com"),
            ("port", port),
        ])
    };
    let b = svc(&[
        ("serviceName", "b"),
        ("servicePath", "/p"),
        ("serviceDomain", "*.x.com"),
        ("port", "2"),
    ]);
    let t = table(vec![a("1"), b]);
    let t = t.with_service(a("3")).unwrap();
    let m = t.lookup(Some("w.x.com"), "/p", &none).unwrap();
    assert_eq!((m.service.name.as_str(), m.destination.port), ("a", 3));
    let (t, _) = t.without_service("a");
    assert_eq!(served(&t, Some("w.x.com"), "/p", &none), "b.0");
    let (t, _) = t.without_service("b");
    assert_eq!(served(&t, Some("w.x.com"), "/p", &none), "-");
}

use super::*;
use crate::routes::params::parse_reconfigure;

fn svc(pairs: &[(&str, &str)]) -> Service {
    let query: Vec<(String, String)> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    parse_reconfigure(&query).expect("valid test service")
}

fn http(name: &str, path: &str) -> Service {
    svc(&[
        ("serviceName", name),
        ("servicePath", path),
        ("port", "8080"),
    ])
}

fn table(services: Vec<Service>) -> RouteTable {
    let mut table = RouteTable::default();
    for s in services {
        table = table.with_service(s).expect("no conflict");
    }
    table
}

/// Name of the service serving `host` + `path`, or "-" for no match.
fn served_by<'a>(t: &'a RouteTable, host: Option<&str>, path: &'a str) -> &'a str {
    t.lookup(host, path, &HeaderMap::new())
        .map_or("-", |m| m.service.name.as_str())
}

#[test]
fn article_service_is_found_by_prefix() {
    let t = table(vec![http("go-demo", "/demo")]);
    let m = t
        .lookup(Some("localhost"), "/demo/hello", &HeaderMap::new())
        .unwrap();
    assert_eq!(m.service.name, "go-demo");
    assert_eq!(m.destination.port, 8080);
    assert_eq!(m.path, "/demo/hello");
    // Plain string prefix, as HAProxy's path_beg.
    assert_eq!(served_by(&t, None, "/demoX"), "go-demo");
    assert_eq!(served_by(&t, None, "/other"), "-");
}

#[test]
fn longest_prefix_wins_regardless_of_name_order() {
    let t = table(vec![
        http("a-root", "/"),
        http("b-api", "/api"),
        http("c-users", "/api/users"),
    ]);
    assert_eq!(served_by(&t, None, "/api/users/7"), "c-users");
    assert_eq!(served_by(&t, None, "/api/orders"), "b-api");
    assert_eq!(served_by(&t, None, "/index.html"), "a-root");
}

#[test]
fn exact_beats_prefix_of_same_length() {
    let exact = svc(&[
        ("serviceName", "z-exact"),
        ("servicePath", "/health"),
        ("pathType", "path"),
        ("port", "1"),
    ]);
    let t = table(vec![http("a-prefix", "/health"), exact]);
    assert_eq!(served_by(&t, None, "/health"), "z-exact");
    assert_eq!(served_by(&t, None, "/healthz"), "a-prefix");
}

#[test]
fn hosts_are_matched_case_insensitively_without_port() {
    let site = svc(&[
        ("serviceName", "site"),
        ("serviceDomain", "Example.com"),
        ("port", "80"),
    ]);
    let t = table(vec![site]);
    for host in [
        "example.com",
        "EXAMPLE.com:8080",
        "example.com.",
        " example.com ",
    ] {
        assert_eq!(served_by(&t, Some(host), "/x"), "site", "{host}");
    }
    assert_eq!(served_by(&t, Some("www.example.com"), "/x"), "-");
    assert_eq!(served_by(&t, None, "/x"), "-");
}

#[test]
fn wildcard_domains_match_subdomains_only() {
    let wild = svc(&[
        ("serviceName", "wild"),
        ("serviceDomain", "*.example.com"),
        ("port", "80"),
    ]);
    let t = table(vec![wild]);
    assert_eq!(served_by(&t, Some("a.example.com"), "/"), "wild");
    assert_eq!(served_by(&t, Some("A.B.Example.Com:443"), "/"), "wild");
    assert_eq!(served_by(&t, Some("example.com"), "/"), "-");
    assert_eq!(served_by(&t, Some("badexample.com"), "/"), "-");
}

#[test]
fn domain_route_beats_domainless_of_same_length() {
    let own = svc(&[
        ("serviceName", "z-own"),
        ("serviceDomain", "shop.example.com"),
        ("servicePath", "/api"),
        ("port", "80"),
    ]);
    let wild = svc(&[
        ("serviceName", "y-wild"),
        ("serviceDomain", "*.example.com"),
        ("servicePath", "/api"),
        ("port", "80"),
    ]);
    let t = table(vec![http("a-any", "/api"), own, wild]);
    assert_eq!(served_by(&t, Some("shop.example.com"), "/api"), "z-own");
    assert_eq!(served_by(&t, Some("blog.example.com"), "/api"), "y-wild");
    assert_eq!(served_by(&t, Some("other.org"), "/api"), "a-any");
    // A longer path still beats a more specific host.
    let t = t.with_service(http("b-deep", "/api/v2")).unwrap();
    assert_eq!(
        served_by(&t, Some("shop.example.com"), "/api/v2/x"),
        "b-deep"
    );
}

#[test]
fn regex_routes_rank_by_pattern_length_after_literals() {
    let versioned = svc(&[
        ("serviceName", "versioned"),
        ("servicePath", "^/v[0-9]+/"),
        ("pathType", "path_reg"),
        ("port", "80"),
    ]);
    // The pattern `^/v[0-9]+/` is 10 bytes long.
    let t = table(vec![
        http("root", "/"),
        http("short", "/v1/"),
        http("long", "/v1/legacy-items"),
        versioned,
    ]);
    assert_eq!(served_by(&t, None, "/v2/items"), "versioned");
    assert_eq!(
        served_by(&t, None, "/v1/items"),
        "versioned",
        "beats the shorter /v1/"
    );
    assert_eq!(served_by(&t, None, "/v1/legacy-items/3"), "long");
    assert_eq!(served_by(&t, None, "/about"), "root");
    // Same length: the literal prefix outranks the regex.
    let t = t.with_service(http("same-len", "/v3/abcdef")).unwrap();
    assert_eq!(served_by(&t, None, "/v3/abcdefg"), "same-len");
    assert_eq!(served_by(&t, None, "/v3/abcxyz"), "versioned");
}

#[test]
fn match_carries_rewritten_path() {
    let api = svc(&[
        ("serviceName", "api"),
        ("servicePath", "/api"),
        ("port", "80"),
        ("reqPathSearchReplace", "^/api/(.*),/\\1"),
    ]);
    let t = table(vec![api]);
    assert_eq!(
        t.lookup(None, "/api/users", &HeaderMap::new())
            .unwrap()
            .path,
        "/users"
    );
    assert_eq!(
        t.lookup(None, "/api", &HeaderMap::new()).unwrap().path,
        "/api"
    );
}

#[test]
fn services_sharing_a_route_are_all_kept_and_the_first_by_acl_name_wins() {
    let t = table(vec![http("go-demo", "/demo")]);
    let t = t.with_service(http("another", "/demo")).unwrap();
    assert_eq!(t.services().len(), 2);
    assert_eq!(served_by(&t, None, "/demo"), "another", "aclName order");
    let (without, _) = t.without_service("another");
    assert_eq!(served_by(&without, None, "/demo"), "go-demo");
    let (without, _) = t.without_service("go-demo");
    assert_eq!(served_by(&without, None, "/demo"), "another");
}

#[test]
fn different_path_types_or_hosts_do_not_conflict() {
    let exact = svc(&[
        ("serviceName", "e"),
        ("servicePath", "/x"),
        ("pathType", "path"),
        ("port", "1"),
    ]);
    let hosted = svc(&[
        ("serviceName", "h"),
        ("servicePath", "/x"),
        ("serviceDomain", "h.com"),
        ("port", "1"),
    ]);
    let services = BTreeMap::from([
        ("p".to_owned(), http("p", "/x")),
        ("e".to_owned(), exact),
        ("h".to_owned(), hosted),
    ]);
    assert!(RouteTable::build(services).is_ok());
}

#[test]
fn build_reports_conflicts_too() {
    let tcp = |name: &str| {
        svc(&[
            ("serviceName", name),
            ("reqMode", "tcp"),
            ("srcPort", "5432"),
            ("port", "5432"),
        ])
    };
    let services = BTreeMap::from([("a".to_owned(), tcp("a")), ("b".to_owned(), tcp("b"))]);
    let err = RouteTable::build(services).unwrap_err();
    assert!(matches!(err, RouteError::Conflict { ref owner, .. } if owner == "a"));
}

#[test]
fn a_service_may_replace_its_own_routes() {
    let t = table(vec![http("go-demo", "/demo")]);
    let t = t.with_service(http("go-demo", "/demo")).unwrap();
    let t = t.with_service(http("go-demo", "/v2")).unwrap();
    assert_eq!(served_by(&t, None, "/demo"), "-");
    assert_eq!(served_by(&t, None, "/v2"), "go-demo");
}

#[test]
fn without_service_removes_its_routes() {
    let t = table(vec![http("a", "/a"), http("b", "/b")]);
    let (after, removed) = t.without_service("a");
    assert!(removed);
    assert_eq!(served_by(&after, None, "/a"), "-");
    assert_eq!(served_by(&after, None, "/b"), "b");
    assert_eq!(
        served_by(&t, None, "/a"),
        "a",
        "the old snapshot is unchanged"
    );
    let (_, removed) = after.without_service("a");
    assert!(!removed);
}

#[test]
fn tcp_destinations_are_listed_not_routed() {
    let db = svc(&[
        ("serviceName", "db"),
        ("reqMode", "tcp"),
        ("srcPort", "5432"),
        ("port", "5432"),
    ]);
    let t = table(vec![db, http("web", "/")]);
    let tcp: Vec<_> = t
        .tcp_services()
        .map(|(s, d)| (s.name.as_str(), d.src_port))
        .collect();
    assert_eq!(tcp, [("db", Some(5432))]);
    assert_eq!(served_by(&t, None, "/"), "web");

    let other = svc(&[
        ("serviceName", "other"),
        ("reqMode", "tcp"),
        ("srcPort", "5432"),
        ("port", "1"),
    ]);
    let err = t.with_service(other).unwrap_err();
    assert!(
        err.to_string().contains("tcp srcPort 5432") && err.to_string().contains("db"),
        "{err}"
    );
}

#[test]
fn indexed_destinations_route_independently() {
    let app = svc(&[
        ("serviceName", "app"),
        ("servicePath.1", "/api"),
        ("port.1", "8080"),
        ("servicePath.2", "/admin"),
        ("port.2", "9090"),
    ]);
    let t = table(vec![app]);
    assert_eq!(
        t.lookup(None, "/api/x", &HeaderMap::new())
            .unwrap()
            .destination
            .port,
        8080
    );
    assert_eq!(
        t.lookup(None, "/admin", &HeaderMap::new())
            .unwrap()
            .destination
            .port,
        9090
    );
}

#[test]
fn many_services_are_found_without_a_scan() {
    let mut t = table(vec![http("root", "/")]);
    for i in 0..2000 {
        t = t
            .with_service(http(&format!("svc-{i}"), &format!("/svc-{i}")))
            .unwrap();
    }
    assert_eq!(served_by(&t, None, "/svc-1999/x"), "svc-1999");
    assert_eq!(served_by(&t, None, "/svc-1"), "svc-1");
    assert_eq!(served_by(&t, None, "/other"), "root");
    let (t, _) = t.without_service("svc-1999");
    assert_eq!(served_by(&t, None, "/svc-1999/x"), "svc-199");
}

#[test]
fn an_excluded_path_falls_through_to_the_next_route() {
    let t = table(vec![
        svc(&[
            ("serviceName", "api"),
            ("servicePath", "/api"),
            ("servicePathExclude", "/api/admin"),
            ("port", "8080"),
        ]),
        http("site", "/"),
        svc(&[
            ("serviceName", "exact"),
            ("servicePath", "/e"),
            ("pathType", "path"),
            ("servicePathExclude", "/e"),
            ("port", "8080"),
        ]),
    ]);
    assert_eq!(served_by(&t, None, "/api/users"), "api");
    assert_eq!(served_by(&t, None, "/api/admin/x"), "site");
    assert_eq!(served_by(&t, None, "/e"), "site");
    let alone = table(vec![svc(&[
        ("serviceName", "api"),
        ("servicePath", "/api"),
        ("servicePathExclude", "/api/admin"),
        ("port", "8080"),
    ])]);
    assert_eq!(served_by(&alone, None, "/api/admin"), "-");
}

#[test]
fn the_default_backend_takes_what_no_route_does() {
    let fallback = svc(&[
        ("serviceName", "fallback"),
        ("servicePath", "/fallback"),
        ("isDefaultBackend", "true"),
        ("port", "8080"),
    ]);
    let t = table(vec![http("go-demo", "/demo"), fallback]);
    assert_eq!(served_by(&t, None, "/demo/x"), "go-demo");
    assert_eq!(served_by(&t, Some("any.host"), "/elsewhere"), "fallback");
    let second = svc(&[
        ("serviceName", "other"),
        ("servicePath", "/other"),
        ("isDefaultBackend", "true"),
        ("port", "8080"),
    ]);
    let err = t.with_service(second).unwrap_err();
    assert_eq!(err.status(), 409);
    assert!(err.to_string().contains("fallback"), "{err}");
    let (without, _) = t.without_service("fallback");
    assert_eq!(served_by(&without, None, "/elsewhere"), "-");
}

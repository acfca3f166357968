use std::time::Duration;

use super::*;
use crate::routes::service::{DomainPattern, PathType, ReqMode};

fn q(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn parse(pairs: &[(&str, &str)]) -> Result<Service, RouteError> {
    parse_reconfigure(&q(pairs))
}

/// Asserts the error's status and that its message names `param`.
fn rejects(pairs: &[(&str, &str)], status: u16, param: &str) {
    let err = parse(pairs).expect_err("request should be rejected");
    assert_eq!(err.status(), status, "{err}");
    assert!(
        err.to_string().contains(param),
        "{err:?} should name {param}"
    );
}

#[test]
fn article_example() {
    let svc = parse(&[
        ("serviceName", "go-demo"),
        ("servicePath", "/demo"),
        ("port", "8080"),
    ])
    .unwrap();
    assert_eq!(svc.name, "go-demo");
    assert_eq!(svc.acl_name, "go-demo");
    assert_eq!(svc.destinations.len(), 1);
    let d = &svc.destinations[0];
    assert_eq!(
        (d.index, d.port, d.paths.as_slice()),
        (0, 8080, &["/demo".to_owned()][..])
    );
    assert_eq!(d.path_type, PathType::Prefix);
    assert_eq!(d.req_mode, ReqMode::Http);
    assert_eq!(d.timeout_server, Duration::from_secs(20));
    assert_eq!(d.timeout_tunnel, Duration::from_secs(3600));
    assert_eq!(d.https_redirect_code, 302);
    assert!(svc.users.is_empty());
    assert_eq!(svc.params.len(), 3);
}

#[test]
fn indexed_destinations_inherit_unsuffixed_defaults() {
    let svc = parse(&[
        ("serviceName", "app"),
        ("port", "8080"),
        ("servicePath", "/ignored"),
        ("timeoutServer", "60"),
        ("servicePath.1", "/api,/v1"),
        ("servicePath.2", "/admin"),
        ("port.2", "9090"),
        ("pathType.2", "path"),
    ])
    .unwrap();
    let [one, two] = svc.destinations.as_slice() else {
        panic!("want two destinations, got {:?}", svc.destinations);
    };
    assert_eq!((one.index, one.port), (1, 8080));
    assert_eq!(one.paths, ["/api", "/v1"]);
    assert_eq!(one.path_type, PathType::Prefix);
    assert_eq!((two.index, two.port), (2, 9090));
    assert_eq!(two.paths, ["/admin"]);
    assert_eq!(two.path_type, PathType::Exact);
    assert!(
        svc.destinations
            .iter()
            .all(|d| d.timeout_server == Duration::from_secs(60))
    );
}

#[test]
fn domain_only_routes_the_whole_site() {
    let svc = parse(&[
        ("serviceName", "web"),
        ("serviceDomain", "Example.com,*.example.org"),
        ("port", "80"),
    ])
    .unwrap();
    let d = &svc.destinations[0];
    assert_eq!(d.paths, ["/"]);
    assert_eq!(
        d.domains,
        [
            DomainPattern::Exact("example.com".into()),
            DomainPattern::Suffix(".example.org".into())
        ]
    );
}

#[test]
fn options_are_parsed() {
    let svc = parse(&[
        ("serviceName", "app"),
        ("aclName", "05-app"),
        ("servicePath", "^/api/v[0-9]+"),
        ("pathType", "path_reg"),
        ("port", "80"),
        ("users", "alice:pw1,bob:p:w"),
        ("httpsOnly", "true"),
        ("httpsRedirectCode", "301"),
        ("outboundHostname", "backend.local"),
        ("reqPathSearchReplace", "^/api,"),
        ("replicas", "3"),
        ("distribute", "true"),
    ])
    .unwrap();
    let d = &svc.destinations[0];
    assert_eq!(svc.acl_name, "05-app");
    assert!(matches!(&d.path_type, PathType::Regex(r) if r[0].is_match("/api/v2/x")));
    assert_eq!(svc.users[1].user, "bob");
    assert_eq!(svc.users[1].password.as_deref(), Some("p:w"));
    assert!(d.https_only);
    assert_eq!(d.https_redirect_code, 301);
    assert_eq!(svc.upstream_host(d), "backend.local");
    assert_eq!(d.rewrite_path("/api/x").as_deref(), Some("/x"));
    assert_eq!(svc.replicas(), Some(3));
}

#[test]
fn tcp_destination() {
    let svc = parse(&[
        ("serviceName", "db"),
        ("reqMode", "tcp"),
        ("srcPort", "5432"),
        ("port", "5432"),
    ])
    .unwrap();
    let d = &svc.destinations[0];
    assert_eq!((d.req_mode, d.src_port), (ReqMode::Tcp, Some(5432)));
    assert!(d.paths.is_empty());
}

#[test]
fn dfp_rules_and_their_statuses() {
    rejects(
        &[("servicePath", "/demo"), ("port", "8080")],
        400,
        "serviceName",
    );
    rejects(
        &[
            ("serviceName", ""),
            ("servicePath", "/demo"),
            ("port", "8080"),
        ],
        400,
        "serviceName",
    );
    rejects(
        &[("serviceName", "a"), ("port", "8080")],
        409,
        "servicePath or serviceDomain",
    );
    rejects(
        &[("serviceName", "a"), ("servicePath", "/a")],
        400,
        "port query is mandatory",
    );
    rejects(
        &[("serviceName", "a"), ("reqMode", "tcp"), ("port", "80")],
        400,
        "srcPort and port",
    );
    rejects(
        &[("serviceName", "a"), ("reqMode", "tcp"), ("srcPort", "80")],
        400,
        "srcPort and port",
    );
    // An indexed destination without its own port and no default.
    rejects(
        &[
            ("serviceName", "a"),
            ("servicePath.1", "/a"),
            ("port.1", "1"),
            ("servicePath.2", "/b"),
        ],
        400,
        "port query",
    );
}

#[test]
fn bad_values_name_their_parameter() {
    let base = [("serviceName", "a"), ("servicePath", "/a"), ("port", "80")];
    // The extra parameters come first: the first of duplicates wins.
    let with = |extra: &[(&'static str, &'static str)]| {
        let mut v = extra.to_vec();
        v.extend_from_slice(&base);
        v
    };
    rejects(&with(&[("port", "eighty")]), 400, "port");
    rejects(&with(&[("port", "70000")]), 400, "port");
    rejects(&with(&[("port", "0")]), 400, "port");
    rejects(
        &with(&[("servicePath.1", "/x"), ("port.1", "99999")]),
        400,
        "port.1",
    );
    rejects(&with(&[("servicePath", "demo")]), 400, "servicePath");
    rejects(&with(&[("servicePath", "/de mo")]), 400, "servicePath");
    rejects(&with(&[("serviceName", "go\ndemo")]), 400, "serviceName");
    rejects(&with(&[("aclName", "a b")]), 400, "aclName");
    rejects(
        &with(&[("serviceDomain", "exa mple.com")]),
        400,
        "serviceDomain",
    );
    rejects(&with(&[("pathType", "path_end")]), 400, "pathType");
    rejects(
        &with(&[("pathType", "path_reg"), ("servicePath", "/(a")]),
        400,
        "servicePath",
    );
    rejects(
        &with(&[("reqPathSearchReplace", "[,x")]),
        400,
        "reqPathSearchReplace",
    );
    rejects(&with(&[("reqMode", "sni")]), 400, "reqMode");
    rejects(&with(&[("srcPort", "x")]), 400, "srcPort");
    rejects(&with(&[("timeoutServer", "soon")]), 400, "timeoutServer");
    rejects(&with(&[("httpsOnly", "maybe")]), 400, "httpsOnly");
    rejects(
        &with(&[("httpsRedirectCode", "200")]),
        400,
        "httpsRedirectCode",
    );
    rejects(&with(&[("replicas", "many")]), 400, "replicas");
    rejects(&with(&[("users", "alice:")]), 400, "users");
    rejects(&with(&[("usersSecret", "../etc")]), 400, "usersSecret");
    rejects(
        &with(&[("usersPassEncrypted", "maybe"), ("users", "a:$6$x")]),
        400,
        "usersPassEncrypted",
    );
    rejects(&with(&[("serviceName", "a\"b")]), 400, "serviceName");
    rejects(
        &with(&[("serviceName", "<script>x</script>")]),
        400,
        "serviceName",
    );
    rejects(&with(&[("serviceName", "\u{fffd}")]), 400, "serviceName");
    rejects(
        &with(&[("servicePath", "/h6/../admin")]),
        400,
        "servicePath",
    );
    rejects(&with(&[("servicePath", "/caf\u{e9}")]), 400, "servicePath");
    rejects(&with(&[("servicePath", "/a\u{2028}b")]), 400, "servicePath");
    rejects(
        &with(&[("servicePathExclude", "x")]),
        400,
        "servicePathExclude",
    );
    rejects(&with(&[("allowedMethods", "G ET")]), 400, "allowedMethods");
    rejects(&with(&[("denyHttp", "sure")]), 400, "denyHttp");
    rejects(
        &with(&[("addReqHeader", "X-A %[src]")]),
        400,
        "addReqHeader",
    );
    rejects(
        &with(&[("setResHeader", "Bad(Name) v")]),
        400,
        "setResHeader",
    );
    rejects(&with(&[("servicepath", "/x")]), 400, "servicepath");
    rejects(
        &with(&[("sessionType", "sticky-client")]),
        400,
        "sessionType",
    );
    rejects(&with(&[("sessionCookie", "c")]), 400, "sessionCookie");
    rejects(&with(&[("backendExtra", "option x")]), 400, "backendExtra");
    rejects(&with(&[("aclName.1", "x")]), 400, "aclName.1");
    rejects(
        &with(&[("outboundHostname", "a b")]),
        400,
        "outboundHostname",
    );
    rejects(&with(&[("servicePath.3", "/x")]), 400, "servicePath.3");
    rejects(&with(&[("servicePath.11", "/x")]), 400, "servicePath.11");
}

#[test]
fn user_errors_do_not_leak_passwords() {
    let err = parse(&[
        ("serviceName", "a"),
        ("servicePath", "/a"),
        ("port", "80"),
        ("users", ":hunter2"),
    ])
    .unwrap_err();
    assert!(!err.to_string().contains("hunter2"), "{err}");
}

#[test]
fn overlong_values_are_refused_by_name() {
    let long = format!("/{}", "a".repeat(MAX_VALUE_LEN));
    let err = parse_reconfigure(&q(&[
        ("serviceName", "a"),
        ("port", "80"),
        ("servicePath.1", &long),
    ]))
    .unwrap_err();
    assert_eq!(
        err,
        RouteError::TooLong {
            param: "servicePath.1".into()
        }
    );
    assert_eq!(err.status(), 400);
    assert!(err.to_string().contains("servicePath.1"));
}

#[test]
fn first_duplicate_wins_as_in_dfp() {
    let svc = parse(&[
        ("serviceName", "a"),
        ("servicePath", "/a"),
        ("port", "80"),
        ("port", "81"),
    ])
    .unwrap();
    assert_eq!(svc.destinations[0].port, 80);
    assert_eq!(svc.params["port"], "80");
}

#[test]
fn access_and_header_rules_are_parsed() {
    let svc = parse(&[
        ("serviceName", "a"),
        ("servicePath", "/a"),
        ("port", "80"),
        ("servicePathExclude", "/a/private,/a/admin"),
        ("allowedMethods", "GET,head"),
        ("denyHttp", "true"),
        ("ignoreAuthorization", "1"),
        ("users", "admin"),
        ("usersSecret", "team"),
        ("usersPassEncrypted", "true"),
        ("redirectWhenHttpProto", "true"),
        ("addHeader", "X-Old alias"),
        ("setReqHeader", "X-Env prod"),
        ("delResHeader", "Server"),
    ])
    .unwrap();
    let d = &svc.destinations[0];
    assert_eq!(d.path_excludes, ["/a/private", "/a/admin"]);
    assert!(d.excludes("/a/admin/x") && !d.excludes("/a/public"));
    assert_eq!(d.access.allowed_methods, ["GET", "HEAD"]);
    assert!(d.access.deny_http && d.access.ignore_authorization);
    assert_eq!(svc.users[0].password, None);
    assert_eq!(svc.users_secret.as_deref(), Some("team"));
    assert!(svc.users_encrypted && svc.redirect_when_http_proto);
    assert_eq!(
        svc.request_headers.add,
        [("X-Old".to_owned(), "alias".to_owned())]
    );
    assert_eq!(
        svc.request_headers.set,
        [("X-Env".to_owned(), "prod".to_owned())]
    );
    assert_eq!(svc.response_headers.del, ["Server"]);
}

#[test]
fn round_trip_through_params() {
    let svc = parse(&[
        ("serviceName", "app"),
        ("servicePath.1", "/a,/b"),
        ("port.1", "80"),
        ("serviceDomain.2", "*.Example.com"),
        ("port.2", "81"),
        ("reqPathSearchReplace.2", "^/x/(.*),/\\1"),
        ("users", "u:p"),
        ("timeoutTunnel", "7"),
        ("connectionMode", "x"),
    ])
    .unwrap();
    let again = parse_params(svc.params.clone()).unwrap();
    assert_eq!(again, svc);
    assert_eq!(
        again.destinations[1].rewrite_path("/x/y").as_deref(),
        Some("/y")
    );
}

#[test]
fn distribute_is_a_lenient_bool() {
    assert!(distribute_requested(&q(&[("distribute", "true")])));
    assert!(distribute_requested(&q(&[
        ("distribute", "true"),
        ("distribute", "false")
    ])));
    assert!(!distribute_requested(&q(&[("distribute", "yes")])));
    assert!(!distribute_requested(&q(&[])));
}

use super::*;

fn dest() -> Destination {
    Destination {
        index: 0,
        port: 8080,
        paths: vec!["/demo".into()],
        path_type: PathType::Prefix,
        domains: vec![],
        req_mode: ReqMode::Http,
        src_port: None,
        path_rewrites: vec![],
        timeout_server: DEFAULT_TIMEOUT_SERVER,
        timeout_tunnel: DEFAULT_TIMEOUT_TUNNEL,
        timeout_client: None,
        outbound_hostname: None,
        https_only: false,
        https_redirect_code: DEFAULT_HTTPS_REDIRECT_CODE,
        path_excludes: vec![],
        redirect_from: vec![],
        access: Access::default(),
        conditions: Conditions::default(),
    }
}

fn service(d: Destination) -> Service {
    Service {
        name: "go-demo".into(),
        acl_name: "go-demo".into(),
        destinations: vec![d],
        users: vec![BasicUser {
            user: "admin".into(),
            password: Some("s3cret".into()),
        }],
        users_secret: None,
        users_encrypted: false,
        is_default_backend: false,
        sticky_cookie: None,
        redirect_when_http_proto: false,
        redirect_unless_https_proto: false,
        request_headers: HeaderRules::default(),
        response_headers: HeaderRules::default(),
        params: BTreeMap::from([
            ("replicas".to_owned(), "3".to_owned()),
            ("users".to_owned(), "admin:s3cret".to_owned()),
        ]),
    }
}

#[test]
fn upstream_host_prefers_outbound_hostname() {
    let svc = service(dest());
    assert_eq!(svc.upstream_host(&svc.destinations[0]), "go-demo");
    let mut d = dest();
    d.outbound_hostname = Some("10.0.0.7".into());
    let svc = service(d);
    assert_eq!(svc.upstream_host(&svc.destinations[0]), "10.0.0.7");
}

#[test]
fn rewrite_replaces_first_match_and_keeps_leading_slash() {
    let mut d = dest();
    assert_eq!(d.rewrite_path("/demo/x"), None);
    d.path_rewrites = vec![(Regex::new("^/demo").unwrap(), String::new())];
    assert_eq!(d.rewrite_path("/demo/x").as_deref(), Some("/x"));
    assert_eq!(d.rewrite_path("/demo").as_deref(), Some("/"));
    assert_eq!(d.rewrite_path("/other"), None);
}

#[test]
fn debug_hides_passwords() {
    let svc = service(dest());
    let debug = format!("{svc:?}");
    assert!(!debug.contains("s3cret"), "{debug}");
    assert!(
        debug.contains("admin") && debug.contains("replicas"),
        "{debug}"
    );
}

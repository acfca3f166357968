use super::*;

fn view() -> View {
    View {
        now: 1_000_000,
        ready: true,
        discovery: "Docker labels (/var/run/docker.sock)".to_owned(),
        docker: Some(DockerState {
            last_read: Some(1_000_000 - 4),
            labelled: 2,
            problem: None,
        }),
        listener: None,
        services: vec![
            ServiceRow {
                name: "go-demo".to_owned(),
                routes: vec![RouteRow {
                    tcp: false,
                    route: "/demo".to_owned(),
                    port: 8080,
                    replicas: vec![
                        ("198.18.0.2:8080".parse().unwrap(), true),
                        ("198.18.0.3:8080".parse().unwrap(), false),
                    ],
                    last_error: None,
                    flows: None,
                }],
            },
            ServiceRow {
                name: "db".to_owned(),
                routes: vec![RouteRow {
                    tcp: true,
                    route: ":15432".to_owned(),
                    port: 5432,
                    replicas: vec![],
                    last_error: Some("no address for tasks.db".to_owned()),
                    flows: Some((7, 2)),
                }],
            },
        ],
        peers: serde_json::json!({"Tasks": "tasks.proxy", "Message": "", "Peers": [
            {"Address": "198.18.0.9:8080", "InSync": true},
            {"Address": "198.18.0.10:8080", "Error": "timed out"},
        ], "Refused": []}),
        certs: vec![CertInfo {
            name: "a.test".to_owned(),
            sans: vec!["a.test".to_owned()],
            issuer: "CN=test".to_owned(),
            not_after: 1_000_000 + 3 * 86_400,
            source: "api".to_owned(),
        }],
        refused: vec![Refused {
            client: "198.18.0.1".parse().unwrap(),
            path: "/v1/docker-flow-proxy/reconfigure".to_owned(),
            service: Some("x".to_owned()),
            status: 400,
            reason: "port <must> be a number".to_owned(),
        }],
    }
}

#[test]
fn every_section_shows_what_it_was_given() {
    let html = render(&view());
    assert!(html.starts_with("<!doctype html>"));
    for expected in [
        "<td class=\"service\">go-demo</td>",
        "198.18.0.2:8080 up",
        "198.18.0.3:8080 ejected",
        "none: no address for tasks.db",
        "7 / 2",
        "198.18.0.9:8080</td><td><span class=\"up\">in sync",
        "unreachable: timed out",
        "in 3 days",
        "port &lt;must&gt; be a number",
        "<b id=\"ready\">ready</b>",
        "read 4 s ago</span>, 2 labelled services",
    ] {
        assert!(html.contains(expected), "{expected} missing from\n{html}");
    }
    assert!(!html.contains("<must>"), "unescaped text");
    assert!(!html.contains("<script"), "no script");
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "no external asset"
    );
}

#[test]
fn an_empty_replica_says_so() {
    let mut v = view();
    v.services.clear();
    v.refused.clear();
    v.certs.clear();
    let html = render(&v);
    assert!(html.contains("No service is configured yet."));
    assert!(html.contains("None lately."));
}

#[test]
fn markup_in_names_is_escaped() {
    assert_eq!(
        esc("<a href=\"x\">'&'</a>"),
        "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
    );
}

#[test]
fn docker_discovery_shows_what_stops_it_and_since_when() {
    let mut v = view();
    v.docker = Some(DockerState {
        last_read: Some(10),
        labelled: 1,
        problem: Some((1_000_000 - 30, "Docker API at /x is not usable".to_owned())),
    });
    let html = render(&v);
    assert!(
        html.contains("failing for 30 s: Docker API at /x is not usable"),
        "{html}"
    );
    v.docker = Some(DockerState::default());
    assert!(render(&v).contains("not read yet"));
    v.docker = None;
    assert!(!render(&v).contains("docker-discovery"));
}

//! The DFP rules a migrated stack relies on, each seen from curl: basic auth from every
//! source, method and plain-HTTP refusals, path exclusions, header rules, forwarded-proto
//! redirects, `replicas=0` and the first of repeated parameters.
use std::path::PathBuf;

use flowproxy_tests::{
    CurlResponse, GoDemo, RunningProxy, TestCa, TlsClient, curl, proxy::temp_state_dir,
};

/// A directory for the test's files, removed on drop.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

const SHA512_S3CRET: &str = "$6$abcdefgh$Z7KfoKnKTSZrzo5VZ0YubGLQOj9ov6sHo9TmE3zIU/LHKhpE30zCnZ0mcIXYf9r9rQ4DYaXoxAFSPFlcWdxjB.";

fn reconfigure(proxy: &RunningProxy, query: &str) -> anyhow::Result<CurlResponse> {
    proxy.api(&format!("/v1/docker-flow-proxy/reconfigure?{query}"))
}

/// Publishes go-demo's replicas as `tasks.<name>` too, as Swarm would for a service of
/// that name on the same image.
fn publish(demo: &GoDemo, name: &str) -> anyhow::Result<()> {
    let addrs: Vec<_> = demo.replicas.iter().map(|r| r.link.host_addr).collect();
    demo.dns.set(&format!("tasks.{name}"), &addrs)
}

/// A service named `name` on `/name` that reaches go-demo's `/demo/...`.
fn add(proxy: &RunningProxy, demo: &GoDemo, name: &str, extra: &str) -> anyhow::Result<()> {
    publish(demo, name)?;
    let query = format!(
        "serviceName={name}&servicePath=/{name}&port=8080\
         &reqPathSearchReplace=%5E/{name},/demo{extra}"
    );
    let resp = reconfigure(proxy, &query)?;
    anyhow::ensure!(resp.status == 200, "{name}: {}", resp.body);
    Ok(())
}

fn status(args: &[&str]) -> anyhow::Result<u16> {
    Ok(curl(args)?.status)
}

#[test]
fn basic_auth_comes_from_users_secrets_hashes_and_global_users() -> anyhow::Result<()> {
    let demo = GoDemo::start(1)?;
    let secrets = TempDir(temp_state_dir().with_extension("secrets"));
    std::fs::create_dir_all(&secrets.0)?;
    std::fs::write(secrets.0.join("dfp_users_team"), "alice:a1\nbob:b1\n")?;
    let proxy = demo
        .flowproxy()
        .arg("--no-ebpf")
        .arg("--secrets-dir")
        .arg(secrets.0.to_string_lossy())
        .arg("--users")
        .arg("admin:pw,carol:c1")
        .start()?;
    add(&proxy, &demo, "global", "")?;
    add(&proxy, &demo, "own", "&users=dave:d1")?;
    add(&proxy, &demo, "filled", "&users=carol")?;
    add(&proxy, &demo, "secret", "&usersSecret=team")?;
    add(
        &proxy,
        &demo,
        "hashed",
        &format!(
            "&users=eve:{}&usersPassEncrypted=true",
            SHA512_S3CRET.replace('$', "%24")
        ),
    )?;
    add(&proxy, &demo, "open", "&ignoreAuthorization=true")?;
    let url = |p: &str| proxy.url(p);
    for (path, user, good) in [
        ("/global/hello", "admin:pw", true),
        ("/global/hello", "admin:nope", false),
        ("/own/hello", "dave:d1", true),
        ("/own/hello", "admin:pw", false),
        ("/filled/hello", "carol:c1", true),
        ("/filled/hello", "admin:pw", false),
        ("/secret/hello", "bob:b1", true),
        ("/secret/hello", "admin:pw", false),
        ("/hashed/hello", "eve:s3cret", true),
        ("/hashed/hello", "eve:wrong", false),
    ] {
        let expected = if good { 200 } else { 401 };
        assert_eq!(
            status(&["-u", user, &url(path)])?,
            expected,
            "{path} as {user}"
        );
        assert_eq!(status(&[&url(path)])?, 401, "{path} without credentials");
    }
    assert_eq!(status(&[&url("/open/hello")])?, 200);
    // The proxy's credentials never reach the replica.
    let seen = curl(&["-u", "admin:pw", &url("/global/headers")])?;
    assert_eq!(seen.status, 200);
    assert!(
        !seen.body.to_ascii_lowercase().contains("authorization:"),
        "{}",
        seen.body
    );
    // A change that cannot work is refused, and nothing changes.
    let missing = reconfigure(
        &proxy,
        "serviceName=x&servicePath=/x&port=8080&usersSecret=absent",
    )?;
    assert_eq!(missing.status, 400, "{}", missing.body);
    assert!(
        missing.body.contains("dfp_users_absent"),
        "{}",
        missing.body
    );
    Ok(())
}

#[test]
fn methods_and_plain_http_are_refused_with_403() -> anyhow::Result<()> {
    let demo = GoDemo::start(1)?;
    let proxy = demo.flowproxy().arg("--no-ebpf").start()?;
    add(&proxy, &demo, "readonly", "&allowedMethods=GET,HEAD")?;
    add(&proxy, &demo, "nodelete", "&deniedMethods=DELETE")?;
    add(&proxy, &demo, "tlsonly", "&denyHttp=true")?;
    assert_eq!(status(&[&proxy.url("/readonly/hello")])?, 200);
    assert_eq!(status(&["-X", "POST", &proxy.url("/readonly/hello")])?, 403);
    assert_eq!(
        status(&["-X", "DELETE", &proxy.url("/nodelete/hello")])?,
        403
    );
    assert_eq!(status(&["-X", "PUT", &proxy.url("/nodelete/echo")])?, 200);
    assert_eq!(status(&[&proxy.url("/tlsonly/hello")])?, 403);
    let https = format!("https://{}/tlsonly/hello", proxy.https_addr);
    assert_eq!(status(&["-k", &https])?, 200);
    Ok(())
}

#[test]
fn an_excluded_path_goes_to_the_next_route() -> anyhow::Result<()> {
    let demo = GoDemo::start(1)?;
    let proxy = demo.flowproxy().arg("--no-ebpf").start()?;
    add(&proxy, &demo, "app", "&servicePathExclude=/app/who")?;
    assert_eq!(status(&[&proxy.url("/app/hello")])?, 200);
    assert_eq!(status(&[&proxy.url("/app/who")])?, 404);
    // A catch-all service takes what the first excludes.
    publish(&demo, "site")?;
    let site = "serviceName=site&servicePath=/&port=8080\
                &reqPathSearchReplace=%5E/app,/demo&setResHeader=X-Served-By%20site";
    assert_eq!(reconfigure(&proxy, site)?.status, 200);
    let resp = curl(&[&proxy.url("/app/who")])?;
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert_eq!(resp.header("x-served-by"), Some("site"));
    assert_eq!(
        curl(&[&proxy.url("/app/hello")])?.header("x-served-by"),
        None
    );
    Ok(())
}

#[test]
fn header_rules_rewrite_requests_and_responses() -> anyhow::Result<()> {
    let demo = GoDemo::start(1)?;
    let proxy = demo.flowproxy().arg("--no-ebpf").start()?;
    add(
        &proxy,
        &demo,
        "hdr",
        "&addReqHeader=X-Env%20prod,X-Team%20web&setReqHeader=X-Client%20proxy\
         &delReqHeader=X-Secret&addResHeader=X-Proxy%20flowproxy&delResHeader=Content-Type",
    )?;
    let resp = curl(&[
        "-H",
        "X-Secret: s",
        "-H",
        "X-Client: spoofed",
        &proxy.url("/hdr/headers"),
    ])?;
    assert_eq!(resp.status, 200, "{}", resp.body);
    let body = resp.body.to_ascii_lowercase();
    assert!(
        body.contains("x-env: prod") && body.contains("x-team: web"),
        "{body}"
    );
    assert!(
        body.contains("x-client: proxy") && !body.contains("spoofed"),
        "{body}"
    );
    assert!(!body.contains("x-secret"), "{body}");
    assert_eq!(resp.header("x-proxy"), Some("flowproxy"));
    assert_eq!(resp.header("content-type"), None);
    // HAProxy expressions cannot be evaluated here: refused by name.
    let refused = reconfigure(
        &proxy,
        "serviceName=x&servicePath=/x&port=8080&addReqHeader=X-Src%20%25%5Bsrc%5D",
    )?;
    assert_eq!(refused.status, 400);
    assert!(refused.body.contains("addReqHeader"), "{}", refused.body);
    Ok(())
}

#[test]
fn forwarded_proto_redirects_replicas_zero_and_first_values() -> anyhow::Result<()> {
    let demo = GoDemo::start(1)?;
    let proxy = demo.flowproxy().arg("--no-ebpf").start()?;
    add(
        &proxy,
        &demo,
        "lb",
        "&redirectWhenHttpProto=true&httpsRedirectCode=301",
    )?;
    let behind_lb = curl(&[
        "-H",
        "X-Forwarded-Proto: http",
        "-H",
        "Host: a.example",
        &proxy.url("/lb/hello"),
    ])?;
    assert_eq!(behind_lb.status, 301);
    assert!(
        behind_lb
            .header("location")
            .is_some_and(|l| l.starts_with("https://a.example")),
        "{:?}",
        behind_lb.headers
    );
    let secure = curl(&["-H", "X-Forwarded-Proto: https", &proxy.url("/lb/hello")])?;
    assert_eq!(secure.status, 200);
    // The first of repeated parameters wins, as in DFP.
    let first = reconfigure(
        &proxy,
        "serviceName=go-demo&servicePath=/demo&port=8080&port=9999",
    )?;
    assert_eq!(first.status, 200);
    assert_eq!(status(&[&proxy.url("/demo/hello")])?, 200);
    // A harmless HAProxy setting is accepted and named.
    let tuned = reconfigure(
        &proxy,
        "serviceName=go-demo&servicePath=/demo&port=8080&connectionMode=http-server-close",
    )?;
    assert_eq!(tuned.status, 200);
    assert!(tuned.body.contains("connectionMode"), "{}", tuned.body);
    // Scaled to zero: removed.
    let zero = reconfigure(
        &proxy,
        "serviceName=go-demo&servicePath=/demo&port=8080&replicas=0",
    )?;
    assert_eq!(zero.status, 200, "{}", zero.body);
    assert!(zero.body.contains("removed"), "{}", zero.body);
    assert_eq!(status(&[&proxy.url("/demo/hello")])?, 404);
    Ok(())
}

/// The `name=value` part of a response's `Set-Cookie`, if it sets `name`.
fn set_cookie(resp: &CurlResponse, name: &str) -> Option<String> {
    resp.headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("set-cookie"))
        .map(|(_, v)| v.split(';').next().unwrap_or_default().trim().to_owned())
        .find(|pair| pair.starts_with(&format!("{name}=")))
}

fn who(proxy: &RunningProxy, cookie: Option<&str>) -> anyhow::Result<CurlResponse> {
    let url = proxy.url("/demo/who");
    match cookie {
        Some(c) => curl(&["-H", &format!("Cookie: theme=dark; {c}"), &url]),
        None => curl(&[&url]),
    }
}

#[test]
fn a_sticky_cookie_holds_on_every_proxy_and_survives_its_replica() -> anyhow::Result<()> {
    let mut demo = GoDemo::start(3)?;
    let sticky = "serviceName=go-demo&servicePath=/demo&port=8080&sessionType=sticky-server\
                  &sessionCookie=GODEMO";
    let a = demo.flowproxy().arg("--no-ebpf").start()?;
    let b = demo.flowproxy().arg("--no-ebpf").start()?;
    for proxy in [&a, &b] {
        assert_eq!(reconfigure(proxy, sticky)?.status, 200);
    }
    let first = who(&a, None)?;
    assert_eq!(first.status, 200);
    let cookie = set_cookie(&first, "GODEMO").expect("the first answer pins the client");
    let pinned = first.body.trim().to_owned();
    let raw = first
        .headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("set-cookie"))
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    assert!(
        raw.contains("HttpOnly") && raw.contains("SameSite=Lax"),
        "{raw}"
    );
    // Both proxies send the cookie's client to the same replica, and set nothing new.
    for proxy in [&a, &b, &a, &b, &a, &b] {
        let resp = who(proxy, Some(&cookie))?;
        assert_eq!(resp.body.trim(), pinned, "the cookie was not honoured");
        assert_eq!(set_cookie(&resp, "GODEMO"), None);
    }
    // Without a cookie, balancing stays round robin.
    let spread: std::collections::BTreeSet<String> = (0..6)
        .map(|_| who(&a, None).map(|r| r.body.trim().to_owned()))
        .collect::<Result<_, _>>()?;
    assert_eq!(spread.len(), 3, "{spread:?}");
    // The pinned replica dies mid-session: the next request goes elsewhere, re-pinned.
    let index = demo
        .replicas
        .iter()
        .position(|r| r.backend.name() == pinned)
        .expect("the pinned replica is one of ours");
    demo.replicas[index].backend.kill();
    demo.replicas.remove(index);
    demo.publish()?;
    let moved = flowproxy_tests::eventually(std::time::Duration::from_secs(10), || {
        let resp = who(&b, Some(&cookie))?;
        anyhow::ensure!(resp.status == 200, "{}", resp.body);
        Ok(resp)
    })?;
    assert_ne!(moved.body.trim(), pinned);
    let repinned = set_cookie(&moved, "GODEMO").expect("the cookie is rewritten");
    for proxy in [&a, &b] {
        let resp = who(proxy, Some(&repinned))?;
        assert_eq!(resp.body.trim(), moved.body.trim());
    }
    Ok(())
}

#[test]
fn the_default_backend_takes_unrouted_requests() -> anyhow::Result<()> {
    let demo = GoDemo::start(1)?;
    let proxy = demo.flowproxy().arg("--no-ebpf").start()?;
    assert_eq!(status(&[&proxy.url("/demo/hello")])?, 404);
    let fallback = "serviceName=go-demo&servicePath=/demo&port=8080&isDefaultBackend=true";
    assert_eq!(reconfigure(&proxy, fallback)?.status, 200);
    // /demo/hello by its route, /demo/who... and any other path by the default.
    assert_eq!(status(&[&proxy.url("/demo/hello")])?, 200);
    let other = curl(&["-H", "Host: elsewhere.example", &proxy.url("/demo/who")])?;
    assert_eq!(other.status, 200);
    let unrouted = curl(&[&proxy.url("/not-routed")])?;
    assert_eq!(
        unrouted.status, 404,
        "the replica's own 404, not the proxy's"
    );
    assert!(!unrouted.body.contains("no route"), "{}", unrouted.body);
    Ok(())
}

#[test]
fn an_old_domain_is_redirected_to_the_services_domain() -> anyhow::Result<()> {
    let demo = GoDemo::start(1)?;
    let proxy = demo.flowproxy().arg("--no-ebpf").start()?;
    let moved = "serviceName=go-demo&servicePath=/demo&port=8080&serviceDomain=new.example\
                 &redirectFromDomain=old.example,*.legacy.example";
    assert_eq!(reconfigure(&proxy, moved)?.status, 200);
    for host in ["old.example", "OLD.example:8000", "www.legacy.example"] {
        let resp = curl(&[
            "-H",
            &format!("Host: {host}"),
            &proxy.url("/demo/hello?x=1"),
        ])?;
        assert_eq!(resp.status, 301, "{host}");
        assert_eq!(
            resp.header("location"),
            Some("http://new.example/demo/hello?x=1")
        );
    }
    let served = curl(&["-H", "Host: new.example", &proxy.url("/demo/hello")])?;
    assert_eq!(served.status, 200);
    // The first serviceDomain is where redirects go: a wildcard cannot be.
    let bad = reconfigure(
        &proxy,
        "serviceName=x&servicePath=/x&port=8080&serviceDomain=*.a.example&redirectFromDomain=b.example",
    )?;
    assert_eq!(bad.status, 400);
    assert!(bad.body.contains("redirectFromDomain"), "{}", bad.body);
    Ok(())
}

/// Percent-encodes everything but unreserved characters.
fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[test]
fn a_service_cert_is_served_for_its_domain() -> anyhow::Result<()> {
    let demo = GoDemo::start(1)?;
    let proxy = demo.flowproxy().arg("--no-ebpf").start()?;
    let ca = TestCa::new()?;
    let issued = ca.issue(&["shop.example"])?;
    // DFP's clients send the PEM's newlines as a literal \n.
    let pem = issued.bundle.trim_end().replace('\n', "\\n");
    let query = format!(
        "serviceName=go-demo&servicePath=/demo&port=8080&serviceDomain=shop.example&serviceCert={}",
        encode(&pem)
    );
    let resp = reconfigure(&proxy, &query)?;
    assert_eq!(resp.status, 200, "{}", resp.body);
    let mut client = TlsClient::connect(proxy.https_addr, "shop.example", &ca)?;
    assert_eq!(client.get("/demo/hello")?.0, 200);
    let certs = proxy.api("/v1/docker-flow-proxy/certs")?.body;
    assert!(certs.contains("shop.example"), "{certs}");
    // A PEM that does not parse is refused by name, and the service is not added.
    let bad = reconfigure(
        &proxy,
        "serviceName=other&servicePath=/other&port=8080&serviceCert=not-a-pem",
    )?;
    assert_eq!(bad.status, 400, "{}", bad.body);
    assert!(bad.body.contains("serviceCert"), "{}", bad.body);
    let json = proxy.api("/v1/docker-flow-proxy/config?type=JSON")?.body;
    assert!(
        json.contains("go-demo") && !json.contains("\"other\""),
        "{json}"
    );
    let smoke = proxy.api("/v1/test")?.body;
    assert!(smoke.contains("Test v1"), "DFP's API smoke test: {smoke}");
    Ok(())
}

#[test]
fn only_trusted_proxies_set_the_forwarded_proto() -> anyhow::Result<()> {
    let demo = GoDemo::start(1)?;
    let headers_seen = |proxy: &RunningProxy| -> anyhow::Result<String> {
        let resp = curl(&[
            "-H",
            "X-Forwarded-Proto: https",
            "-H",
            "X-Forwarded-Host: shop.example",
            &proxy.url("/demo/headers"),
        ])?;
        anyhow::ensure!(resp.status == 200, "{}", resp.body);
        Ok(resp.body.to_ascii_lowercase())
    };
    let route = "serviceName=go-demo&servicePath=/demo&port=8080&redirectUnlessHttpsProto=true";
    // Behind a load balancer we trust (curl comes from 127.0.0.1): its headers stand.
    let behind_lb = demo
        .flowproxy()
        .arg("--no-ebpf")
        .arg("--trusted-proxies")
        .arg("127.0.0.0/8,198.18.0.0/15")
        .start()?;
    assert_eq!(reconfigure(&behind_lb, route)?.status, 200);
    let seen = headers_seen(&behind_lb)?;
    assert!(seen.contains("x-forwarded-proto: https"), "{seen}");
    assert!(seen.contains("x-forwarded-host: shop.example"), "{seen}");
    drop(behind_lb);
    // Trusting someone else: the client's claim is replaced, and it is redirected.
    let elsewhere = demo
        .flowproxy()
        .arg("--no-ebpf")
        .arg("--trusted-proxies")
        .arg("198.18.0.1")
        .start()?;
    assert_eq!(reconfigure(&elsewhere, route)?.status, 200);
    let resp = curl(&[
        "-H",
        "X-Forwarded-Proto: https",
        &elsewhere.url("/demo/headers"),
    ])?;
    assert_eq!(
        resp.status, 302,
        "an untrusted claim of HTTPS is not believed"
    );
    let plain = "serviceName=go-demo&servicePath=/demo&port=8080";
    assert_eq!(reconfigure(&elsewhere, plain)?.status, 200);
    let seen = headers_seen(&elsewhere)?;
    assert!(seen.contains("x-forwarded-proto: http\n"), "{seen}");
    assert!(!seen.contains("shop.example"), "{seen}");
    Ok(())
}

#[test]
fn a_services_timeout_client_cuts_its_stalled_uploads() -> anyhow::Result<()> {
    use std::time::{Duration, Instant};
    let demo = GoDemo::start(1)?;
    // The global default is long; the service's own is one second.
    let proxy = demo
        .flowproxy()
        .arg("--no-ebpf")
        .arg("--timeout-client")
        .arg("30")
        .start()?;
    add(&proxy, &demo, "upload", "&timeoutClient=1")?;
    let mut client = flowproxy_tests::RawClient::connect(proxy.http_addr)?;
    client.send(
        b"POST /upload/echo HTTP/1.1\r\nHost: go-demo\r\nContent-Length: 100000\r\n\r\n0123456789",
    )?;
    let started = Instant::now();
    let answer = client.response(Duration::from_secs(10))?;
    assert_eq!(answer.status, 408, "{answer:?}");
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(answer.body.contains("timeoutClient"), "{}", answer.body);
    Ok(())
}

//! HTTPS on the TLS listener: certificates chosen by SNI from files, secrets and the API,
//! HTTP/2 over TLS, httpsOnly redirects, hot swaps that keep open connections, refused bad
//! certificates, and certificates that survive a restart. Clients are real: curl and rustls.
use std::path::Path;

use flowproxy_tests::{
    CurlResponse, GoDemo, RunningProxy, TestCa, TlsClient, curl, go_demo::RECONFIGURE,
    proxy::TempDir,
};

fn start(
    demo: &GoDemo,
    extra: &[(&str, &Path)],
    state: Option<&Path>,
) -> anyhow::Result<RunningProxy> {
    let mut proxy = demo.flowproxy().arg("--no-ebpf");
    for (flag, path) in extra {
        proxy = proxy.arg(*flag).arg(path.to_string_lossy());
    }
    if let Some(dir) = state {
        proxy = proxy.state_dir(dir);
    }
    let proxy = proxy.start()?;
    let answer = proxy.api(&format!("/v1/docker-flow-proxy/reconfigure?{RECONFIGURE}"))?;
    anyhow::ensure!(answer.status == 200, "{}", answer.body);
    Ok(proxy)
}

fn put_cert(
    proxy: &RunningProxy,
    name: &str,
    pem: &str,
    dir: &Path,
) -> anyhow::Result<CurlResponse> {
    let file = dir.join(format!("upload-{name}.pem"));
    std::fs::write(&file, pem)?;
    curl(&[
        "-X",
        "PUT",
        "--data-binary",
        &format!("@{}", file.display()),
        &proxy.api_url(&format!("/v1/docker-flow-proxy/cert?certName={name}")),
    ])
}

/// `curl --cacert --resolve` as a browser on `host` would see the proxy.
fn https_curl(
    proxy: &RunningProxy,
    ca: &Path,
    host: &str,
    path: &str,
    extra: &[&str],
) -> anyhow::Result<CurlResponse> {
    let port = proxy.https_addr.port();
    let resolve = format!("{host}:{port}:127.0.0.1");
    let url = format!("https://{host}:{port}{path}");
    let mut args = vec![
        "--cacert",
        ca.to_str().unwrap_or_default(),
        "--resolve",
        &resolve,
    ];
    args.extend_from_slice(extra);
    args.push(&url);
    curl(&args)
}

#[test]
fn sni_picks_each_certificate_and_unknown_names_get_the_default() -> anyhow::Result<()> {
    let demo = GoDemo::start(1)?;
    let ca = TestCa::new()?;
    let (certs, secrets) = (TempDir::new("certs")?, TempDir::new("secrets")?);
    let a = ca.issue(&["a.example.com"])?;
    let b = ca.issue(&["b.example.com"])?;
    let wild = ca.issue(&["*.wild.example.com"])?;
    std::fs::write(certs.0.join("a.pem"), &a.bundle)?;
    std::fs::write(secrets.0.join("cert-b"), &b.bundle)?;
    std::fs::write(secrets.0.join("not-a-cert"), "ignored: not named cert-*")?;
    let proxy = start(
        &demo,
        &[("--certs-dir", &certs.0), ("--secrets-dir", &secrets.0)],
        None,
    )?;
    assert_eq!(
        put_cert(&proxy, "wild", &wild.bundle, &certs.0)?.status,
        200
    );

    for (sni, expected) in [
        ("a.example.com", &a.der),
        ("b.example.com", &b.der),
        ("x.wild.example.com", &wild.der),
    ] {
        let client = TlsClient::connect(proxy.https_addr, sni, &ca)?;
        assert!(
            &client.peer_certificate()? == expected,
            "{sni} got the wrong certificate"
        );
    }
    // No certificate covers this name: the default (the first by name, "a") answers.
    let unknown = TlsClient::connect_any(proxy.https_addr, "unknown.example.org")?;
    assert!(
        unknown.peer_certificate()? == a.der,
        "unknown names get the default certificate"
    );

    let ca_file = certs.0.join("ca.pem");
    ca.write_pem(&ca_file)?;
    for host in ["a.example.com", "b.example.com", "x.wild.example.com"] {
        let resp = https_curl(&proxy, &ca_file, host, "/demo/headers", &[])?;
        assert_eq!(resp.status, 200, "{host}: {}", resp.body);
        assert!(
            resp.body.contains("x-forwarded-proto: https"),
            "{}",
            resp.body
        );
    }
    let listed = proxy.api("/v1/docker-flow-proxy/certs")?;
    for name in [
        "\"a\"",
        "\"cert-b\"",
        "\"wild\"",
        "a.example.com",
        "flowproxy test CA",
    ] {
        assert!(
            listed.body.contains(name),
            "{name} missing from {}",
            listed.body
        );
    }
    assert!(
        !listed.body.contains("PRIVATE KEY"),
        "keys must never be listed"
    );
    let metrics = proxy.api("/metrics")?.body;
    assert!(
        metrics.contains("flowproxy_tls_handshakes_total{result=\"ok\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("flowproxy_tls_cert_not_after_seconds{name=\"a\"}"),
        "{metrics}"
    );
    Ok(())
}

#[test]
fn http2_over_tls_reaches_the_backend() -> anyhow::Result<()> {
    let demo = GoDemo::start(1)?;
    let ca = TestCa::new()?;
    let certs = TempDir::new("certs")?;
    std::fs::write(
        certs.0.join("site.pem"),
        ca.issue(&["site.example.com"])?.bundle,
    )?;
    ca.write_pem(&certs.0.join("ca.pem"))?;
    let proxy = start(&demo, &[("--certs-dir", &certs.0)], None)?;
    let resp = https_curl(
        &proxy,
        &certs.0.join("ca.pem"),
        "site.example.com",
        "/demo/hello",
        &["--http2"],
    )?;
    assert_eq!(resp.status_line.trim(), "HTTP/2 200");
    assert_eq!(resp.body, "hello, world!\n");
    Ok(())
}

#[test]
fn https_only_redirects_plain_requests_keeping_path_and_query() -> anyhow::Result<()> {
    let demo = GoDemo::start(1)?;
    let proxy = start(&demo, &[], None)?;
    let answer = proxy.api(&format!(
        "/v1/docker-flow-proxy/reconfigure?{RECONFIGURE}&httpsOnly=true"
    ))?;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let resp = curl(&[
        "-H",
        "Host: shop.example.com:8000",
        &proxy.url("/demo/hello?x=1&y=2"),
    ])?;
    assert_eq!(resp.status, 302);
    let port = proxy.https_addr.port();
    let expected = format!("https://shop.example.com:{port}/demo/hello?x=1&y=2");
    assert_eq!(resp.header("location"), Some(expected.as_str()));

    proxy.api(&format!(
        "/v1/docker-flow-proxy/reconfigure?{RECONFIGURE}&httpsOnly=true&httpsRedirectCode=308"
    ))?;
    assert_eq!(curl(&[&proxy.url("/demo/hello")])?.status, 308);
    Ok(())
}

#[test]
fn a_new_certificate_serves_new_handshakes_while_open_connections_keep_working()
-> anyhow::Result<()> {
    let demo = GoDemo::start(1)?;
    let ca = TestCa::new()?;
    let dir = TempDir::new("certs")?;
    let proxy = start(&demo, &[], None)?;
    let old = ca.issue(&["a.example.com"])?;
    assert_eq!(put_cert(&proxy, "a", &old.bundle, &dir.0)?.status, 200);
    let mut open = TlsClient::connect(proxy.https_addr, "a.example.com", &ca)?;
    assert!(open.peer_certificate()? == old.der);
    assert_eq!(open.get("/demo/hello")?.0, 200);

    let new = ca.issue(&["a.example.com"])?;
    let replaced = put_cert(&proxy, "a", &new.bundle, &dir.0)?;
    assert_eq!(replaced.status, 200, "{}", replaced.body);

    assert_eq!(
        open.get("/demo/hello")?,
        (200, "hello, world!\n".to_owned()),
        "the open connection broke"
    );
    assert!(
        open.peer_certificate()? == old.der,
        "an open connection keeps its certificate"
    );
    let next = TlsClient::connect(proxy.https_addr, "a.example.com", &ca)?;
    assert!(
        next.peer_certificate()? == new.der,
        "the next handshake sees the new certificate"
    );
    Ok(())
}

#[test]
fn every_bad_certificate_is_refused_and_the_old_one_still_served() -> anyhow::Result<()> {
    let demo = GoDemo::start(1)?;
    let ca = TestCa::new()?;
    let dir = TempDir::new("certs")?;
    let proxy = start(&demo, &[], None)?;
    let good = ca.issue(&["a.example.com"])?;
    assert_eq!(put_cert(&proxy, "a", &good.bundle, &dir.0)?.status, 200);

    let other = ca.issue(&["a.example.com"])?;
    let cert_only: String = other
        .bundle
        .split("-----BEGIN PRIVATE KEY-----")
        .next()
        .unwrap_or_default()
        .to_owned();
    let key_only = format!(
        "-----BEGIN PRIVATE KEY-----{}",
        other
            .bundle
            .split("-----BEGIN PRIVATE KEY-----")
            .nth(1)
            .unwrap_or_default()
    );
    let good_key = format!(
        "-----BEGIN PRIVATE KEY-----{}",
        good.bundle
            .split("-----BEGIN PRIVATE KEY-----")
            .nth(1)
            .unwrap_or_default()
    );
    let mismatched = format!("{cert_only}{good_key}");
    let garbage = format!(
        "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n{key_only}"
    );
    let expired = ca.issue_expired(&["a.example.com"])?;
    let cases = [
        ("empty body", "", "empty"),
        ("no certificate", key_only.as_str(), "no PEM CERTIFICATE"),
        ("no key", cert_only.as_str(), "no PEM private key"),
        (
            "key of another certificate",
            mismatched.as_str(),
            "does not match",
        ),
        ("not a certificate", garbage.as_str(), "does not parse"),
        ("expired", expired.bundle.as_str(), "expired"),
    ];
    for (what, pem, says) in cases {
        let resp = put_cert(&proxy, "a", pem, &dir.0)?;
        assert_eq!(resp.status, 400, "{what}: {}", resp.body);
        assert!(
            resp.body.contains(says),
            "{what}: the message should say {says:?}: {}",
            resp.body
        );
        let client = TlsClient::connect(proxy.https_addr, "a.example.com", &ca)?;
        assert!(
            client.peer_certificate()? == good.der,
            "{what} replaced the served certificate"
        );
    }
    let nameless = curl(&[
        "-X",
        "PUT",
        "--data-binary",
        "x",
        &proxy.api_url("/v1/docker-flow-proxy/cert"),
    ])?;
    assert_eq!(nameless.status, 400);
    assert!(nameless.body.contains("certName"), "{}", nameless.body);
    let traversal = put_cert(&proxy, "..%2Fescape", &good.bundle, &dir.0)?;
    assert_eq!(traversal.status, 400, "{}", traversal.body);
    Ok(())
}

#[test]
fn certificates_added_through_the_api_survive_a_restart() -> anyhow::Result<()> {
    let demo = GoDemo::start(1)?;
    let ca = TestCa::new()?;
    let dir = TempDir::new("certs")?;
    let state = TempDir::new("state")?;
    let mut first = start(&demo, &[], Some(&state.0))?;
    let cert = ca.issue(&["kept.example.com"])?;
    assert_eq!(put_cert(&first, "kept", &cert.bundle, &dir.0)?.status, 200);
    assert!(first.terminate()?.success());

    let second = start(&demo, &[], Some(&state.0))?;
    let client = TlsClient::connect(second.https_addr, "kept.example.com", &ca)?;
    assert!(client.peer_certificate()? == cert.der);
    Ok(())
}

#[test]
fn without_any_certificate_https_answers_with_a_self_signed_one() -> anyhow::Result<()> {
    let demo = GoDemo::start(1)?;
    let proxy = start(&demo, &[], None)?;
    let resp = curl(&[
        "--insecure",
        &format!("https://127.0.0.1:{}/demo/hello", proxy.https_addr.port()),
    ])?;
    assert_eq!(resp.status, 200);
    assert_eq!(
        proxy.log().matches("self-signed certificate").count(),
        1,
        "one warning:\n{}",
        proxy.log()
    );
    let listed = proxy.api("/v1/docker-flow-proxy/certs")?.body;
    assert!(listed.contains("self-signed"), "{listed}");
    Ok(())
}

//! The status page at `GET /` on the API port, as a browser shows it: headless Chromium
//! (Debian's `chromium`) loads it, its rendered DOM lists the configured services with their
//! replicas and a refused change, and a screenshot is taken; with an API token the page needs
//! the token.
use std::{path::Path, process::Command, time::Duration};

use anyhow::{Context as _, ensure};
use flowproxy_tests::{
    Flowproxy, GoDemo, HttpClient, curl, eventually, go_demo::RECONFIGURE, proxy::temp_state_dir,
};

/// Runs headless Chromium on `url` with `args`, in a profile of its own that is removed after.
fn chromium(url: &str, args: &[String]) -> anyhow::Result<String> {
    let profile = temp_state_dir().with_extension("chromium");
    let out = Command::new("chromium")
        .args([
            "--headless",
            // Root in a test namespace: Chromium's sandbox needs a user namespace of its own.
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--disable-background-networking",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(url)
        .output()
        .context("running chromium (apt-get install chromium)");
    let _ = std::fs::remove_dir_all(&profile);
    let out = out?;
    ensure!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn dom(url: &str) -> anyhow::Result<String> {
    chromium(url, &["--dump-dom".to_owned()])
}

fn screenshot(url: &str, path: &Path) -> anyhow::Result<()> {
    chromium(
        url,
        &[
            format!("--screenshot={}", path.display()),
            "--window-size=1280,1000".to_owned(),
        ],
    )
    .map(drop)
}

#[test]
fn chromium_shows_the_services_their_replicas_and_a_refused_change() -> anyhow::Result<()> {
    let demo = GoDemo::start(2)?;
    let proxy = demo.flowproxy().start()?;
    let ok = proxy.api(&format!("/v1/docker-flow-proxy/reconfigure?{RECONFIGURE}"))?;
    assert_eq!(ok.status, 200, "{}", ok.body);
    let refused =
        proxy.api("/v1/docker-flow-proxy/reconfigure?serviceName=no-port&servicePath=/x")?;
    assert_eq!(refused.status, 400, "{}", refused.body);
    // Both replicas known (and so listed) once the proxy has answered through them.
    let client = HttpClient::new()?;
    eventually(Duration::from_secs(10), || {
        client.get(&proxy.url("/demo/hello"))?;
        Ok(())
    })?;
    let page = dom(&proxy.api_url("/"))?;
    let services = page
        .split("<table id=\"services\">")
        .nth(1)
        .and_then(|rest| rest.split("</table>").next())
        .with_context(|| format!("no services table in\n{page}"))?;
    assert!(services.contains("go-demo"), "{services}");
    assert!(services.contains("/demo"), "{services}");
    for replica in &demo.replicas {
        let addr = format!("{}:8080", replica.link.host_addr);
        assert!(
            services.contains(&format!("{addr} up")),
            "{addr} in {services}"
        );
    }
    let refusals = page
        .split("<table id=\"refused\">")
        .nth(1)
        .with_context(|| format!("no refused table in\n{page}"))?;
    assert!(refusals.contains("no-port"), "{refusals}");
    assert!(refusals.contains("400"), "{refusals}");
    assert!(page.contains("id=\"ready\">ready<"), "{page}");

    let shot = temp_state_dir().with_extension("png");
    screenshot(&proxy.api_url("/"), &shot)?;
    let png = std::fs::read(&shot);
    let _ = std::fs::remove_file(&shot);
    let png = png.context("no screenshot written")?;
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    assert!(
        png.len() > 10_000,
        "a {}-byte screenshot shows nothing",
        png.len()
    );
    Ok(())
}

#[test]
fn with_an_api_token_the_page_needs_it() -> anyhow::Result<()> {
    let proxy = Flowproxy::new()
        .arg("--no-ebpf")
        .arg("--api-token")
        .arg("page-s3cret")
        .start()?;
    let denied = curl(&[&proxy.api_url("/")])?;
    assert_eq!(denied.status, 401);
    let shown = curl(&[&proxy.api_url("/?token=page-s3cret")])?;
    assert_eq!(shown.status, 200, "{}", shown.body);
    assert!(
        shown
            .header("content-type")
            .is_some_and(|t| t.starts_with("text/html")),
        "{:?}",
        shown.header("content-type")
    );
    assert!(
        shown.body.contains("No service is configured yet."),
        "{}",
        shown.body
    );
    Ok(())
}

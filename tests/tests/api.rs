//! The reconfigure API: DFP's endpoints and envelope, validation that changes nothing when it
//! refuses, and a configuration that survives restarts.
use flowproxy_tests::{
    Flowproxy, GoDemo, RunningProxy, curl, go_demo::RECONFIGURE, proxy::temp_state_dir,
};

fn proxy_for(demo: &GoDemo, state_dir: Option<&std::path::Path>) -> anyhow::Result<RunningProxy> {
    let mut proxy = demo.flowproxy().arg("--no-ebpf");
    if let Some(dir) = state_dir {
        proxy = proxy.state_dir(dir);
    }
    proxy.start()
}

fn config(proxy: &RunningProxy) -> anyhow::Result<(String, String)> {
    let text = proxy.api("/v1/docker-flow-proxy/config")?.body;
    let json = proxy.api("/v1/docker-flow-proxy/config?type=json")?.body;
    Ok((text, json))
}

#[test]
fn every_bad_reconfigure_is_refused_and_changes_nothing() -> anyhow::Result<()> {
    let demo = GoDemo::start(1)?;
    let proxy = proxy_for(&demo, None)?;
    assert_eq!(
        proxy
            .api(&format!("/v1/docker-flow-proxy/reconfigure?{RECONFIGURE}"))?
            .status,
        200
    );
    let before = config(&proxy)?;
    let long = "a".repeat(2048);
    let cases: Vec<(String, u16, &str)> = vec![
        ("servicePath=/x&port=8080".into(), 400, "serviceName"),
        ("serviceName=x&port=8080".into(), 409, "servicePath"),
        ("serviceName=x&servicePath=/x".into(), 400, "port"),
        ("serviceName=x&servicePath=/x&port=http".into(), 400, "port"),
        (
            "serviceName=x&servicePath=/x&port=70000".into(),
            400,
            "port",
        ),
        (
            "serviceName=x&servicePath=x&port=8080".into(),
            400,
            "servicePath",
        ),
        (
            "serviceName=x&servicePath=/a%20b&port=8080".into(),
            400,
            "servicePath",
        ),
        (
            "serviceName=x%01y&servicePath=/x&port=8080".into(),
            400,
            "serviceName",
        ),
        (
            format!("serviceName=x&servicePath=/{long}&port=8080"),
            400,
            "servicePath",
        ),
        (
            "serviceName=x&servicePath=(&pathType=path_reg&port=8080".into(),
            400,
            "servicePath",
        ),
        (
            "serviceName=x&servicePath=/demo&port=8080&serviceDomainAlgo=sni".into(),
            400,
            "serviceDomainAlgo",
        ),
    ];
    for (query, status, names) in &cases {
        let resp = proxy.api(&format!("/v1/docker-flow-proxy/reconfigure?{query}"))?;
        let short: String = query.chars().take(80).collect();
        assert_eq!(resp.status, *status, "{short}: {}", resp.body);
        assert!(
            resp.body.contains(r#""Status":"NOK""#),
            "{short}: {}",
            resp.body
        );
        assert!(
            resp.body.contains(names),
            "{short}: the message should name {names}: {}",
            resp.body
        );
        assert_eq!(config(&proxy)?, before, "{short} changed the configuration");
    }
    Ok(())
}

#[test]
fn config_reads_like_the_articles_haproxy_section() -> anyhow::Result<()> {
    let demo = GoDemo::start(1)?;
    let proxy = proxy_for(&demo, None)?;
    proxy.api(&format!("/v1/docker-flow-proxy/reconfigure?{RECONFIGURE}"))?;
    let (text, json) = config(&proxy)?;
    for line in [
        "frontend services",
        "bind *:80",
        "acl url_go-demo8080_0 path_beg /demo",
        "use_backend go-demo-be8080_0 if url_go-demo8080_0",
        "backend go-demo-be8080_0",
        "server go-demo go-demo:8080",
    ] {
        assert!(text.contains(line), "missing {line:?} in\n{text}");
    }
    let parsed: serde_json::Value = serde_json::from_str(&json)?;
    assert_eq!(parsed["go-demo"]["ServiceName"], "go-demo");
    Ok(())
}

#[test]
fn remove_takes_the_routes_away_and_says_when_there_was_nothing() -> anyhow::Result<()> {
    let demo = GoDemo::start(1)?;
    let proxy = proxy_for(&demo, None)?;
    proxy.api(&format!("/v1/docker-flow-proxy/reconfigure?{RECONFIGURE}"))?;
    assert_eq!(curl(&[&proxy.url("/demo/hello")])?.status, 200);

    let removed = proxy.api("/v1/docker-flow-proxy/remove?serviceName=go-demo")?;
    assert_eq!(removed.status, 200, "{}", removed.body);
    assert_eq!(curl(&[&proxy.url("/demo/hello")])?.status, 404);

    let again = proxy.api("/v1/docker-flow-proxy/remove?serviceName=go-demo")?;
    assert_eq!(again.status, 200);
    assert!(again.body.contains("not configured"), "{}", again.body);
    let missing = proxy.api("/v1/docker-flow-proxy/remove")?;
    assert_eq!(missing.status, 400);
    assert!(missing.body.contains("serviceName"), "{}", missing.body);
    Ok(())
}

#[test]
fn ping_and_reload_answer_ok() -> anyhow::Result<()> {
    let demo = GoDemo::start(1)?;
    let proxy = proxy_for(&demo, None)?;
    for endpoint in ["/v1/docker-flow-proxy/ping", "/v1/docker-flow-proxy/reload"] {
        let resp = proxy.api(endpoint)?;
        assert_eq!(resp.status, 200, "{endpoint}");
        assert!(
            resp.body.contains(r#""Status":"OK""#),
            "{endpoint}: {}",
            resp.body
        );
    }
    assert_eq!(proxy.api("/v1/docker-flow-proxy/nope")?.status, 404);
    let recreate = proxy.api("/v1/docker-flow-proxy/reload?recreate=true")?;
    assert_eq!(recreate.status, 200, "{}", recreate.body);
    assert!(
        recreate.body.contains("recreate is ignored"),
        "{}",
        recreate.body
    );
    Ok(())
}

#[test]
fn reload_refuses_what_it_cannot_do() -> anyhow::Result<()> {
    let demo = GoDemo::start(1)?;
    let proxy = proxy_for(&demo, None)?;
    // No LISTENER_ADDRESS: nobody can be asked to notify again.
    let listener = proxy.api("/v1/docker-flow-proxy/reload?fromListener=true")?;
    assert_eq!(listener.status, 500, "{}", listener.body);
    assert!(
        listener.body.contains("LISTENER_ADDRESS"),
        "{}",
        listener.body
    );
    let bad = proxy.api("/v1/docker-flow-proxy/reload?fromListener=maybe")?;
    assert_eq!(bad.status, 400, "{}", bad.body);
    assert!(bad.body.contains("fromListener"), "{}", bad.body);
    let unknown = proxy.api("/v1/docker-flow-proxy/reload?force=1")?;
    assert_eq!(unknown.status, 400, "{}", unknown.body);
    assert!(unknown.body.contains("force"), "{}", unknown.body);
    Ok(())
}

#[test]
fn the_configuration_survives_a_restart() -> anyhow::Result<()> {
    let demo = GoDemo::start(1)?;
    let state = temp_state_dir();
    let mut first = proxy_for(&demo, Some(&state))?;
    first.api(&format!(
        "/v1/docker-flow-proxy/reconfigure?{RECONFIGURE}&users=u:p"
    ))?;
    let before = config(&first)?;
    assert!(first.terminate()?.success());

    let second = proxy_for(&demo, Some(&state))?;
    assert_eq!(config(&second)?, before);
    assert_eq!(
        curl(&["-u", "u:p", &second.url("/demo/hello")])?.status,
        200
    );
    drop(second);
    std::fs::remove_dir_all(&state)?;
    Ok(())
}

#[test]
fn a_corrupt_state_file_stops_the_start_and_is_kept() -> anyhow::Result<()> {
    let state = temp_state_dir();
    std::fs::create_dir_all(&state)?;
    let file = state.join("services.json");
    std::fs::write(&file, "{ this is not json")?;
    let out = Flowproxy::new()
        .arg("--no-ebpf")
        .state_dir(&state)
        .run_to_exit()?;
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&file.display().to_string()), "{stderr}");
    assert_eq!(std::fs::read_to_string(&file)?, "{ this is not json");
    std::fs::remove_dir_all(&state)?;
    Ok(())
}

//! A DFP stack's environment, beyond its flags: static services (`DFP_SERVICE_*`), variables
//! given as Docker secrets (`dfp_<name>`), `SEPARATOR`, and proxy-instance filtering
//! (`FILTER_PROXY_INSTANCE_NAME`/`PROXY_INSTANCE_NAME`). Each drives the real binary, with curl
//! as the client and the go-demo replicas as the service.
use std::time::Duration;

use anyhow::ensure;
use flowproxy_tests::{
    CurlResponse, GoDemo, RawClient, RunningProxy, curl, eventually, proxy::TempDir,
};

fn reconfigure(proxy: &RunningProxy, query: &str) -> anyhow::Result<CurlResponse> {
    proxy.api(&format!("/v1/docker-flow-proxy/reconfigure?{query}"))
}

fn config(proxy: &RunningProxy) -> anyhow::Result<String> {
    Ok(proxy.api("/v1/docker-flow-proxy/config")?.body)
}

#[test]
fn static_services_from_the_environment_are_routed() -> anyhow::Result<()> {
    let demo = GoDemo::start(1)?;
    let proxy = demo
        .flowproxy()
        .arg("--no-ebpf")
        .env("DFP_SERVICE_SERVICE_NAME", "go-demo")
        .env("DFP_SERVICE_SERVICE_PATH", "/demo")
        .env("DFP_SERVICE_PORT", "8080")
        // The second service reaches the same replicas under another path, on destination 1.
        .env("DFP_SERVICE_1_SERVICE_NAME", "shop")
        .env("DFP_SERVICE_1_SERVICE_PATH_1", "/shop")
        .env("DFP_SERVICE_1_PORT_1", "8080")
        .env("DFP_SERVICE_1_OUTBOUND_HOSTNAME", "tasks.go-demo")
        .env("DFP_SERVICE_1_REQ_PATH_SEARCH_REPLACE", "^/shop,/demo")
        .env("DFP_SERVICE_1_USERS", "admin:pw")
        .start()?;
    eventually(Duration::from_secs(10), || {
        let text = config(&proxy)?;
        ensure!(
            text.contains("go-demo") && text.contains("shop"),
            "not both yet:\n{text}"
        );
        Ok(())
    })?;
    let demo_reply = curl(&[&proxy.url("/demo/hello")])?;
    assert_eq!(demo_reply.status, 200, "{demo_reply:?}\n{}", proxy.log());
    assert_eq!(curl(&[&proxy.url("/shop/hello")])?.status, 401, "its users");
    let shop = curl(&["-u", "admin:pw", &proxy.url("/shop/hello")])?;
    assert_eq!(shop.status, 200, "{}", shop.body);
    assert!(proxy.log().contains("DFP_SERVICE_1"), "{}", proxy.log());
    drop(proxy);

    // A variable that spells no parameter, a service without a name, and a refused parameter
    // each stop the start, naming what to fix.
    for (vars, named) in [
        (
            &[
                ("DFP_SERVICE_SERVICE_NAME", "x"),
                ("DFP_SERVICE_SERVICE_PAHT", "/x"),
            ][..],
            "DFP_SERVICE_SERVICE_PAHT",
        ),
        (
            &[("DFP_SERVICE_2_PORT", "8080")][..],
            "DFP_SERVICE_2_SERVICE_NAME",
        ),
        (
            &[
                ("DFP_SERVICE_SERVICE_NAME", "x"),
                ("DFP_SERVICE_SERVICE_PATH", "/x"),
                ("DFP_SERVICE_PORT", "80"),
                ("DFP_SERVICE_BACKEND_EXTRA", "option foo"),
            ][..],
            "backendExtra",
        ),
    ] {
        let mut proxy = demo.flowproxy().arg("--no-ebpf");
        for (name, value) in vars {
            proxy = proxy.env(name, value);
        }
        let out = proxy.run_to_exit()?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{vars:?} started");
        assert!(stderr.contains(named), "{named} not named: {stderr}");
    }
    Ok(())
}

#[test]
fn dfp_variables_may_be_docker_secrets() -> anyhow::Result<()> {
    let demo = GoDemo::start(1)?;
    let secrets = TempDir::new("dfp-secrets")?;
    std::fs::write(secrets.0.join("dfp_users"), "admin:pw\n")?;
    std::fs::write(secrets.0.join("dfp_timeout_server"), "1\n")?;
    let proxy = demo
        .flowproxy()
        .arg("--no-ebpf")
        .arg("--secrets-dir")
        .arg(secrets.0.display().to_string())
        .start()?;
    assert_eq!(
        reconfigure(&proxy, "serviceName=go-demo&servicePath=/demo&port=8080")?.status,
        200
    );
    // dfp_users is USERS: every service without its own users is protected.
    assert_eq!(curl(&[&proxy.url("/demo/hello")])?.status, 401);
    assert_eq!(
        curl(&["-u", "admin:pw", &proxy.url("/demo/hello")])?.status,
        200
    );
    // dfp_timeout_server is TIMEOUT_SERVER.
    let slow = curl(&["-u", "admin:pw", &proxy.url("/demo/slow?ms=3000")])?;
    assert_eq!(slow.status, 504, "{}", slow.body);
    assert!(
        proxy
            .log()
            .contains("TIMEOUT_SERVER is read from the secret dfp_timeout_server"),
        "{}",
        proxy.log()
    );
    drop(proxy);
    // A secret is checked like the variable: a refused one stops the start.
    std::fs::write(secrets.0.join("dfp_bind_ports"), "8081\n")?;
    let out = demo
        .flowproxy()
        .arg("--no-ebpf")
        .arg("--secrets-dir")
        .arg(secrets.0.display().to_string())
        .run_to_exit()?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("BIND_PORTS"),
        "{stderr}"
    );
    Ok(())
}

#[test]
fn separator_splits_list_parameters() -> anyhow::Result<()> {
    let demo = GoDemo::start(1)?;
    let proxy = demo
        .flowproxy()
        .arg("--no-ebpf")
        .env("SEPARATOR", ";")
        .start()?;
    // Two paths, and a response header whose value has a comma in it.
    let reply = reconfigure(
        &proxy,
        "serviceName=go-demo&servicePath=/demo;/other&port=8080\
         &reqPathSearchReplace=%5E/other,/demo\
         &addResHeader=X-List%20a,b;X-Two%20c",
    )?;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let hello = curl(&[&proxy.url("/demo/hello")])?;
    assert_eq!(hello.status, 200, "{}", hello.body);
    assert_eq!(hello.header("X-List"), Some("a,b"), "{:?}", hello.headers);
    assert_eq!(hello.header("X-Two"), Some("c"), "{:?}", hello.headers);
    assert_eq!(curl(&[&proxy.url("/other/hello")])?.status, 200);
    // users still split on commas, as in DFP.
    let users = reconfigure(
        &proxy,
        "serviceName=go-demo&servicePath=/demo&port=8080&users=a:1,b:2",
    )?;
    assert_eq!(users.status, 200, "{}", users.body);
    assert_eq!(curl(&["-u", "b:2", &proxy.url("/demo/hello")])?.status, 200);
    Ok(())
}

#[test]
fn only_this_proxy_instances_services_are_configured_when_filtering() -> anyhow::Result<()> {
    let demo = GoDemo::start(1)?;
    let proxy = demo
        .flowproxy()
        .arg("--no-ebpf")
        .env("FILTER_PROXY_INSTANCE_NAME", "true")
        .env("PROXY_INSTANCE_NAME", "edge")
        .start()?;
    let ours = reconfigure(
        &proxy,
        "serviceName=go-demo&servicePath=/demo&port=8080&proxyInstanceName=EDGE",
    )?;
    assert_eq!(ours.status, 200, "{}", ours.body);
    assert_eq!(curl(&[&proxy.url("/demo/hello")])?.status, 200);
    for other in ["&proxyInstanceName=internal", ""] {
        let before = config(&proxy)?;
        let reply = reconfigure(
            &proxy,
            &format!("serviceName=other&servicePath=/other&port=8080{other}"),
        )?;
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert!(
            reply.body.contains("not configured here") && reply.body.contains("edge"),
            "the reply says why: {}",
            reply.body
        );
        assert_eq!(config(&proxy)?, before, "nothing changed");
    }
    assert_eq!(curl(&[&proxy.url("/other/hello")])?.status, 404);
    Ok(())
}

#[test]
fn dfps_two_http_timeouts_are_kept_apart() -> anyhow::Result<()> {
    let demo = GoDemo::start(1)?;
    let proxy = demo
        .flowproxy()
        .arg("--no-ebpf")
        .env("TIMEOUT_HTTP_REQUEST", "1")
        .env("TIMEOUT_HTTP_KEEP_ALIVE", "4")
        .start()?;
    let reply = reconfigure(&proxy, "serviceName=go-demo&servicePath=/demo&port=8080")?;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let request = b"GET /demo/hello HTTP/1.1\r\nHost: go-demo\r\n\r\n";
    // Idle for longer than a head may take, but less than keep-alive: still served.
    let mut kept = RawClient::connect(proxy.http_addr)?;
    kept.send(request)?;
    assert_eq!(kept.response(Duration::from_secs(5))?.status, 200);
    std::thread::sleep(Duration::from_millis(2500));
    kept.send(request)?;
    assert_eq!(
        kept.response(Duration::from_secs(5))?.status,
        200,
        "the keep-alive connection was closed before TIMEOUT_HTTP_KEEP_ALIVE"
    );
    // ...and closed once keep-alive has passed.
    let idle = kept.closed_within(Duration::from_secs(7))?;
    assert!(
        idle >= Duration::from_millis(6000),
        "closed {idle:?} after connecting"
    );
    // A head that stalls is cut after TIMEOUT_HTTP_REQUEST, well before keep-alive.
    let mut slow = RawClient::connect(proxy.http_addr)?;
    slow.send(b"GET /demo/hello HTTP/1.1\r\nHost: go")?;
    let cut = slow.closed_within(Duration::from_secs(3))?;
    assert!(cut >= Duration::from_millis(900), "cut after {cut:?}");
    let metrics = proxy.api("/metrics")?.body;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("flowproxy_client_errors_total")
                && l.contains("timeout_head")
                && l.ends_with(" 1")),
        "{metrics}"
    );
    Ok(())
}

//! Label discovery against a fake Docker Engine API on a unix socket (the real daemon is
//! `cargo xtask swarm-test`'s): services labelled `com.df.notify=true` are configured from
//! their labels, follow Docker's events (changed, created, removed), bad labels are named and
//! applied nowhere, a worker node says so once and keeps polling.
use std::time::Duration;

use anyhow::ensure;
use flowproxy_tests::{
    FakeDocker, Flowproxy, RunningProxy, curl, eventually, fake_docker::service,
};

const WAIT: Duration = Duration::from_secs(20);

fn discovering(docker: &FakeDocker, poll_secs: &str) -> anyhow::Result<RunningProxy> {
    Flowproxy::new()
        .arg("--no-ebpf")
        .arg("--discovery")
        .arg("docker")
        .arg("--docker-socket")
        .arg(docker.socket().to_string_lossy())
        .arg("--docker-poll-interval")
        .arg(poll_secs)
        .start()
}

/// Service name -> its first path, from `config?type=json`.
fn routes(proxy: &RunningProxy) -> anyhow::Result<Vec<(String, String)>> {
    let body = proxy.api("/v1/docker-flow-proxy/config?type=json")?.body;
    let json: serde_json::Value = serde_json::from_str(&body)?;
    let mut routes: Vec<(String, String)> = json
        .as_object()
        .map(|o| {
            o.iter()
                .map(|(name, s)| {
                    let path = s["ServiceDest"][0]["ServicePath"][0]
                        .as_str()
                        .unwrap_or_default();
                    (name.clone(), path.to_owned())
                })
                .collect()
        })
        .unwrap_or_default();
    routes.sort();
    Ok(routes)
}

fn expect_routes(proxy: &RunningProxy, expected: &[(&str, &str)]) -> anyhow::Result<()> {
    let expected: Vec<(String, String)> = expected
        .iter()
        .map(|(n, p)| (n.to_string(), p.to_string()))
        .collect();
    eventually(WAIT, || {
        let routes = routes(proxy)?;
        ensure!(
            routes == expected,
            "routes {routes:?}, expected {expected:?}"
        );
        Ok(())
    })
    .map_err(|e| e.context(proxy.log()))
}

fn go_demo(path: &str) -> serde_json::Value {
    service(
        "go-demo",
        &[
            ("com.df.notify", "true"),
            ("com.df.servicePath", path),
            ("com.df.port", "8080"),
        ],
        Some(2),
    )
}

#[test]
fn labelled_services_follow_docker_events() -> anyhow::Result<()> {
    let docker = FakeDocker::start()?;
    docker.set_services(vec![
        go_demo("/demo"),
        service("db", &[("com.df.servicePath", "/db")], Some(1)),
        service(
            "broken",
            &[
                ("com.df.notify", "true"),
                ("com.df.servicePath", "/broken"),
                ("com.df.port", "http"),
            ],
            None,
        ),
    ]);
    // Events only: a poll would hide whether events work.
    let proxy = discovering(&docker, "3600")?;
    expect_routes(&proxy, &[("go-demo", "/demo")])?;
    let log = proxy.log();
    assert!(log.contains("api_version=1.41"), "negotiated down:\n{log}");
    assert!(
        log.contains("Swarm service broken") && log.contains("label com.df.port"),
        "the bad label is named:\n{log}"
    );
    let config = proxy.api("/v1/docker-flow-proxy/config?type=json")?.body;
    assert!(config.contains(r#""Replicas":2"#), "{config}");
    eventually(WAIT, || {
        ensure!(docker.watchers() > 0, "no event stream yet");
        Ok(())
    })?;

    // A service made through the API is not discovery's to remove.
    let api_made = proxy
        .api("/v1/docker-flow-proxy/reconfigure?serviceName=api-made&servicePath=/api&port=80")?;
    assert_eq!(api_made.status, 200, "{}", api_made.body);

    docker.set_services(vec![go_demo("/v2")]);
    docker.emit("update", "go-demo");
    expect_routes(&proxy, &[("api-made", "/api"), ("go-demo", "/v2")])?;

    docker.set_services(vec![
        go_demo("/v2"),
        service(
            "shop",
            &[
                ("com.df.notify", "true"),
                ("com.df.servicePath", "/shop"),
                ("com.df.port", "8081"),
            ],
            Some(1),
        ),
    ]);
    docker.emit("create", "shop");
    expect_routes(
        &proxy,
        &[("api-made", "/api"), ("go-demo", "/v2"), ("shop", "/shop")],
    )?;

    docker.set_services(vec![]);
    docker.emit("remove", "go-demo");
    expect_routes(&proxy, &[("api-made", "/api")])?;
    assert_eq!(
        curl(&[&proxy.url("/v2/hello")])?.status,
        404,
        "the removed service's route is gone"
    );
    Ok(())
}

#[test]
fn a_worker_says_so_once_and_keeps_polling_until_it_can_list() -> anyhow::Result<()> {
    let docker = FakeDocker::start()?;
    docker.set_services(vec![go_demo("/demo")]);
    docker.set_worker(true);
    let proxy = discovering(&docker, "1")?;
    eventually(WAIT, || {
        ensure!(
            docker.list_count() >= 3,
            "listed {} times",
            docker.list_count()
        );
        Ok(())
    })?;
    assert_eq!(
        proxy.log().matches("not a Swarm manager").count(),
        1,
        "said once:\n{}",
        proxy.log()
    );
    assert!(routes(&proxy)?.is_empty());

    // Promoted: the next poll lists the services, without any event.
    docker.set_worker(false);
    expect_routes(&proxy, &[("go-demo", "/demo")])
}

/// The status page's Docker discovery line, as HTML.
fn docker_line(proxy: &RunningProxy) -> anyhow::Result<String> {
    let page = proxy.api("/")?.body;
    let start = page
        .find("Docker label discovery:")
        .ok_or_else(|| anyhow::anyhow!("no Docker discovery line in\n{page}"))?;
    let end = page[start..].find("</p>").map_or(page.len(), |e| start + e);
    Ok(page[start..end].to_owned())
}

#[test]
fn the_status_page_shows_what_discovery_does_now() -> anyhow::Result<()> {
    let docker = FakeDocker::start()?;
    docker.set_services(vec![go_demo("/demo")]);
    docker.set_worker(true);
    let proxy = discovering(&docker, "1")?;
    eventually(WAIT, || {
        let line = docker_line(&proxy)?;
        ensure!(
            line.contains("failing for") && line.contains("not a Swarm manager"),
            "{line}"
        );
        Ok(())
    })?;
    docker.set_worker(false);
    eventually(WAIT, || {
        let line = docker_line(&proxy)?;
        ensure!(
            line.contains("s ago</span>, 1 labelled service</span>") && !line.contains("failing"),
            "{line}"
        );
        Ok(())
    })?;

    // A socket path that is no Docker daemon (a file left where the socket was): the page
    // names it and says how long it has been failing.
    let dead = flowproxy_tests::proxy::temp_state_dir().with_extension("sock");
    std::fs::write(&dead, b"")?;
    let result = Flowproxy::new()
        .arg("--no-ebpf")
        .arg("--discovery")
        .arg("docker")
        .arg("--docker-socket")
        .arg(dead.to_string_lossy())
        .start()
        .and_then(|stale| {
            eventually(WAIT, || {
                let line = docker_line(&stale)?;
                ensure!(
                    line.contains("failing for")
                        && line.contains(&format!("{} is not usable", dead.display())),
                    "{line}"
                );
                Ok(())
            })
        });
    let _ = std::fs::remove_file(&dead);
    result
}

//! An operator's commands and messages: `flowproxy healthcheck` (the image's HEALTHCHECK),
//! `flowproxy stats` exit codes, and the start-up errors a non-root user meets (a privileged
//! port, a state directory it may not read).
use std::{
    net::TcpListener,
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
    process::{Command, Output},
    time::{Duration, Instant},
};

use anyhow::ensure;
use flowproxy_tests::{
    Flowproxy, GoDemo, Host, Ids, ProxyCluster, RunningProxy, StubServer, curl, eventually,
    proxy::{binary, temp_state_dir},
};

/// `flowproxy ARGS` as a user would type it, with its output.
fn flowproxy(args: &[&str]) -> anyhow::Result<Output> {
    Ok(Command::new(binary()?).args(args).output()?)
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// An address nothing listens on: a port the kernel just gave out and took back.
fn dead_api() -> anyhow::Result<String> {
    let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    Ok(format!("http://127.0.0.1:{port}"))
}

fn api_base(proxy: &RunningProxy) -> String {
    format!("http://{}", proxy.api_addr)
}

#[test]
fn healthcheck_exits_0_against_a_ready_proxy() -> anyhow::Result<()> {
    let proxy = Flowproxy::new().arg("--no-ebpf").start()?;
    let out = flowproxy(&["healthcheck", "--api-url", &api_base(&proxy)])?;
    assert!(out.status.success(), "{out:?}");
    assert!(stdout(&out).contains("answered 200"), "{out:?}");
    // As the image runs it: no --api-url, the API's address from API_ADDR (0.0.0.0 would be
    // asked on loopback), and the container's other variables set.
    let token = std::env::temp_dir().join(format!("{}-token", Ids::next().netns()));
    std::fs::write(&token, "s3cret\n")?;
    let out = Command::new(binary()?)
        .arg("healthcheck")
        .env("API_ADDR", proxy.api_addr.to_string())
        .env("MODE", "swarm")
        .env("API_TOKEN_FILE", &token)
        .output()?;
    std::fs::remove_file(&token)?;
    assert!(out.status.success(), "{out:?}");
    Ok(())
}

#[test]
fn healthcheck_exits_1_with_a_reason_when_nothing_answers() -> anyhow::Result<()> {
    let dead = dead_api()?;
    let started = Instant::now();
    let out = flowproxy(&["healthcheck", "--api-url", &dead])?;
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let reason = stderr(&out);
    assert_eq!(reason.lines().count(), 1, "one line: {reason}");
    assert!(
        reason.contains(&dead) && reason.contains("refused"),
        "{reason}"
    );
    assert!(started.elapsed() < Duration::from_secs(3));

    // A listener that never answers: unhealthy once --timeout is over, not later.
    let silent = TcpListener::bind("127.0.0.1:0")?;
    let url = format!("http://{}", silent.local_addr()?);
    let started = Instant::now();
    let out = flowproxy(&["healthcheck", "--api-url", &url, "--timeout", "1"])?;
    let took = started.elapsed();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(stderr(&out).contains("within 1s"), "{}", stderr(&out));
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_secs(3),
        "{took:?}"
    );
    drop(silent);
    Ok(())
}

#[test]
fn healthcheck_is_1_while_a_replica_bootstraps_and_ready_is_logged_with_ping_200()
-> anyhow::Result<()> {
    let mut cluster = ProxyCluster::new(None)?;
    let node = cluster.add_node()?;
    // A peer that never answers keeps the replica bootstrapping for --bootstrap-timeout.
    let (peer_host, peer_addr) = cluster.add_plain_host("mute-peer")?;
    let peer = StubServer::start(&peer_host, 8080)?;
    peer.hold();
    cluster.publish("tasks.proxy", &[cluster.nodes[node].addr, peer_addr])?;
    let proxy = cluster
        .flowproxy(node)
        .arg("--bootstrap-timeout")
        .arg("10")
        .arg("--peer-timeout")
        .arg("1");
    cluster.start(node, proxy)?;
    // Inside the node, exactly as the image's HEALTHCHECK runs: no flags at all.
    let check = || -> anyhow::Result<Output> {
        Ok(cluster.nodes[node]
            .host
            .command(&binary()?.to_string_lossy())
            .arg("healthcheck")
            .output()?)
    };
    let early = check()?;
    let log = cluster.log(node);
    assert!(log.contains("flowproxy listening"), "{log}");
    assert!(
        !log.contains("flowproxy ready"),
        "ready before ping answers 200:\n{log}"
    );
    assert_eq!(early.status.code(), Some(1), "{early:?}");
    assert!(
        stderr(&early).contains("answered 503"),
        "{}",
        stderr(&early)
    );
    eventually(Duration::from_secs(20), || {
        let now = check()?;
        ensure!(now.status.success(), "still unhealthy: {}", stderr(&now));
        Ok(())
    })?;
    let log = cluster.log(node);
    let ready = log
        .lines()
        .find(|l| l.contains("flowproxy ready"))
        .unwrap_or_else(|| panic!("no ready line once ping answers 200:\n{log}"));
    assert!(ready.contains("ping answers 200"), "{ready}");
    drop(peer);
    Ok(())
}

#[test]
fn stats_without_pins_falls_back_to_the_api_and_fails_when_neither_answers() -> anyhow::Result<()> {
    let demo = GoDemo::start(1)?;
    let proxy = demo.flowproxy().arg("--no-ebpf").start()?;
    let reply = proxy.api(&format!(
        "/v1/docker-flow-proxy/reconfigure?{}",
        flowproxy_tests::go_demo::RECONFIGURE
    ))?;
    assert_eq!(reply.status, 200, "{}", reply.body);
    eventually(Duration::from_secs(10), || {
        let hello = curl(&[&proxy.url("/demo/hello")])?;
        ensure!(hello.status == 200, "{}", hello.status);
        Ok(())
    })?;
    let no_pins = Ids::next().pin_dir();
    let no_pins = no_pins.to_string_lossy();
    let api = api_base(&proxy);

    let out = flowproxy(&[
        "stats",
        "--json",
        "--bpffs-dir",
        &no_pins,
        "--api-url",
        &api,
    ])?;
    assert!(out.status.success(), "{out:?}");
    let doc: serde_json::Value = serde_json::from_str(&stdout(&out))?;
    assert_eq!(doc["source"], "api", "{doc}");
    let go_demo = doc["backends"]
        .as_array()
        .and_then(|b| b.iter().find(|b| b["service"] == "go-demo"))
        .unwrap_or_else(|| panic!("no go-demo replica: {doc}"));
    assert!(go_demo["requests"].as_u64() >= Some(1), "{doc}");
    let table = flowproxy(&["stats", "--bpffs-dir", &no_pins, "--api-url", &api])?;
    assert!(table.status.success(), "{table:?}");
    assert!(
        stdout(&table).contains("no maps are pinned"),
        "{}",
        stdout(&table)
    );
    assert!(stdout(&table).contains("go-demo"), "{}", stdout(&table));

    let dead = dead_api()?;
    let out = flowproxy(&["stats", "--bpffs-dir", &no_pins, "--api-url", &dead])?;
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let why = stderr(&out);
    assert!(why.contains("no flowproxy maps are pinned"), "{why}");
    assert!(why.contains(&dead), "{why}");
    Ok(())
}

#[test]
fn stats_fails_when_the_api_is_gone_even_though_the_maps_read() -> anyhow::Result<()> {
    let client = Host::new("client")?;
    let link = client.link_to_root()?;
    let proxy = Flowproxy::new().interface(&link.root_if).start()?;
    let pins = proxy.pin_dir().to_string_lossy().into_owned();
    let ok = flowproxy(&[
        "stats",
        "--bpffs-dir",
        &pins,
        "--api-url",
        &api_base(&proxy),
    ])?;
    assert!(ok.status.success(), "{ok:?}");

    let dead = dead_api()?;
    let out = flowproxy(&["stats", "--bpffs-dir", &pins, "--api-url", &dead])?;
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        stdout(&out).contains(&link.root_if),
        "the maps are still shown: {out:?}"
    );
    let why = stderr(&out);
    assert!(
        why.contains(&dead) && why.contains("request counts are missing"),
        "{why}"
    );
    let json = flowproxy(&["stats", "--json", "--bpffs-dir", &pins, "--api-url", &dead])?;
    assert_eq!(json.status.code(), Some(1), "{json:?}");
    let doc: serde_json::Value = serde_json::from_str(&stdout(&json))?;
    assert_eq!(doc["source"], "maps", "{doc}");
    Ok(())
}

/// `nobody`: no capabilities, no bypass of file permissions.
const NOBODY: u32 = 65534;

#[test]
fn a_privileged_port_as_non_root_names_the_capability() -> anyhow::Result<()> {
    let out = Flowproxy::new()
        .as_user(NOBODY)
        .arg("--no-ebpf")
        .arg("--http-addr")
        .arg("127.0.0.1:1")
        .run_to_exit()?;
    assert!(!out.status.success());
    let why = stderr(&out);
    assert!(
        why.contains("cannot listen on 127.0.0.1:1 (--http-addr)"),
        "{why}"
    );
    assert!(why.contains("CAP_NET_BIND_SERVICE"), "{why}");
    assert!(why.contains("port of 1024 or above"), "{why}");
    assert!(!why.contains("another process"), "{why}");
    Ok(())
}

/// A state directory the test made, removed (permissions restored first) even on failure.
struct StateDir(PathBuf);

impl StateDir {
    fn new() -> anyhow::Result<Self> {
        let dir = temp_state_dir();
        std::fs::create_dir_all(&dir)?;
        Ok(Self(dir))
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for StateDir {
    fn drop(&mut self) {
        let _ = std::fs::set_permissions(&self.0, std::fs::Permissions::from_mode(0o755));
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn a_state_directory_the_user_may_not_read_is_a_permission_error() -> anyhow::Result<()> {
    let dir = StateDir::new()?;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o000))?;
    let out = Flowproxy::new()
        .as_user(NOBODY)
        .arg("--no-ebpf")
        .state_dir(dir.path())
        .run_to_exit()?;
    assert!(!out.status.success());
    let why = stderr(&out);
    assert!(why.contains("permission denied"), "{why}");
    assert!(why.contains(&format!("uid {NOBODY}")), "{why}");
    assert!(why.contains(&*dir.path().to_string_lossy()), "{why}");
    assert!(!why.contains("corrupt"), "{why}");
    Ok(())
}

#[test]
fn a_state_file_the_user_may_not_read_is_a_permission_error() -> anyhow::Result<()> {
    // Written by an earlier run as root (0600), the directory since given to nobody.
    let dir = StateDir::new()?;
    let file = dir.path().join("services.json");
    std::fs::write(&file, r#"{"version":1,"services":[]}"#)?;
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600))?;
    std::os::unix::fs::chown(dir.path(), Some(NOBODY), Some(NOBODY))?;
    let out = Flowproxy::new()
        .as_user(NOBODY)
        .arg("--no-ebpf")
        .state_dir(dir.path())
        .run_to_exit()?;
    assert!(!out.status.success());
    let why = stderr(&out);
    assert!(
        why.contains("services.json cannot be read: permission denied"),
        "{why}"
    );
    assert!(!why.contains("corrupt"), "{why}");
    // The same file readable: the start goes on (and fails only at the privileged default
    // ports, which the harness replaces by free ones, so it starts).
    std::os::unix::fs::chown(&file, Some(NOBODY), Some(NOBODY))?;
    let proxy = Flowproxy::new()
        .as_user(NOBODY)
        .arg("--no-ebpf")
        .state_dir(dir.path())
        .start()?;
    assert_eq!(proxy.api("/v1/docker-flow-proxy/ping")?.status, 200);
    drop(proxy);
    Ok(())
}

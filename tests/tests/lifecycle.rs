//! Starting, stopping and crashing: flowproxy never leaves a program behind, and bad input is
//! refused with a message that says what to do.
use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};
use flowproxy_tests::{
    Flowproxy, GoDemo, Host, Link, RawClient, bpftool, eventually, go_demo::RECONFIGURE,
};

fn traffic_flows(host: &Host, link: &Link) -> anyhow::Result<()> {
    host.run("ping", &["-c", "1", "-W", "2", &link.root_addr.to_string()])?;
    Ok(())
}

#[test]
fn kill_9_leaves_no_program_attached_and_traffic_flowing() -> anyhow::Result<()> {
    let client = Host::new("client")?;
    let link = client.link_to_root()?;
    let mut proxy = Flowproxy::new().interface(&link.root_if).start()?;
    // A veth: the ingress program runs at TC, where it delivers (no XDP).
    assert_eq!(
        bpftool::hooks_on(proxy.pid(), &link.root_if)?,
        ["tc-egress", "tc-ingress"]
    );
    assert!(bpftool::xdp_programs(&link.root_if)?.is_empty());
    let links = bpftool::links_of(proxy.pid())?;
    let kinds: Vec<&str> = links.iter().map(|(kind, _)| kind.as_str()).collect();
    assert_eq!(kinds, ["tcx", "tcx"], "TC ingress and egress links");

    proxy.kill9()?;

    eventually(Duration::from_secs(5), || {
        let attached = bpftool::xdp_programs(&link.root_if)?;
        ensure!(
            attached.is_empty(),
            "XDP still attached after kill -9: {attached:?}"
        );
        let alive: Vec<_> = links
            .iter()
            .filter(|(_, id)| bpftool::link_exists(*id))
            .collect();
        ensure!(alive.is_empty(), "links alive after kill -9: {alive:?}");
        Ok(())
    })?;
    traffic_flows(&client, &link)
}

#[test]
fn a_restart_over_old_pins_attaches_once_and_keeps_counting() -> anyhow::Result<()> {
    let client = Host::new("client")?;
    let link = client.link_to_root()?;
    let mut first = Flowproxy::new()
        .interface(&link.root_if)
        .pin_dir(link.pin_dir())
        .start()?;
    traffic_flows(&client, &link)?;
    first.kill9()?;
    assert!(
        link.pin_dir().join("IFACE_STATS").exists(),
        "kill -9 cannot unpin"
    );

    let second = Flowproxy::new()
        .interface(&link.root_if)
        .pin_dir(link.pin_dir())
        .start()?;
    assert_eq!(
        bpftool::hooks_on(second.pid(), &link.root_if)?,
        ["tc-egress", "tc-ingress"]
    );
    let packets = |p: &flowproxy_tests::RunningProxy| -> anyhow::Result<u64> {
        Ok(p.stats_json()?["interfaces"][0]["packets"]
            .as_u64()
            .unwrap_or(0))
    };
    let kept = packets(&second)?;
    assert!(kept >= 1, "counters of the first run were lost");
    traffic_flows(&client, &link)?;
    eventually(Duration::from_secs(5), || {
        let now = packets(&second)?;
        ensure!(now > kept, "no new packets counted after the restart");
        Ok(())
    })?;
    Ok(())
}

#[test]
fn sigterm_detaches_and_removes_the_pins() -> anyhow::Result<()> {
    let client = Host::new("client")?;
    let link = client.link_to_root()?;
    let mut proxy = Flowproxy::new().interface(&link.root_if).start()?;
    let links = bpftool::links_of(proxy.pid())?;
    assert_eq!(links.len(), 2, "{links:?}");
    let pins = proxy.pin_dir().to_path_buf();
    assert!(pins.join("IFACE_STATS").exists());

    let status = proxy.terminate()?;

    assert!(status.success(), "exit status {status}\n{}", proxy.log());
    assert!(bpftool::xdp_programs(&link.root_if)?.is_empty());
    assert!(
        links.iter().all(|(_, id)| !bpftool::link_exists(*id)),
        "{links:?}"
    );
    assert!(!pins.exists(), "{} still exists", pins.display());
    traffic_flows(&client, &link)
}

#[test]
fn keep_pins_keeps_the_counters_after_sigterm() -> anyhow::Result<()> {
    let client = Host::new("client")?;
    let link = client.link_to_root()?;
    let mut proxy = Flowproxy::new()
        .interface(&link.root_if)
        .arg("--keep-pins")
        .start()?;
    proxy.terminate()?;
    assert!(proxy.pin_dir().join("IFACE_STATS").exists());
    assert!(bpftool::xdp_programs(&link.root_if)?.is_empty());
    Ok(())
}

#[test]
fn a_second_flowproxy_on_the_same_pins_is_refused() -> anyhow::Result<()> {
    let client = Host::new("client")?;
    let link = client.link_to_root()?;
    let first = Flowproxy::new()
        .interface(&link.root_if)
        .pin_dir(link.pin_dir())
        .start()?;
    let out = Flowproxy::new()
        .interface(&link.root_if)
        .pin_dir(link.pin_dir())
        .run_to_exit()?;
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("another flowproxy"), "{stderr}");
    assert_eq!(
        bpftool::hooks_on(first.pid(), &link.root_if)?,
        ["tc-egress", "tc-ingress"]
    );
    Ok(())
}

#[test]
fn forced_native_xdp_on_a_veth_is_refused_naming_it_and_the_fix() -> anyhow::Result<()> {
    let client = Host::new("client")?;
    let link = client.link_to_root()?;
    let out = Flowproxy::new()
        .interface(&link.root_if)
        .arg("--l4-fastpath")
        .arg("native")
        .run_to_exit()?;
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("'{}' is a virtual device", link.root_if)),
        "{stderr}"
    );
    assert!(stderr.contains("--l4-fastpath auto"), "{stderr}");
    assert!(bpftool::xdp_programs(&link.root_if)?.is_empty());
    Ok(())
}

#[test]
fn a_missing_interface_is_named_in_the_error() -> anyhow::Result<()> {
    let out = Flowproxy::new().interface("fpnope0").run_to_exit()?;
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("'fpnope0' does not exist"), "{stderr}");
    Ok(())
}

#[test]
fn without_bpf_rights_flowproxy_warns_once_and_serves_anyway() -> anyhow::Result<()> {
    let client = Host::new("client")?;
    let link = client.link_to_root()?;
    let proxy = Flowproxy::new()
        .interface(&link.root_if)
        .as_user(65534)
        .start()?;
    let log = proxy.log();
    assert_eq!(
        log.matches("--no-ebpf").count(),
        1,
        "one clear warning:\n{log}"
    );
    assert!(log.contains("no permission"), "{log}");
    assert!(bpftool::xdp_programs(&link.root_if)?.is_empty());
    let ping = proxy.api("/v1/docker-flow-proxy/ping")?;
    assert_eq!(ping.status, 200, "the rest of the proxy works");
    let metrics = proxy.api("/metrics")?.body;
    assert!(
        metrics.contains("flowproxy_open_connections"),
        "user-space metrics only:\n{metrics}"
    );
    assert!(!metrics.contains("flowproxy_backend_bytes"), "{metrics}");
    Ok(())
}

#[test]
fn no_ebpf_runs_without_attaching_anything() -> anyhow::Result<()> {
    let client = Host::new("client")?;
    let link = client.link_to_root()?;
    let mut proxy = Flowproxy::new()
        .interface(&link.root_if)
        .arg("--no-ebpf")
        .start()?;
    assert!(bpftool::xdp_programs(&link.root_if)?.is_empty());
    assert!(!proxy.pin_dir().exists());
    assert!(proxy.terminate()?.success());
    Ok(())
}

#[test]
fn pins_of_another_layout_version_are_replaced_not_reused() -> anyhow::Result<()> {
    let client = Host::new("client")?;
    let link = client.link_to_root()?;
    let mut first = Flowproxy::new()
        .interface(&link.root_if)
        .pin_dir(link.pin_dir())
        .arg("--keep-pins")
        .start()?;
    traffic_flows(&client, &link)?;
    first.terminate()?;
    let layout = link.pin_dir().join("LAYOUT");
    flowproxy_tests::cmd::run(
        "bpftool",
        &[
            "map",
            "update",
            "pinned",
            &layout.to_string_lossy(),
            "key",
            "0",
            "0",
            "0",
            "0",
            "value",
            "99",
            "0",
            "0",
            "0",
        ],
    )?;

    let second = Flowproxy::new()
        .interface(&link.root_if)
        .pin_dir(link.pin_dir())
        .start()?;
    assert!(
        second.log().contains("another layout version"),
        "{}",
        second.log()
    );
    let packets = second.stats_json()?["interfaces"][0]["packets"].as_u64();
    assert_eq!(packets, Some(0), "counters of the old layout were reused");
    let dump = bpftool::map_dump(&layout)?;
    let version = dump[0]["value"][0].as_str().unwrap_or_default().to_owned();
    let expected = format!("0x{:02x}", proxy_common::MAP_LAYOUT_VERSION);
    assert_eq!(
        version, expected,
        "the new layout version was not recorded: {dump}"
    );
    Ok(())
}

/// SIGTERM drains: a request in flight gets its whole answer, an idle keep-alive connection
/// and one that never sent a byte are closed at once, and the process exits well within
/// Docker's 10 s stop grace period.
#[test]
fn sigterm_answers_requests_in_flight_and_closes_idle_connections() -> anyhow::Result<()> {
    let demo = GoDemo::start(1)?;
    let mut proxy = demo.flowproxy().arg("--no-ebpf").start()?;
    let resp = proxy.api(&format!("/v1/docker-flow-proxy/reconfigure?{RECONFIGURE}"))?;
    ensure!(resp.status == 200, "{}", resp.body);
    let get = |path: &str| format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n");

    let mut idle = RawClient::connect(proxy.http_addr)?;
    idle.send(get("/demo/hello").as_bytes())?;
    ensure!(idle.response(Duration::from_secs(5))?.status == 200);
    let mut silent = RawClient::connect(proxy.http_addr)?;
    let mut slow = RawClient::connect(proxy.http_addr)?;
    slow.send(get("/demo/slow?ms=1500").as_bytes())?;
    // The slow request is with the replica before the signal.
    std::thread::sleep(Duration::from_millis(300));

    let signalled = Instant::now();
    let terminating = std::thread::spawn(move || {
        let status = proxy.terminate();
        (status, proxy.log())
    });
    idle.closed_within(Duration::from_secs(1))
        .context("an idle keep-alive connection was kept open while draining")?;
    silent
        .closed_within(Duration::from_secs(1))
        .context("a connection that sent nothing was kept open while draining")?;
    let answer = slow.response(Duration::from_secs(5))?;
    ensure!(
        answer.status == 200,
        "the request in flight got {}",
        answer.status
    );
    let (status, log) = terminating.join().expect("the terminating thread panicked");
    let status = status?;
    ensure!(status.success(), "exit status {status}\n{log}");
    let took = signalled.elapsed();
    ensure!(
        took < Duration::from_secs(4),
        "exiting took {took:?} with one 1.5 s request in flight\n{log}"
    );
    ensure!(
        !log.contains("still open after"),
        "the drain timed out:\n{log}"
    );
    Ok(())
}

//! `cargo xtask demo`: the article, replayed on this machine without Docker. go-demo replicas
//! run in network namespaces, a real DNS server answers `go-demo` and `tasks.go-demo`, and
//! flowproxy is configured with the article's curl commands; then the XDP counters are shown.
use std::{
    process::Command,
    sync::atomic::{AtomicBool, Ordering},
    time::Duration,
};

use anyhow::Context as _;
use flowproxy_tests::{Flowproxy, GoDemo, HttpClient, go_demo::RECONFIGURE};

use crate::{
    build::{demo_backend_binary, flowproxy_binary},
    shell::run,
};

/// The default pin directory, so the README's bpftool commands work as printed.
const DEMO_PIN_DIR: &str = "/sys/fs/bpf/flowproxy";
/// The article's ports, on loopback so the demo exposes nothing.
const HTTP_ADDR: &str = "127.0.0.1:80";
const API_ADDR: &str = "127.0.0.1:8080";

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// Runs the demo; with `exit`, stops after the checks instead of waiting for Ctrl-C.
pub fn demo(exit: bool) -> anyhow::Result<()> {
    for signal in [libc::SIGINT, libc::SIGTERM] {
        // Safety: the handler only stores to an atomic, which is async-signal-safe.
        unsafe { libc::signal(signal, on_signal as *const () as libc::sighandler_t) };
    }
    // Safety: no other thread exists yet that could read the environment concurrently.
    unsafe {
        std::env::set_var("FLOWPROXY_BIN", flowproxy_binary());
        std::env::set_var("FLOWPROXY_DEMO_BIN", demo_backend_binary());
    }

    step(
        "docker service create --name go-demo ... (one replica, in a network namespace of its own)",
    );
    let mut demo = GoDemo::start(1)?;
    let first = &demo.replicas[0];
    println!(
        "go-demo.1 listens on {}; DNS {} answers tasks.go-demo and go-demo (a VIP: this kernel has no IPVS)",
        first.backend.addr(),
        demo.dns_server()
    );
    let watched = first.link.root_if.clone();

    step(&format!(
        "start flowproxy on {HTTP_ADDR} (API {API_ADDR}), XDP counting on {watched}"
    ));
    let proxy = Flowproxy::new()
        .arg("--http-addr")
        .arg(HTTP_ADDR)
        .arg("--api-addr")
        .arg(API_ADDR)
        .arg("--dns-server")
        .arg(demo.dns_server().to_string())
        .arg("--dns-refresh")
        .arg("1")
        .interface(&watched)
        .pin_dir(DEMO_PIN_DIR)
        .start()
        .context("starting flowproxy (are ports 80 and 8080 on 127.0.0.1 free?)")?;

    let reconfigure = format!("localhost:8080/v1/docker-flow-proxy/reconfigure?{RECONFIGURE}");
    shell(
        &format!("curl \"{reconfigure}\""),
        &["curl", "-sS", &reconfigure],
    )?;
    shell(
        "curl -i localhost/demo/hello",
        &["curl", "-sS", "-i", "localhost/demo/hello"],
    )?;
    shell(
        "curl localhost:8080/v1/docker-flow-proxy/config",
        &["curl", "-sS", "localhost:8080/v1/docker-flow-proxy/config"],
    )?;

    step("docker service scale go-demo=5");
    demo.scale(5)?;
    let client = HttpClient::new()?;
    let url = proxy.url("/demo/who");
    flowproxy_tests::eventually(Duration::from_secs(10), || {
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..25 {
            seen.insert(client.get(&url)?.1);
        }
        anyhow::ensure!(seen.len() == 5, "{} replicas answer so far", seen.len());
        Ok(())
    })?;
    let before: Vec<usize> = demo.distribution().iter().map(|(_, n)| *n).collect();
    for _ in 0..1000 {
        client.get(&url)?;
    }
    println!("1000 requests to /demo/who; each replica's log:");
    for ((name, after), before) in demo.distribution().into_iter().zip(before) {
        let n = after - before;
        println!("  {name:<10} {n:>4} requests ({:.1}%)", n as f64 / 10.0);
    }

    step("the data plane, as an operator inspects it");
    shell(
        "bpftool prog show name flowproxy_xdp",
        &["bpftool", "prog", "show", "name", "flowproxy_xdp"],
    )?;
    shell(
        &format!("bpftool net show dev {watched}"),
        &["bpftool", "net", "show", "dev", &watched],
    )?;
    let slots = format!("{DEMO_PIN_DIR}/IFACE_SLOTS");
    shell(
        &format!("bpftool map dump pinned {slots}"),
        &["bpftool", "map", "dump", "pinned", &slots],
    )?;
    let bin = flowproxy_binary().display().to_string();
    shell(
        "flowproxy stats",
        &[&bin, "stats", "--bpffs-dir", DEMO_PIN_DIR],
    )?;

    if !exit {
        step("running: try the curls above; Ctrl-C stops flowproxy and removes the replicas");
        while !INTERRUPTED.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    step("stopping");
    Ok(())
}

fn step(title: &str) {
    println!("\n=== {title}");
}

fn shell(title: &str, argv: &[&str]) -> anyhow::Result<()> {
    println!("\n$ {title}");
    run(Command::new(argv[0]).args(&argv[1..]))?;
    println!();
    Ok(())
}

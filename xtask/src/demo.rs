//! `cargo xtask demo`: flowproxy's XDP program on a veth pair, traffic through it, and what
//! bpftool and `flowproxy stats` show about it.
use std::{
    net::UdpSocket,
    process::Command,
    sync::atomic::{AtomicBool, Ordering},
    time::Duration,
};

use anyhow::Context as _;
use flowproxy_tests::{Flowproxy, Host};

use crate::{build::flowproxy_binary, shell::run};

/// The default pin directory, so the README's bpftool commands work as printed.
const DEMO_PIN_DIR: &str = "/sys/fs/bpf/flowproxy";

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_sigint(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// Runs the demo; with `exit`, stops after showing everything instead of waiting for Ctrl-C.
pub fn demo(exit: bool) -> anyhow::Result<()> {
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe { libc::signal(libc::SIGINT, on_sigint as *const () as libc::sighandler_t) };
    // Safety: as above.
    unsafe { libc::signal(libc::SIGTERM, on_sigint as *const () as libc::sighandler_t) };
    // SAFETY: setting an environment variable before any thread is started.
    unsafe { std::env::set_var("FLOWPROXY_BIN", flowproxy_binary()) };

    let client = Host::new("demo client")?;
    let link = client.link_to_root()?;
    println!(
        "== a client host ({}) joined to this one by veth {} ({} <-> {})",
        client.name, link.root_if, link.host_addr, link.root_addr
    );
    let proxy = Flowproxy::new()
        .interface(&link.root_if)
        .pin_dir(DEMO_PIN_DIR)
        .start()
        .context("starting flowproxy")?;
    println!(
        "== flowproxy is running (pid {}), XDP attached to {}",
        proxy.pid(),
        link.root_if
    );

    println!("== the client pings us 3 times and sends 100 UDP datagrams");
    client.run(
        "ping",
        &["-c", "3", "-i", "0.2", &link.root_addr.to_string()],
    )?;
    client.enter(|| -> anyhow::Result<()> {
        let socket = UdpSocket::bind((link.host_addr, 0))?;
        for _ in 0..100 {
            socket.send_to(&[0u8; 64], (link.root_addr, 9))?;
        }
        Ok(())
    })??;
    std::thread::sleep(Duration::from_millis(200));

    let pins = proxy.pin_dir().display().to_string();
    show(
        "bpftool prog show name flowproxy_xdp",
        &["bpftool", "prog", "show", "name", "flowproxy_xdp"],
    )?;
    show(
        &format!("bpftool net show dev {}", link.root_if),
        &["bpftool", "net", "show", "dev", &link.root_if],
    )?;
    show(
        &format!("bpftool map dump pinned {pins}/IFACE_SLOTS"),
        &[
            "bpftool",
            "map",
            "dump",
            "pinned",
            &format!("{pins}/IFACE_SLOTS"),
        ],
    )?;
    let slot = proxy.stats_json()?["interfaces"][0]["slot"]
        .as_u64()
        .unwrap_or(0) as u32;
    let key: Vec<String> = slot.to_le_bytes().iter().map(u8::to_string).collect();
    let stats_pin = format!("{pins}/IFACE_STATS");
    let mut lookup = vec!["bpftool", "map", "lookup", "pinned", &stats_pin, "key"];
    lookup.extend(key.iter().map(String::as_str));
    show(&lookup.join(" "), &lookup)?;
    let bin = flowproxy_binary().display().to_string();
    show("flowproxy stats", &[&bin, "stats", "--bpffs-dir", &pins])?;

    if !exit {
        println!(
            "== running; press Ctrl-C to stop (flowproxy detaches and unpins, the hosts are removed)"
        );
        while !INTERRUPTED.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    println!("== stopping");
    Ok(())
}

fn show(title: &str, argv: &[&str]) -> anyhow::Result<()> {
    println!("\n$ {title}");
    run(Command::new(argv[0]).args(&argv[1..]))
}

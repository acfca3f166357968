//! The TCP-mode fast path end to end, on the lab topology (client host → proxy host with two
//! veths → bridge → three backend hosts): flows are forwarded by XDP from their SYN on, spread
//! by the Maglev ring, drained when a replica goes, sent to the user-space relay when the flow
//! budget is spent, and the interfaces work as before once flowproxy is gone.
use std::{
    collections::BTreeMap,
    io::{Read, Write},
    net::{Ipv4Addr, SocketAddr, TcpStream},
    os::fd::FromRawFd,
    time::Duration,
};

use anyhow::{Context as _, bail, ensure};
use flowproxy_tests::{
    L4Lab, bpftool, eventually, l4_checks,
    l4_lab::{Attach, PROXY_ADDR},
};

const PORT: u16 = 15432;
const GIB: u64 = 1 << 30;

/// Waits until the fast path holds the service with a ring.
fn programmed(lab: &L4Lab) -> anyhow::Result<serde_json::Value> {
    l4_checks::programmed(lab, PORT)
}

fn service_stats(lab: &L4Lab) -> anyhow::Result<serde_json::Value> {
    l4_checks::service_stats(lab, PORT)
}

/// The index of `dev` in the proxy host.
fn ifindex_in(lab: &L4Lab, dev: &str) -> anyhow::Result<u32> {
    let text = lab
        .proxy_host
        .run("cat", &[&format!("/sys/class/net/{dev}/ifindex")])?;
    Ok(text.trim().parse()?)
}

fn metric(lab: &L4Lab, name: &str) -> anyhow::Result<u64> {
    let text = lab.proxy.api("/metrics")?.body;
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.trim().parse().ok())
        .with_context(|| format!("no {name} in:\n{text}"))
}

#[test]
fn a_1gib_transfer_is_fast_pathed_and_arrives_intact() -> anyhow::Result<()> {
    let lab = L4Lab::start(&[])?;
    lab.configure(PORT, "")?;
    programmed(&lab)?;
    stream_intact(&lab, GIB)?;
    let svc = service_stats(&lab)?;
    assert_eq!(svc["fast_flows"], 1, "{svc}");
    assert_eq!(metric(&lab, "flowproxy_l4_connections_total")?, 0);
    assert_eq!(metric(&lab, "flowproxy_l4_relayed_bytes_total")?, 0);
    // The XDP counters saw the data: bytes from the replica, counted on ingress.
    let stats = lab.proxy.stats_json()?;
    let from_backends: u64 = stats["backends"]
        .as_array()
        .context("backends")?
        .iter()
        .filter_map(|b| b["bytes_in"].as_u64())
        .sum();
    assert!(from_backends > GIB, "bytes from backends: {from_backends}");
    // At TC a veth hands over GSO trains of up to 64 KiB: fewer, larger packets.
    let translated = stats["l4"]["global"]["translated"].as_u64().unwrap_or(0);
    assert!(translated > GIB / 65536, "packets translated: {translated}");
    Ok(())
}

#[test]
fn flows_spread_over_the_replicas_and_a_tuple_keeps_its_replica() -> anyhow::Result<()> {
    let lab = L4Lab::start(&[])?;
    lab.configure(PORT, "")?;
    programmed(&lab)?;
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for _ in 0..300 {
        *counts.entry(lab.who(PORT)?).or_default() += 1;
    }
    assert_eq!(counts.len(), 3, "{counts:?}");
    for (name, n) in &counts {
        // 33% ± 8% of 300.
        assert!((75..=125).contains(n), "{name} got {n} of 300: {counts:?}");
    }
    let svc = service_stats(&lab)?;
    // If this fails, the relay count and the global counters say where the other flows went.
    let relayed = metric(&lab, "flowproxy_l4_connections_total")?;
    let l4 = lab.l4_stats()?;
    let global = &l4["global"];
    assert_eq!(
        svc["fast_flows"], 300,
        "{svc}, relayed: {relayed}, {global}"
    );
    // The same 5-tuple (fixed client port) lands on the same replica every time.
    let first = who_from_port(&lab, 40123)?;
    for _ in 0..4 {
        assert_eq!(who_from_port(&lab, 40123)?, first);
    }
    Ok(())
}

/// `who` over a connection from a fixed client port (SO_REUSEADDR, so the port can be reused
/// at once: the server closes first and keeps the TIME_WAIT).
fn who_from_port(lab: &L4Lab, port: u16) -> anyhow::Result<String> {
    // The tuple stays busy on the client until the replica's last ACK of the previous
    // connection arrives (LAST_ACK): connect says EADDRNOTAVAIL meanwhile.
    let mut conn = eventually(Duration::from_secs(3), || {
        lab.client
            .enter(|| bound_connect(port, L4Lab::service(PORT)))?
    })?;
    conn.set_read_timeout(Some(Duration::from_secs(5)))?;
    conn.write_all(b"W")?;
    let mut name = String::new();
    conn.read_to_string(&mut name)?;
    Ok(name.trim().to_owned())
}

fn bound_connect(local_port: u16, to: SocketAddr) -> anyhow::Result<TcpStream> {
    let SocketAddr::V4(to) = to else {
        bail!("IPv4 only")
    };
    // Safety: plain socket syscalls on a descriptor this function owns until it is wrapped.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
        ensure!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
        let stream = TcpStream::from_raw_fd(fd);
        let one: libc::c_int = 1;
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_REUSEADDR,
            (&one as *const libc::c_int).cast(),
            size_of::<libc::c_int>() as u32,
        );
        let sockaddr = |ip: Ipv4Addr, port: u16| libc::sockaddr_in {
            sin_family: libc::AF_INET as u16,
            sin_port: port.to_be(),
            sin_addr: libc::in_addr {
                s_addr: u32::from_ne_bytes(ip.octets()),
            },
            sin_zero: [0; 8],
        };
        let local = sockaddr(Ipv4Addr::UNSPECIFIED, local_port);
        let len = size_of::<libc::sockaddr_in>() as u32;
        ensure!(
            libc::bind(fd, (&local as *const libc::sockaddr_in).cast(), len) == 0,
            "bind: {}",
            std::io::Error::last_os_error()
        );
        let remote = sockaddr(*to.ip(), to.port());
        ensure!(
            libc::connect(fd, (&remote as *const libc::sockaddr_in).cast(), len) == 0,
            "connect: {}",
            std::io::Error::last_os_error()
        );
        Ok(stream)
    }
}

/// An echo connection: returns it and the replica that serves it.
fn echo_conn(lab: &L4Lab) -> anyhow::Result<(TcpStream, String)> {
    let mut conn = lab.connect(PORT)?;
    conn.set_read_timeout(Some(Duration::from_secs(5)))?;
    conn.write_all(b"E")?;
    let mut name = Vec::new();
    let mut byte = [0u8; 1];
    while byte[0] != b'\n' {
        conn.read_exact(&mut byte)?;
        name.push(byte[0]);
    }
    Ok((conn, String::from_utf8(name)?.trim().to_owned()))
}

fn echoes(conn: &mut TcpStream) -> anyhow::Result<()> {
    conn.write_all(b"ping")?;
    let mut back = [0u8; 4];
    conn.read_exact(&mut back)?;
    ensure!(&back == b"ping", "echoed {back:?}");
    Ok(())
}

#[test]
fn a_removed_replica_gets_no_new_flows_and_its_flows_drain_then_reset() -> anyhow::Result<()> {
    let lab = L4Lab::start(&["--l4-drain-timeout", "5", "--l4-sweep-interval", "1"])?;
    lab.configure(PORT, "")?;
    programmed(&lab)?;
    let removed = lab.backends[2].name.clone();
    let mut held = None;
    for _ in 0..30 {
        let (conn, name) = echo_conn(&lab)?;
        if name == removed {
            held = Some(conn);
            break;
        }
    }
    let mut held = held.with_context(|| format!("no flow reached {removed}"))?;
    echoes(&mut held)?;
    let rest: Vec<Ipv4Addr> = lab.backends[..2].iter().map(|b| b.addr).collect();
    lab.dns.set("tasks.db", &rest)?;
    eventually(Duration::from_secs(15), || {
        let svc = service_stats(&lab)?;
        // 2 replicas: the smallest prime ≥ 200.
        ensure!(svc["ring_size"] == 211, "ring not rebuilt yet: {svc}");
        Ok(())
    })?;
    // Draining: the established flow still works.
    echoes(&mut held).context("the drained flow broke before the drain timeout")?;
    for _ in 0..30 {
        assert_ne!(
            lab.who(PORT)?,
            removed,
            "a new flow reached the removed replica"
        );
    }
    // After the drain timeout the flow is cut: the proxy's stack resets it.
    eventually(Duration::from_secs(20), || match echoes(&mut held) {
        Ok(()) => bail!("the drained flow still works"),
        Err(_) => Ok(()),
    })?;
    Ok(())
}

#[test]
fn a_full_flow_budget_sends_new_flows_to_the_slow_path() -> anyhow::Result<()> {
    let lab = L4Lab::start(&["--conntrack-size", "2"])?;
    lab.configure(PORT, "")?;
    programmed(&lab)?;
    let mut conns = Vec::new();
    for _ in 0..6 {
        let (mut conn, _) = echo_conn(&lab)?;
        echoes(&mut conn)?;
        conns.push(conn);
    }
    for conn in &mut conns {
        echoes(conn)?;
    }
    let svc = service_stats(&lab)?;
    assert_eq!(svc["fast_flows"], 2, "{svc}");
    assert_eq!(svc["slow_conntrack_full"], 4, "{svc}");
    assert_eq!(svc["slow_flows"], 4, "{svc}");
    assert_eq!(metric(&lab, "flowproxy_l4_connections_total")?, 4);
    Ok(())
}

#[test]
fn after_kill_9_no_program_stays_and_the_interfaces_still_work() -> anyhow::Result<()> {
    let mut lab = L4Lab::start(&[])?;
    lab.configure(PORT, "")?;
    programmed(&lab)?;
    lab.who(PORT)?;
    let (client_if, backend_if) = lab.interfaces.clone();
    for dev in [&client_if, &backend_if] {
        let ifindex = ifindex_in(&lab, dev)?;
        assert_eq!(
            bpftool::hooks_on_index(lab.proxy.pid(), ifindex)?,
            ["tc-egress", "tc-ingress"],
            "veths get the TC fast path: {dev}"
        );
    }
    let links = bpftool::links_of(lab.proxy.pid())?;
    // Something else the proxy host serves, to show its interfaces still carry traffic.
    let other = lab
        .proxy_host
        .enter(|| std::net::TcpListener::bind((Ipv4Addr::UNSPECIFIED, 7000)))??;
    lab.proxy.kill9()?;
    eventually(Duration::from_secs(5), || {
        let alive: Vec<_> = links
            .iter()
            .filter(|(_, id)| bpftool::link_exists(*id))
            .collect();
        ensure!(alive.is_empty(), "links alive after kill -9: {alive:?}");
        Ok(())
    })?;
    let accepted = std::thread::spawn(move || other.accept().map(|_| ()));
    lab.client.enter(|| {
        TcpStream::connect_timeout(
            &SocketAddr::from((PROXY_ADDR, 7000)),
            Duration::from_secs(5),
        )
    })??;
    accepted.join().expect("accept thread")?;
    // The TCP-mode port itself is simply closed now: refused, not hanging.
    let refused = lab.connect(PORT);
    assert!(refused.is_err(), "the service port still answers");
    Ok(())
}

/// Streams `len` pattern bytes from a replica and checks they all arrive, in order.
fn stream_intact(lab: &L4Lab, len: u64) -> anyhow::Result<()> {
    l4_checks::stream_intact(lab.connect(PORT)?, len)
}

#[test]
fn forced_generic_xdp_is_refused_on_veths_and_the_tuned_lab_forwards_at_tc() -> anyhow::Result<()> {
    // Even with the senders' offloads tuned for XDP, generic XDP on a veth is refused at start,
    // naming the interface and the fix, rather than attached to stall whoever does not tune.
    let refused = match L4Lab::start_tuned(&["--l4-fastpath", "generic"]) {
        Ok(_) => bail!("--l4-fastpath generic on veths was accepted"),
        Err(e) => format!("{e:#}"),
    };
    assert!(
        refused.contains("--l4-fastpath generic: '") && refused.contains("' is a virtual device"),
        "{refused}"
    );
    assert!(refused.contains("--l4-fastpath auto"), "{refused}");
    // The extra case: the tuned lab with the default mode.
    let lab = L4Lab::start_tuned(&[])?;
    let (client_if, _) = lab.interfaces.clone();
    assert_eq!(
        bpftool::hooks_on_index(lab.proxy.pid(), ifindex_in(&lab, &client_if)?)?,
        ["tc-egress", "tc-ingress"]
    );
    lab.configure(PORT, "")?;
    programmed(&lab)?;
    stream_intact(&lab, 100 << 20)?;
    let svc = service_stats(&lab)?;
    assert_eq!(svc["fast_flows"], 1, "{svc}");
    assert_eq!(metric(&lab, "flowproxy_l4_connections_total")?, 0);
    Ok(())
}

#[test]
fn short_connections_all_take_the_tc_fast_path_with_default_offloads() -> anyhow::Result<()> {
    let lab = L4Lab::start(&[])?;
    lab.configure(PORT, "")?;
    programmed(&lab)?;
    for _ in 0..50 {
        lab.who(PORT)?;
    }
    let svc = service_stats(&lab)?;
    assert_eq!(svc["fast_flows"], 50, "{svc}");
    // Named although no flow went slow (the name is not taken from the relay's counts).
    assert_eq!(svc["service"], "db", "{svc}");
    assert_eq!(svc["slow_flows"], 0, "{svc}");
    let table = lab.proxy.stats_text()?;
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("db ") && l.contains(" 15432 ")),
        "{table}"
    );
    assert_eq!(metric(&lab, "flowproxy_l4_connections_total")?, 0);
    let global = &lab.l4_stats()?["global"];
    assert_eq!(global["rewrite_failed"], 0, "{global}");
    Ok(())
}

#[test]
fn syns_arriving_where_no_program_runs_are_counted_as_not_attached() -> anyhow::Result<()> {
    let lab = L4Lab::start_attached(Attach::BackendSideOnly, &[])?;
    lab.configure(PORT, "")?;
    programmed(&lab)?;
    for _ in 0..10 {
        lab.who(PORT)?;
    }
    let svc = service_stats(&lab)?;
    assert_eq!(svc["fast_flows"], 0, "{svc}");
    assert_eq!(svc["slow_flows"], 10, "{svc}");
    assert_eq!(svc["slow_not_attached"], 10, "{svc}");
    let table = lab.proxy.stats_text()?;
    assert!(table.contains("NOT_ATTACHED"), "{table}");
    Ok(())
}

#[test]
fn interface_auto_attaches_where_clients_arrive_once_a_tcp_service_exists() -> anyhow::Result<()> {
    let lab = L4Lab::start_attached(Attach::Auto, &[])?;
    lab.configure(PORT, "")?;
    programmed(&lab)?;
    let (client_if, backend_if) = lab.interfaces.clone();
    for dev in [&client_if, &backend_if] {
        let ifindex = ifindex_in(&lab, dev)?;
        eventually(Duration::from_secs(10), || {
            let hooks = bpftool::hooks_on_index(lab.proxy.pid(), ifindex)?;
            ensure!(hooks == ["tc-egress", "tc-ingress"], "{dev}: {hooks:?}");
            Ok(())
        })?;
    }
    for _ in 0..20 {
        lab.who(PORT)?;
    }
    let svc = service_stats(&lab)?;
    assert_eq!(svc["fast_flows"], 20, "{svc}");
    assert_eq!(svc["slow_flows"], 0, "{svc}");
    Ok(())
}

#[test]
fn the_self_test_passes_on_each_interface_and_leaves_nothing_behind() -> anyhow::Result<()> {
    let lab = L4Lab::start(&[])?;
    let log = lab.proxy.log();
    let (client_if, backend_if) = lab.interfaces.clone();
    for dev in [&client_if, &backend_if] {
        assert!(
            log.lines()
                .any(|l| l.contains("fast-path self-test passed") && l.contains(dev.as_str())),
            "no passed self-test on {dev}:\n{log}"
        );
    }
    // The probe's service, flow and counts are gone again.
    let l4 = lab.l4_stats()?;
    assert_eq!(l4["flows"], 0, "{l4}");
    assert_eq!(l4["services"].as_array().map(Vec::len), Some(0), "{l4}");
    lab.configure(PORT, "")?;
    programmed(&lab)?;
    for _ in 0..5 {
        lab.who(PORT)?;
    }
    let svc = service_stats(&lab)?;
    assert_eq!(svc["fast_flows"], 5, "{svc}");
    Ok(())
}

#[test]
fn a_failed_self_test_sends_the_interfaces_flows_to_the_relay_and_says_why() -> anyhow::Result<()> {
    let lab = L4Lab::start(&["--l4-self-test-fault"])?;
    let log = lab.proxy.log();
    assert!(
        log.lines().any(|l| l.contains("WARN")
            && l.contains("fast-path self-test failed")
            && l.contains("TCP checksum is wrong")),
        "{log}"
    );
    lab.configure(PORT, "")?;
    programmed(&lab)?;
    for _ in 0..10 {
        lab.who(PORT)?;
    }
    let svc = service_stats(&lab)?;
    assert_eq!(svc["fast_flows"], 0, "{svc}");
    assert_eq!(svc["slow_return_path"], 10, "{svc}");
    assert_eq!(metric(&lab, "flowproxy_l4_connections_total")?, 10);
    Ok(())
}

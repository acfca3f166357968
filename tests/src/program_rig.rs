//! The fast-path programs on a bench: a namespace with a client-facing and a backend-facing
//! interface, both programs loaded with two services, frames built by hand (IPv4 and IPv6)
//! and run by the kernel (BPF_PROG_TEST_RUN).
use anyhow::Context as _;
use aya::{
    Ebpf,
    maps::{Array, HashMap, PerCpuArray},
    programs::{SchedClassifier, TestRun, TestRunOptions, Xdp},
};
use proxy_common::{
    BackendKey, csum,
    fastpath::{
        FastPathConfig, Flow, FlowKey, PROTO_TCP, ServiceCounters, ServiceEntry, ServiceKey,
        budget, hook, ring_index, v4_mapped,
    },
};

use crate::Host;

/// XDP's "pass" action.
pub const XDP_PASS: u32 = 2;
/// XDP's "redirect" action.
pub const XDP_REDIRECT: u32 = 4;
/// TC's "redirect" action.
pub const TC_ACT_REDIRECT: i32 = 7;
/// tcx's "next" action.
pub const TC_ACT_UNSPEC: i32 = -1;

/// Which ingress program a test runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prog {
    /// `flowproxy_xdp`.
    Xdp,
    /// `flowproxy_tc_ingress`.
    Tc,
}

/// Both ingress programs, for tests that run against each.
pub const PROGS: [Prog; 2] = [Prog::Xdp, Prog::Tc];
/// The client's address.
pub const CLIENT: [u8; 4] = [198, 18, 100, 2];
/// The proxy's client-facing address.
pub const PROXY: [u8; 4] = [198, 18, 100, 1];
/// The proxy's backend-facing address.
pub const PROXY_BACKEND_SIDE: [u8; 4] = [198, 18, 200, 1];
/// The backend's address.
pub const BACKEND: [u8; 4] = [198, 18, 200, 11];
/// The client's IPv6 address.
pub const CLIENT6: [u8; 16] = v6(0x100, 2);
/// The proxy's client-facing IPv6 address.
pub const PROXY6: [u8; 16] = v6(0x100, 1);
/// The proxy's backend-facing IPv6 address.
pub const PROXY_BACKEND_SIDE6: [u8; 16] = v6(0x200, 1);
/// The backend's IPv6 address.
pub const BACKEND6: [u8; 16] = v6(0x200, 0x11);
/// The port of the service whose replica is IPv6.
pub const SERVICE6_PORT: u16 = 15433;

/// `2001:2:<net>::<host>`, the IPv6 benchmarking prefix (RFC 5180).
const fn v6(net: u16, host: u8) -> [u8; 16] {
    let n = net.to_be_bytes();
    [
        0x20, 0x01, 0, 2, n[0], n[1], 0, 0, 0, 0, 0, 0, 0, 0, 0, host,
    ]
}

/// The backend's MAC (a static neighbour).
pub const BACKEND_MAC: &str = "02:00:00:00:00:0b";
/// The client's MAC (a static neighbour).
pub const CLIENT_MAC: &str = "02:00:00:00:00:02";
/// The port of the service whose replica is IPv4.
pub const SERVICE_PORT: u16 = 15432;
/// The backends' port.
pub const BACKEND_PORT: u16 = 5432;
/// TCP SYN.
pub const SYN: u8 = 0x02;
/// TCP ACK.
pub const ACK: u8 = 0x10;
/// TCP RST.
pub const RST: u8 = 0x04;

/// A namespace with a client-facing and a backend-facing interface, forwarding on, and static
/// neighbours for the client and the backend. Returns the host and the two ifindexes.
pub fn network() -> anyhow::Result<(Host, u32, u32)> {
    let host = Host::new("xdp-fastpath")?;
    let ip = |args: &[&str]| -> anyhow::Result<()> {
        let mut all = vec!["-n", host.name.as_str()];
        all.extend_from_slice(args);
        crate::cmd::run("ip", &all)?;
        Ok(())
    };
    ip(&[
        "link",
        "add",
        "front",
        "type",
        "veth",
        "peer",
        "name",
        "front-peer",
    ])?;
    ip(&[
        "link",
        "add",
        "back",
        "type",
        "veth",
        "peer",
        "name",
        "back-peer",
    ])?;
    ip(&["addr", "add", "198.18.100.1/24", "dev", "front"])?;
    ip(&["addr", "add", "198.18.200.1/24", "dev", "back"])?;
    // IPv6 beside IPv4, without duplicate address detection so the addresses are usable now.
    ip(&["addr", "add", "2001:2:100::1/64", "dev", "front", "nodad"])?;
    ip(&["addr", "add", "2001:2:200::1/64", "dev", "back", "nodad"])?;
    for dev in ["front", "front-peer", "back", "back-peer"] {
        ip(&["link", "set", dev, "up"])?;
    }
    ip(&[
        "neigh",
        "replace",
        "198.18.100.2",
        "lladdr",
        CLIENT_MAC,
        "dev",
        "front",
        "nud",
        "permanent",
    ])?;
    ip(&[
        "neigh",
        "replace",
        "198.18.200.11",
        "lladdr",
        BACKEND_MAC,
        "dev",
        "back",
        "nud",
        "permanent",
    ])?;
    for (addr, lladdr, dev) in [
        ("2001:2:100::2", CLIENT_MAC, "front"),
        ("2001:2:200::11", BACKEND_MAC, "back"),
    ] {
        ip(&[
            "-6",
            "neigh",
            "replace",
            addr,
            "lladdr",
            lladdr,
            "dev",
            dev,
            "nud",
            "permanent",
        ])?;
    }
    host.run("sysctl", &["-qw", "net.ipv4.conf.all.forwarding=1"])?;
    host.run("sysctl", &["-qw", "net.ipv6.conf.all.forwarding=1"])?;
    let index = |dev: &str| -> anyhow::Result<u32> {
        Ok(host
            .run("cat", &[&format!("/sys/class/net/{dev}/ifindex")])?
            .trim()
            .parse()?)
    };
    let (front, back) = (index("front")?, index("back")?);
    Ok((host, front, back))
}

/// The program with two services on any address, port 15432 (slot 0) with the IPv4 backend
/// and port 15433 (slot 1) with the IPv6 one, as
/// if attached by XDP to `interfaces`.
pub fn loaded(port_count: u16, interfaces: &[u32], prog: Prog) -> anyhow::Result<Ebpf> {
    let mut ebpf = Ebpf::load(&crate::bpftool::bpf_object()?)?;
    let program: &mut Xdp = ebpf
        .program_mut("flowproxy_xdp")
        .context("program")?
        .try_into()?;
    program.load()?;
    let program: &mut SchedClassifier = ebpf
        .program_mut("flowproxy_tc_ingress")
        .context("program")?
        .try_into()?;
    program.load()?;
    let mut hooks: HashMap<_, u32, u32> =
        HashMap::try_from(ebpf.map_mut("IFACE_HOOKS").context("IFACE_HOOKS")?)?;
    for &ifindex in interfaces {
        let kind = match prog {
            Prog::Xdp => hook::XDP,
            Prog::Tc => hook::TC,
        };
        hooks.insert(ifindex, kind, 0)?;
    }
    let mut reals: Array<_, BackendKey> = Array::try_from(ebpf.map_mut("REALS").context("REALS")?)?;
    reals.set(0, BackendKey::v4(BACKEND, BACKEND_PORT), 0)?;
    reals.set(1, BackendKey::new(BACKEND6, BACKEND_PORT), 0)?;
    let mut config: Array<_, FastPathConfig> =
        Array::try_from(ebpf.map_mut("L4_CONFIG").context("L4_CONFIG")?)?;
    config.set(
        0,
        FastPathConfig {
            port_min: 61000,
            port_count,
        },
        0,
    )?;
    let mut flows: Array<_, u64> =
        Array::try_from(ebpf.map_mut("FLOW_BUDGET").context("FLOW_BUDGET")?)?;
    flows.set(budget::LIMIT, 100, 0)?;
    let mut ring: Array<_, u32> = Array::try_from(ebpf.map_mut("MAGLEV").context("MAGLEV")?)?;
    for h in 0..101 {
        ring.set(ring_index(0, 0, h), 1, 0)?;
        ring.set(ring_index(1, 0, h), 2, 0)?;
    }
    let mut services: HashMap<_, ServiceKey, ServiceEntry> =
        HashMap::try_from(ebpf.map_mut("L4_SERVICES").context("L4_SERVICES")?)?;
    services.insert(
        ServiceKey {
            addr: [0; 16],
            port: SERVICE_PORT,
            proto: PROTO_TCP,
            _pad: 0,
        },
        ServiceEntry {
            slot: 0,
            ring_half: 0,
            ring_size: 101,
            idle_timeout_s: 60,
        },
        0,
    )?;
    services.insert(
        ServiceKey {
            addr: [0; 16],
            port: SERVICE6_PORT,
            proto: PROTO_TCP,
            _pad: 0,
        },
        ServiceEntry {
            slot: 1,
            ring_half: 0,
            ring_size: 101,
            idle_timeout_s: 60,
        },
        0,
    )?;
    Ok(ebpf)
}

/// Ethernet + IPv4 + TCP with valid checksums.
pub fn frame(
    src: [u8; 4],
    dst: [u8; 4],
    sport: u16,
    dport: u16,
    flags: u8,
    payload: usize,
) -> Vec<u8> {
    let mut f = vec![0x02, 0, 0, 0, 0, 0x01, 0x02, 0, 0, 0, 0, 0x02, 0x08, 0x00];
    let total = (20 + 20 + payload) as u16;
    let mut ip = vec![0x45, 0];
    ip.extend_from_slice(&total.to_be_bytes());
    ip.extend_from_slice(&[0, 1, 0x40, 0, 64, 6, 0, 0]);
    ip.extend_from_slice(&src);
    ip.extend_from_slice(&dst);
    let c = csum::checksum(&ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    let mut tcp = segment(sport, dport, flags, payload);
    let c = csum::checksum(&pseudo(&ip, &tcp));
    tcp[16..18].copy_from_slice(&c.to_be_bytes());
    f.extend_from_slice(&ip);
    f.extend_from_slice(&tcp);
    f
}

/// A TCP header without options (checksum left 0) and `payload` bytes of `a`.
fn segment(sport: u16, dport: u16, flags: u8, payload: usize) -> Vec<u8> {
    let mut tcp = Vec::new();
    tcp.extend_from_slice(&sport.to_be_bytes());
    tcp.extend_from_slice(&dport.to_be_bytes());
    tcp.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
    tcp.extend(std::iter::repeat_n(0x61, payload));
    tcp
}

/// The TCP pseudo-header followed by the segment, for checksumming.
pub fn pseudo(ip: &[u8], tcp: &[u8]) -> Vec<u8> {
    let mut p = Vec::new();
    p.extend_from_slice(&ip[12..20]);
    p.extend_from_slice(&[0, 6]);
    p.extend_from_slice(&(tcp.len() as u16).to_be_bytes());
    p.extend_from_slice(tcp);
    p
}

/// The parts of a frame a test checks, after verifying both checksums.
#[derive(Debug, PartialEq, Eq)]
pub struct Seen<A> {
    /// Destination MAC.
    pub eth_dst: [u8; 6],
    /// Source address.
    pub src: A,
    /// Destination address.
    pub dst: A,
    /// Source port.
    pub sport: u16,
    /// Destination port.
    pub dport: u16,
}

/// What an IPv4 frame carries, once both its checksums are checked.
pub fn seen(f: &[u8]) -> anyhow::Result<Seen<[u8; 4]>> {
    let (ip, tcp) = (&f[14..34], &f[34..]);
    anyhow::ensure!(csum::checksum(ip) == 0, "bad IP checksum");
    anyhow::ensure!(csum::checksum(&pseudo(ip, tcp)) == 0, "bad TCP checksum");
    Ok(Seen {
        eth_dst: f[0..6].try_into()?,
        src: ip[12..16].try_into()?,
        dst: ip[16..20].try_into()?,
        sport: u16::from_be_bytes([tcp[0], tcp[1]]),
        dport: u16::from_be_bytes([tcp[2], tcp[3]]),
    })
}

/// Parses `aa:bb:..`.
pub fn mac(s: &str) -> [u8; 6] {
    let mut m = [0u8; 6];
    for (b, part) in m.iter_mut().zip(s.split(':')) {
        *b = u8::from_str_radix(part, 16).unwrap();
    }
    m
}

/// Runs `prog` on `frame` as if received on `ifindex`: the action (TC's in XDP's terms: a
/// redirect is `XDP_REDIRECT`, "next" is `XDP_PASS`) and the frame after.
pub fn run(ebpf: &Ebpf, prog: Prog, ifindex: u32, frame: &[u8]) -> anyhow::Result<(u32, Vec<u8>)> {
    if prog == Prog::Tc {
        return run_tc(ebpf, ifindex, frame);
    }
    let program: &Xdp = ebpf
        .program("flowproxy_xdp")
        .context("program")?
        .try_into()?;
    let mut out = vec![0u8; frame.len() + 256];
    // struct xdp_md: data, data_end, data_meta, ingress_ifindex, rx_queue_index, egress_ifindex.
    let mut ctx = Vec::new();
    for v in [0u32, frame.len() as u32, 0, ifindex, 0, 0] {
        ctx.extend_from_slice(&v.to_ne_bytes());
    }
    let result = program.test_run(TestRunOptions {
        data_in: Some(frame),
        data_out: Some(&mut out),
        ctx_in: Some(&ctx),
        repeat: 1,
        ..Default::default()
    })?;
    out.truncate(result.data_size_out as usize);
    Ok((result.return_value, out))
}

/// [`run`] for the TC ingress program.
pub fn run_tc(ebpf: &Ebpf, ifindex: u32, frame: &[u8]) -> anyhow::Result<(u32, Vec<u8>)> {
    let program: &SchedClassifier = ebpf
        .program("flowproxy_tc_ingress")
        .context("program")?
        .try_into()?;
    let mut out = vec![0u8; frame.len() + 256];
    // struct __sk_buff up to `ifindex` (offset 40), the device the skb arrives on.
    let mut ctx = vec![0u8; 44];
    ctx[40..44].copy_from_slice(&ifindex.to_ne_bytes());
    let result = program.test_run(TestRunOptions {
        data_in: Some(frame),
        data_out: Some(&mut out),
        ctx_in: Some(&ctx),
        repeat: 1,
        ..Default::default()
    })?;
    out.truncate(result.data_size_out as usize);
    let action = match result.return_value as i32 {
        TC_ACT_REDIRECT => XDP_REDIRECT,
        TC_ACT_UNSPEC => XDP_PASS,
        other => other as u32,
    };
    Ok((action, out))
}

/// Service slot `slot`'s counters, summed over CPUs.
pub fn service_counters_of(ebpf: &Ebpf, slot: u32) -> anyhow::Result<ServiceCounters> {
    let stats: PerCpuArray<_, ServiceCounters> =
        PerCpuArray::try_from(ebpf.map("L4_SERVICE_STATS").context("stats")?)?;
    Ok(proxy_common::sum(stats.get(&slot, 0)?.iter()))
}

/// The conntrack entry under `key`.
pub fn flow(ebpf: &Ebpf, key: &FlowKey) -> anyhow::Result<Flow> {
    let ct: HashMap<_, FlowKey, Flow> = HashMap::try_from(ebpf.map("CONNTRACK").context("CT")?)?;
    Ok(ct.get(key, 0)?)
}

/// The conntrack key of an IPv4 tuple.
pub fn key(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16) -> FlowKey {
    FlowKey {
        src: v4_mapped(src),
        dst: v4_mapped(dst),
        sport,
        dport,
        proto: PROTO_TCP,
        _pad: [0; 3],
    }
}

/// The IPv4 service's counters (slot 0).
pub fn service_counters(ebpf: &Ebpf) -> anyhow::Result<ServiceCounters> {
    service_counters_of(ebpf, 0)
}

/// Ethernet + IPv6 + TCP with a valid checksum; `next_header` 6 unless a test wants an
/// extension header announced instead.
pub fn frame6(
    src: [u8; 16],
    dst: [u8; 16],
    (sport, dport): (u16, u16),
    flags: u8,
    payload: usize,
    next_header: u8,
) -> Vec<u8> {
    let mut f = vec![0x02, 0, 0, 0, 0, 0x01, 0x02, 0, 0, 0, 0, 0x02, 0x86, 0xdd];
    let len = (20 + payload) as u16;
    let mut ip = vec![0x60, 0, 0, 0];
    ip.extend_from_slice(&len.to_be_bytes());
    ip.extend_from_slice(&[next_header, 64]);
    ip.extend_from_slice(&src);
    ip.extend_from_slice(&dst);
    let mut tcp = segment(sport, dport, flags, payload);
    let c = csum::checksum(&pseudo6(&ip, &tcp));
    tcp[16..18].copy_from_slice(&c.to_be_bytes());
    f.extend_from_slice(&ip);
    f.extend_from_slice(&tcp);
    f
}

/// The IPv6 TCP pseudo-header followed by the segment.
fn pseudo6(ip: &[u8], tcp: &[u8]) -> Vec<u8> {
    let mut p = Vec::new();
    p.extend_from_slice(&ip[8..40]);
    p.extend_from_slice(&(tcp.len() as u32).to_be_bytes());
    p.extend_from_slice(&[0, 0, 0, 6]);
    p.extend_from_slice(tcp);
    p
}

/// What an IPv6 frame carries, once its TCP checksum is checked.
pub fn seen6(f: &[u8]) -> anyhow::Result<Seen<[u8; 16]>> {
    let (ip, tcp) = (&f[14..54], &f[54..]);
    anyhow::ensure!(ip[0] >> 4 == 6, "not IPv6");
    anyhow::ensure!(csum::checksum(&pseudo6(ip, tcp)) == 0, "bad TCP checksum");
    Ok(Seen {
        eth_dst: f[0..6].try_into()?,
        src: ip[8..24].try_into()?,
        dst: ip[24..40].try_into()?,
        sport: u16::from_be_bytes([tcp[0], tcp[1]]),
        dport: u16::from_be_bytes([tcp[2], tcp[3]]),
    })
}

/// The conntrack key of an IPv6 tuple.
pub fn key6(src: [u8; 16], dst: [u8; 16], sport: u16, dport: u16) -> FlowKey {
    FlowKey {
        src,
        dst,
        sport,
        dport,
        proto: PROTO_TCP,
        _pad: [0; 3],
    }
}

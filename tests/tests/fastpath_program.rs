//! The fast path inside the XDP and the TC ingress programs, each run by the kernel on frames
//! we build (BPF_PROG_TEST_RUN) in a namespace whose routes and neighbours the FIB lookups use:
//! a SYN to a service sets up a flow and comes out fully translated with valid checksums, later
//! frames and replies follow the conntrack entries, and everything the fast path must not take
//! passes unchanged. Every test runs against both programs.
use anyhow::Context as _;
use aya::{
    Ebpf,
    maps::{Array, HashMap, PerCpuArray},
    programs::{SchedClassifier, TestRun, TestRunOptions, Xdp},
};
use flowproxy_tests::Host;
use proxy_common::{
    BackendKey, csum,
    fastpath::{
        FLOW_RST, FastPathConfig, Flow, FlowKey, GlobalCounters, PROTO_TCP, ServiceCounters,
        ServiceEntry, ServiceKey, budget, hook, v4_mapped,
    },
};

const XDP_PASS: u32 = 2;
const XDP_REDIRECT: u32 = 4;
const TC_ACT_REDIRECT: i32 = 7;
const TC_ACT_UNSPEC: i32 = -1;

/// Which ingress program a test runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Prog {
    Xdp,
    Tc,
}

const PROGS: [Prog; 2] = [Prog::Xdp, Prog::Tc];
const CLIENT: [u8; 4] = [198, 18, 100, 2];
const PROXY: [u8; 4] = [198, 18, 100, 1];
const PROXY_BACKEND_SIDE: [u8; 4] = [198, 18, 200, 1];
const BACKEND: [u8; 4] = [198, 18, 200, 11];
const BACKEND_MAC: &str = "02:00:00:00:00:0b";
const CLIENT_MAC: &str = "02:00:00:00:00:02";
const SERVICE_PORT: u16 = 15432;
const BACKEND_PORT: u16 = 5432;
const SYN: u8 = 0x02;
const ACK: u8 = 0x10;
const RST: u8 = 0x04;

/// A namespace with a client-facing and a backend-facing interface, forwarding on, and static
/// neighbours for the client and the backend. Returns the host and the two ifindexes.
fn network() -> anyhow::Result<(Host, u32, u32)> {
    let host = Host::new("xdp-fastpath")?;
    let ip = |args: &[&str]| -> anyhow::Result<()> {
        let mut all = vec!["-n", host.name.as_str()];
        all.extend_from_slice(args);
        flowproxy_tests::cmd::run("ip", &all)?;
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
    host.run("sysctl", &["-qw", "net.ipv4.conf.all.forwarding=1"])?;
    let index = |dev: &str| -> anyhow::Result<u32> {
        Ok(host
            .run("cat", &[&format!("/sys/class/net/{dev}/ifindex")])?
            .trim()
            .parse()?)
    };
    let (front, back) = (index("front")?, index("back")?);
    Ok((host, front, back))
}

/// The program with one service (port 15432, any address) whose ring holds one backend, as
/// if attached by XDP to `interfaces`.
fn loaded(port_count: u16, interfaces: &[u32], prog: Prog) -> anyhow::Result<Ebpf> {
    let mut ebpf = Ebpf::load(&flowproxy_tests::bpftool::bpf_object()?)?;
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
        ring.set(h, 1, 0)?;
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
    Ok(ebpf)
}

/// Ethernet + IPv4 + TCP with valid checksums.
fn frame(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16, flags: u8, payload: usize) -> Vec<u8> {
    let mut f = vec![0x02, 0, 0, 0, 0, 0x01, 0x02, 0, 0, 0, 0, 0x02, 0x08, 0x00];
    let total = (20 + 20 + payload) as u16;
    let mut ip = vec![0x45, 0];
    ip.extend_from_slice(&total.to_be_bytes());
    ip.extend_from_slice(&[0, 1, 0x40, 0, 64, 6, 0, 0]);
    ip.extend_from_slice(&src);
    ip.extend_from_slice(&dst);
    let c = csum::checksum(&ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    let mut tcp = Vec::new();
    tcp.extend_from_slice(&sport.to_be_bytes());
    tcp.extend_from_slice(&dport.to_be_bytes());
    tcp.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
    tcp.extend(std::iter::repeat_n(0x61, payload));
    let c = csum::checksum(&pseudo(&ip, &tcp));
    tcp[16..18].copy_from_slice(&c.to_be_bytes());
    f.extend_from_slice(&ip);
    f.extend_from_slice(&tcp);
    f
}

/// The TCP pseudo-header followed by the segment, for checksumming.
fn pseudo(ip: &[u8], tcp: &[u8]) -> Vec<u8> {
    let mut p = Vec::new();
    p.extend_from_slice(&ip[12..20]);
    p.extend_from_slice(&[0, 6]);
    p.extend_from_slice(&(tcp.len() as u16).to_be_bytes());
    p.extend_from_slice(tcp);
    p
}

/// The parts of a frame a test checks, after verifying both checksums.
#[derive(Debug, PartialEq, Eq)]
struct Seen {
    eth_dst: [u8; 6],
    src: [u8; 4],
    dst: [u8; 4],
    sport: u16,
    dport: u16,
}

fn seen(f: &[u8]) -> anyhow::Result<Seen> {
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

fn mac(s: &str) -> [u8; 6] {
    let mut m = [0u8; 6];
    for (b, part) in m.iter_mut().zip(s.split(':')) {
        *b = u8::from_str_radix(part, 16).unwrap();
    }
    m
}

/// Runs `prog` on `frame` as if received on `ifindex`: the action (TC's in XDP's terms: a
/// redirect is `XDP_REDIRECT`, "next" is `XDP_PASS`) and the frame after.
fn run(ebpf: &Ebpf, prog: Prog, ifindex: u32, frame: &[u8]) -> anyhow::Result<(u32, Vec<u8>)> {
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

fn run_tc(ebpf: &Ebpf, ifindex: u32, frame: &[u8]) -> anyhow::Result<(u32, Vec<u8>)> {
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

fn service_counters(ebpf: &Ebpf) -> anyhow::Result<ServiceCounters> {
    let stats: PerCpuArray<_, ServiceCounters> =
        PerCpuArray::try_from(ebpf.map("L4_SERVICE_STATS").context("stats")?)?;
    Ok(proxy_common::sum(stats.get(&0, 0)?.iter()))
}

fn flow(ebpf: &Ebpf, key: &FlowKey) -> anyhow::Result<Flow> {
    let ct: HashMap<_, FlowKey, Flow> = HashMap::try_from(ebpf.map("CONNTRACK").context("CT")?)?;
    Ok(ct.get(key, 0)?)
}

fn key(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16) -> FlowKey {
    FlowKey {
        src: v4_mapped(src),
        dst: v4_mapped(dst),
        sport,
        dport,
        proto: PROTO_TCP,
        _pad: [0; 3],
    }
}

#[test]
fn a_flow_is_set_up_at_the_syn_and_translated_both_ways() -> anyhow::Result<()> {
    let (host, front, back) = network()?;
    host.enter(|| -> anyhow::Result<()> {
        for prog in PROGS {
            println!("program: {prog:?}");
            let ebpf = loaded(4536, &[front, back], prog)?;
            // SYN from the client: a new flow, rewritten towards the backend and redirected.
            let syn = frame(CLIENT, PROXY, 40000, SERVICE_PORT, SYN, 0);
            let (action, out) = run(&ebpf, prog, front, &syn)?;
            assert_eq!(action, XDP_REDIRECT);
            let fwd = seen(&out)?;
            assert_eq!(fwd.eth_dst, mac(BACKEND_MAC));
            assert_eq!((fwd.src, fwd.dst), (PROXY_BACKEND_SIDE, BACKEND));
            assert_eq!(fwd.dport, BACKEND_PORT);
            assert!(
                (61000..=65535).contains(&fwd.sport),
                "source port {}",
                fwd.sport
            );
            assert_eq!(service_counters(&ebpf)?.fast_flows, 1);
            // An established segment with data follows the same entry.
            let data = frame(CLIENT, PROXY, 40000, SERVICE_PORT, ACK, 100);
            let (action, out) = run(&ebpf, prog, front, &data)?;
            assert_eq!(action, XDP_REDIRECT);
            assert_eq!(seen(&out)?, fwd);
            assert_eq!(&out[54..], &data[54..], "the payload is untouched");
            // The backend's reply is translated back to the client.
            let reply = frame(
                BACKEND,
                PROXY_BACKEND_SIDE,
                BACKEND_PORT,
                fwd.sport,
                SYN | ACK,
                0,
            );
            let (action, out) = run(&ebpf, prog, back, &reply)?;
            assert_eq!(action, XDP_REDIRECT);
            let rev = seen(&out)?;
            assert_eq!(rev.eth_dst, mac(CLIENT_MAC));
            assert_eq!(
                (rev.src, rev.dst, rev.sport, rev.dport),
                (PROXY, CLIENT, SERVICE_PORT, 40000)
            );
            // A RST is translated too, and marks the flow for the sweep.
            let rst = frame(CLIENT, PROXY, 40000, SERVICE_PORT, RST | ACK, 0);
            let (action, _) = run(&ebpf, prog, front, &rst)?;
            assert_eq!(action, XDP_REDIRECT);
            let entry = flow(&ebpf, &key(CLIENT, PROXY, 40000, SERVICE_PORT))?;
            assert_ne!(entry.flags & FLOW_RST, 0, "RST not recorded");
        }
        Ok(())
    })?
}

#[test]
fn frames_the_fast_path_must_not_take_pass_unchanged() -> anyhow::Result<()> {
    let (host, front, back) = network()?;
    host.enter(|| -> anyhow::Result<()> {
        for prog in PROGS {
            println!("program: {prog:?}");
            let ebpf = loaded(4536, &[front, back], prog)?;
            let syn = frame(CLIENT, PROXY, 40001, SERVICE_PORT, SYN, 0);
            let mut ipv6 = syn.clone();
            ipv6[12..14].copy_from_slice(&[0x86, 0xdd]);
            let other_port = frame(CLIENT, PROXY, 40001, 8080, SYN, 0);
            let no_flow = frame(CLIENT, PROXY, 40002, SERVICE_PORT, ACK, 10);
            let cases: [(&str, &[u8]); 5] = [
                ("truncated SYN", &syn[..40]),
                ("IPv6", &ipv6),
                ("SYN to a port that is no service", &other_port),
                ("a segment of no known flow", &no_flow),
                ("Ethernet header only", &syn[..14]),
            ];
            for (name, f) in cases {
                if prog == Prog::Tc && f.len() <= 14 {
                    // The kernel builds no skb without a byte past Ethernet (EINVAL): a TC
                    // program never meets one.
                    continue;
                }
                let (action, out) = run(&ebpf, prog, front, f).with_context(|| name)?;
                assert_eq!(action, XDP_PASS, "{name}");
                assert_eq!(out, f, "{name} was changed");
            }
            let globals: PerCpuArray<_, GlobalCounters> =
                PerCpuArray::try_from(ebpf.map("L4_GLOBAL_STATS").context("globals")?)?;
            let ipv6_passed: u64 = globals.get(&0, 0)?.iter().map(|g| g.ipv6_passed).sum();
            assert_eq!(ipv6_passed, 1);
            assert_eq!(service_counters(&ebpf)?.fast_flows, 0);
        }
        Ok(())
    })?
}

#[test]
fn without_a_free_source_port_the_syn_goes_to_the_slow_path() -> anyhow::Result<()> {
    let (host, front, back) = network()?;
    host.enter(|| -> anyhow::Result<()> {
        for prog in PROGS {
            println!("program: {prog:?}");
            // One port towards the backend: the second flow finds it taken.
            let ebpf = loaded(1, &[front, back], prog)?;
            let first = frame(CLIENT, PROXY, 41000, SERVICE_PORT, SYN, 0);
            assert_eq!(run(&ebpf, prog, front, &first)?.0, XDP_REDIRECT);
            let second = frame(CLIENT, PROXY, 41001, SERVICE_PORT, SYN, 0);
            let (action, out) = run(&ebpf, prog, front, &second)?;
            assert_eq!(action, XDP_PASS);
            assert_eq!(out, second);
            let c = service_counters(&ebpf)?;
            assert_eq!((c.fast_flows, c.slow_no_port), (1, 1));
        }
        Ok(())
    })?
}

#[test]
fn a_spent_flow_budget_sends_the_syn_to_the_slow_path() -> anyhow::Result<()> {
    let (host, front, back) = network()?;
    host.enter(|| -> anyhow::Result<()> {
        for prog in PROGS {
            println!("program: {prog:?}");
            let mut ebpf = loaded(4536, &[front, back], prog)?;
            let mut flows: Array<_, u64> =
                Array::try_from(ebpf.map_mut("FLOW_BUDGET").context("FLOW_BUDGET")?)?;
            flows.set(budget::LIMIT, 1, 0)?;
            assert_eq!(
                run(
                    &ebpf,
                    prog,
                    front,
                    &frame(CLIENT, PROXY, 42000, SERVICE_PORT, SYN, 0)
                )?
                .0,
                XDP_REDIRECT
            );
            let (action, _) = run(
                &ebpf,
                prog,
                front,
                &frame(CLIENT, PROXY, 42001, SERVICE_PORT, SYN, 0),
            )?;
            assert_eq!(action, XDP_PASS);
            assert_eq!(service_counters(&ebpf)?.slow_conntrack_full, 1);
        }
        Ok(())
    })?
}

#[test]
fn a_syn_whose_replies_would_arrive_without_the_program_goes_to_the_slow_path() -> anyhow::Result<()>
{
    let (host, front, _) = network()?;
    host.enter(|| -> anyhow::Result<()> {
        for prog in PROGS {
            println!("program: {prog:?}");
            // Only the client side runs the program: replies on the backend side would reach the
            // stack unrewritten, so the flow must not be set up.
            let ebpf = loaded(4536, &[front], prog)?;
            let syn = frame(CLIENT, PROXY, 43000, SERVICE_PORT, SYN, 0);
            let (action, out) = run(&ebpf, prog, front, &syn)?;
            assert_eq!(action, XDP_PASS);
            assert_eq!(out, syn, "passed unchanged");
            let c = service_counters(&ebpf)?;
            assert_eq!((c.fast_flows, c.slow_return_path), (0, 1));
        }
        Ok(())
    })?
}

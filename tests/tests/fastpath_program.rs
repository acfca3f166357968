//! The fast path inside the XDP and the TC ingress programs, each run by the kernel on frames
//! we build (BPF_PROG_TEST_RUN) in a namespace whose routes and neighbours the FIB lookups use:
//! a SYN to a service sets up a flow and comes out fully translated with valid checksums, later
//! frames and replies follow the conntrack entries, and everything the fast path must not take
//! passes unchanged. Every test runs against both programs, on IPv4 and on IPv6.
use anyhow::Context as _;
use aya::maps::{Array, PerCpuArray};
use flowproxy_tests::program_rig::*;
use proxy_common::fastpath::{FLOW_RST, GlobalCounters, budget};

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
            // A hop-by-hop options header before TCP: not parsed, counted, passed.
            let ipv6 = frame6(CLIENT6, PROXY6, (40001, SERVICE6_PORT), SYN, 0, 0);
            let other_port = frame(CLIENT, PROXY, 40001, 8080, SYN, 0);
            let no_flow = frame(CLIENT, PROXY, 40002, SERVICE_PORT, ACK, 10);
            let cases: [(&str, &[u8]); 5] = [
                ("truncated SYN", &syn[..40]),
                ("IPv6 with an extension header", &ipv6),
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

//! The fast path on IPv6, in both ingress programs (BPF_PROG_TEST_RUN on frames we build): an
//! IPv6 SYN to a service whose replica is IPv6 sets up a flow and leaves translated with a
//! valid TCP checksum, later segments and replies follow it, and a flow whose client and
//! replica differ in family is left to the relay with its reason counted.
use flowproxy_tests::program_rig::*;

#[test]
fn an_ipv6_flow_is_set_up_at_the_syn_and_translated_both_ways() -> anyhow::Result<()> {
    let (host, front, back) = network()?;
    host.enter(|| -> anyhow::Result<()> {
        for prog in PROGS {
            println!("program: {prog:?}");
            let ebpf = loaded(4536, &[front, back], prog)?;
            let syn = frame6(CLIENT6, PROXY6, (40000, SERVICE6_PORT), SYN, 0, 6);
            let (action, out) = run(&ebpf, prog, front, &syn)?;
            assert_eq!(action, XDP_REDIRECT);
            let fwd = seen6(&out)?;
            assert_eq!(fwd.eth_dst, mac(BACKEND_MAC));
            assert_eq!((fwd.src, fwd.dst), (PROXY_BACKEND_SIDE6, BACKEND6));
            assert_eq!(fwd.dport, BACKEND_PORT);
            assert!((61000..=65535).contains(&fwd.sport), "port {}", fwd.sport);
            assert_eq!(service_counters_of(&ebpf, 1)?.fast_flows, 1);
            let data = frame6(CLIENT6, PROXY6, (40000, SERVICE6_PORT), ACK, 100, 6);
            let (action, out) = run(&ebpf, prog, front, &data)?;
            assert_eq!(action, XDP_REDIRECT);
            assert_eq!(seen6(&out)?, fwd);
            assert_eq!(&out[74..], &data[74..], "the payload is untouched");
            let reply = frame6(
                BACKEND6,
                PROXY_BACKEND_SIDE6,
                (BACKEND_PORT, fwd.sport),
                SYN | ACK,
                0,
                6,
            );
            let (action, out) = run(&ebpf, prog, back, &reply)?;
            assert_eq!(action, XDP_REDIRECT);
            let rev = seen6(&out)?;
            assert_eq!(rev.eth_dst, mac(CLIENT_MAC));
            assert_eq!(
                (rev.src, rev.dst, rev.sport, rev.dport),
                (PROXY6, CLIENT6, SERVICE6_PORT, 40000)
            );
            let entry = flow(&ebpf, &key6(CLIENT6, PROXY6, 40000, SERVICE6_PORT))?;
            assert_eq!(entry.dst, BACKEND6);
        }
        Ok(())
    })?
}

#[test]
fn a_flow_whose_replica_is_of_the_other_family_goes_to_the_relay() -> anyhow::Result<()> {
    let (host, front, back) = network()?;
    host.enter(|| -> anyhow::Result<()> {
        for prog in PROGS {
            println!("program: {prog:?}");
            let ebpf = loaded(4536, &[front, back], prog)?;
            // An IPv6 client of the service whose replica is IPv4, and the reverse.
            let six_to_four = frame6(CLIENT6, PROXY6, (40010, SERVICE_PORT), SYN, 0, 6);
            let four_to_six = frame(CLIENT, PROXY, 40011, SERVICE6_PORT, SYN, 0);
            for (syn, slot) in [(&six_to_four, 0), (&four_to_six, 1)] {
                let (action, out) = run(&ebpf, prog, front, syn)?;
                assert_eq!(action, XDP_PASS);
                assert_eq!(&out, syn, "passed unchanged");
                let c = service_counters_of(&ebpf, slot)?;
                assert_eq!((c.fast_flows, c.slow_other_family), (0, 1), "slot {slot}");
            }
        }
        Ok(())
    })?
}

#[test]
fn an_ipv6_syn_to_a_service_listening_on_ipv4_only_is_left_to_the_stack() -> anyhow::Result<()> {
    use aya::maps::HashMap;
    use proxy_common::fastpath::{PROTO_TCP, ServiceEntry, ServiceKey, v4_mapped};
    let (host, front, back) = network()?;
    host.enter(|| -> anyhow::Result<()> {
        for prog in PROGS {
            println!("program: {prog:?}");
            let mut ebpf = loaded(4536, &[front, back], prog)?;
            // The IPv6-replica service as a listener on `0.0.0.0` keys it: any IPv4 address.
            let mut services: HashMap<_, ServiceKey, ServiceEntry> =
                HashMap::try_from(ebpf.map_mut("L4_SERVICES").expect("L4_SERVICES"))?;
            let any = ServiceKey {
                addr: [0; 16],
                port: SERVICE6_PORT,
                proto: PROTO_TCP,
                _pad: 0,
            };
            let entry = services.get(&any, 0)?;
            services.remove(&any)?;
            let any_v4 = ServiceKey {
                addr: v4_mapped([0; 4]),
                ..any
            };
            services.insert(any_v4, entry, 0)?;
            let syn6 = frame6(CLIENT6, PROXY6, (40020, SERVICE6_PORT), SYN, 0, 6);
            let (action, out) = run(&ebpf, prog, front, &syn6)?;
            assert_eq!((action, &out), (XDP_PASS, &syn6), "no IPv6 service here");
            // An IPv4 client finds it (and is sent to the relay: its replica is IPv6).
            let syn4 = frame(CLIENT, PROXY, 40021, SERVICE6_PORT, SYN, 0);
            assert_eq!(run(&ebpf, prog, front, &syn4)?.0, XDP_PASS);
            let c = service_counters_of(&ebpf, 1)?;
            assert_eq!((c.fast_flows, c.slow_other_family), (0, 1));
        }
        Ok(())
    })?
}

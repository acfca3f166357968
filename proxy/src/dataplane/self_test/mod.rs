//! The fast path's self-test, run when it comes up on an interface. The kernel runs the
//! interface's ingress program (BPF_PROG_TEST_RUN, which transmits nothing) on a probe SYN from
//! a documentation address to a probe service whose one replica is a neighbour behind that
//! interface. The frame that comes back must be translated (replica as destination, our
//! address and a fast-path port as source) with valid checksums. If it is not, the interface
//! leaves the fast path (its flows go to the user-space relay) with a WARN saying why.
//! Whatever the probe set up (service, conntrack entries, counters) is removed again.
mod frame;

use std::net::Ipv4Addr;

use aya::{
    Ebpf,
    programs::{SchedClassifier, TestRun, TestRunOptions, Xdp},
};
use proxy_common::{
    BackendKey, MAX_BACKENDS,
    fastpath::{
        FlowKey, MAX_L4_SERVICES, PROTO_TCP, ServiceCounters, ServiceEntry, ServiceKey, budget,
        ring_index, v4_mapped,
    },
    map_names,
};

use self::frame::{CLIENT, CLIENT_PORT, Expected, PORT, SERVICE, check, syn};
use super::{
    TC_INGRESS_PROGRAM, XDP_PROGRAM,
    fastpath::sweep::{read_budget, write_budget},
    maps::{Maps, map_err},
    neighbours, netif,
    placement::Placement,
    slots,
};

/// The service slot kept for the probe (services get the others).
pub const PROBE_SERVICE_SLOT: u32 = MAX_L4_SERVICES - 1;
/// The backend slot kept for the probe's replica.
pub const PROBE_REAL_SLOT: u32 = MAX_BACKENDS - 1;

/// How the self-test on one interface ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The probe came back translated, with valid checksums.
    Passed,
    /// The probe could not say (no address or neighbour yet, its route leaves elsewhere).
    Skipped(String),
    /// The program mistranslated or dropped the probe.
    Failed(String),
}

/// What the program did with the probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Redirect,
    Pass,
    Drop,
    Other(i64),
}

/// Runs the self-test on `interface` and, when it fails, takes the interface out of the fast
/// path (`IFACE_HOOKS`). `fault` flips one bit of the translated probe before it is judged
/// (the test hook for a kernel that corrupts frames).
pub fn check_interface(
    ebpf: &Ebpf,
    maps: &mut Maps,
    interface: &str,
    ifindex: u32,
    placement: Placement,
    fault: bool,
) {
    // Without its counter slot for the moment, the interface does not count the probe as a
    // packet it received: counting starts a few microseconds later, as if attached then.
    let slot = maps.iface_slots.get(&ifindex, 0).ok();
    if slot.is_some() {
        let _ = maps.iface_slots.remove(&ifindex);
    }
    let outcome = run(ebpf, maps, interface, ifindex, placement, fault);
    if let Some(slot) = slot
        && let Err(e) = maps.iface_slots.insert(ifindex, slot, 0)
    {
        tracing::warn!(interface, error = %e, "the interface's counter slot could not be restored");
    }
    match outcome {
        Outcome::Passed => tracing::info!(
            interface,
            placement = placement.name(),
            "fast-path self-test passed: the probe SYN came back translated with valid checksums"
        ),
        Outcome::Skipped(why) => tracing::info!(interface, "fast-path self-test skipped: {why}"),
        Outcome::Failed(why) => {
            let removed = maps.iface_hooks.remove(&ifindex);
            tracing::warn!(
                interface,
                placement = placement.name(),
                taken_out = removed.is_ok(),
                "fast-path self-test failed: {why}; TCP-mode flows through this interface take \
                 the user-space relay instead (counted as RETURN_PATH)"
            );
        }
    }
}

fn run(
    ebpf: &Ebpf,
    maps: &mut Maps,
    interface: &str,
    ifindex: u32,
    placement: Placement,
    fault: bool,
) -> Outcome {
    let want = match expected(maps, interface, placement) {
        Ok(want) => want,
        Err(why) => return Outcome::Skipped(why),
    };
    if let Err(why) = set_up(maps, want.dst) {
        remove_probe(maps);
        return Outcome::Skipped(why);
    }
    let frame = syn(netif::mac_of(interface).unwrap_or_default());
    let ran = test_run(ebpf, placement, ifindex, &frame);
    let counters = probe_counters(maps);
    remove_probe(maps);
    match ran {
        Ok((action, mut out)) => {
            if fault && out.len() > 34 + 17 {
                out[34 + 17] ^= 1;
            }
            judge(action, &out, &want, &counters)
        }
        Err(why) => Outcome::Skipped(why),
    }
}

/// The translation the probe must get on `interface`, or why it cannot be tested there.
fn expected(maps: &Maps, interface: &str, placement: Placement) -> Result<Expected, String> {
    let config = maps
        .l4_config
        .get(&0, 0)
        .map_err(|e| format!("reading L4_CONFIG: {e}"))?;
    if config.port_count == 0 {
        return Err("the fast path has no source ports".to_owned());
    }
    let (own, prefix) = netif::ipv4_of(interface)
        .ok_or("no IPv4 address: no fast-path flow can leave through it")?;
    let arp = std::fs::read_to_string("/proc/net/arp").unwrap_or_default();
    let known = neighbours::resolved_on(&arp, interface)
        .into_iter()
        .find(|(ip, _)| *ip != own);
    let (dst, dmac) = match (known, placement) {
        (Some((ip, mac)), _) => (ip, Some(mac)),
        // TC resolves a next hop itself (`bpf_redirect_neigh`): any other host of the subnet.
        (None, Placement::Tc) => (
            other_host(own, prefix).ok_or("no other host in its subnet")?,
            None,
        ),
        (None, Placement::Xdp(_)) => return Err("no neighbour is resolved on it yet".to_owned()),
    };
    let last = (config.port_min as u32 + config.port_count as u32 - 1).min(u16::MAX as u32);
    Ok(Expected {
        src: own.octets(),
        dst: dst.octets(),
        dport: PORT,
        ports: config.port_min..=last as u16,
        dmac: dmac.filter(|_| matches!(placement, Placement::Xdp(_))),
    })
}

/// A host of `own`'s subnet other than `own` (and other than the network's address).
fn other_host(own: Ipv4Addr, prefix: u8) -> Option<Ipv4Addr> {
    if prefix >= 31 {
        return None;
    }
    let network = u32::from(own) & (u32::MAX << (32 - prefix));
    [network + 1, network + 2]
        .into_iter()
        .map(Ipv4Addr::from)
        .find(|&a| a != own)
}

fn probe_key() -> ServiceKey {
    ServiceKey {
        addr: v4_mapped(SERVICE),
        port: PORT,
        proto: PROTO_TCP,
        _pad: 0,
    }
}

/// The probe service, its one-entry ring and its replica `real`, in the slots kept for it.
fn set_up(maps: &mut Maps, real: [u8; 4]) -> Result<(), String> {
    let taken = maps
        .l4_services
        .iter()
        .filter_map(Result::ok)
        .any(|(_, e)| e.slot == PROBE_SERVICE_SLOT)
        || maps
            .backends
            .iter()
            .filter_map(Result::ok)
            .any(|(_, b)| b.slot == PROBE_REAL_SLOT);
    if taken {
        return Err("the probe's slots are in use by pinned entries of an older run".to_owned());
    }
    let failed = |e: super::DataPlaneError| e.to_string();
    slots::zero_slots(
        &mut maps.l4_service_stats,
        map_names::L4_SERVICE_STATS,
        [PROBE_SERVICE_SLOT],
    )
    .map_err(failed)?;
    maps.reals
        .set(PROBE_REAL_SLOT, BackendKey::v4(real, PORT), 0)
        .map_err(|e| failed(map_err(map_names::REALS)(e)))?;
    maps.maglev
        .set(ring_index(PROBE_SERVICE_SLOT, 0, 0), PROBE_REAL_SLOT + 1, 0)
        .map_err(|e| failed(map_err(map_names::MAGLEV)(e)))?;
    let entry = ServiceEntry {
        slot: PROBE_SERVICE_SLOT,
        ring_half: 0,
        ring_size: 1,
        idle_timeout_s: 1,
    };
    maps.l4_services
        .insert(probe_key(), entry, 0)
        .map_err(|e| failed(map_err(map_names::L4_SERVICES)(e)))
}

fn probe_counters(maps: &Maps) -> ServiceCounters {
    maps.l4_service_stats
        .get(&PROBE_SERVICE_SLOT, 0)
        .map(|per_cpu| proxy_common::sum(per_cpu.iter()))
        .unwrap_or_default()
}

/// Removes the probe service, its flow (both entries, given back to the budget) and counts.
fn remove_probe(maps: &mut Maps) {
    let _ = maps.l4_services.remove(&probe_key());
    let forward = FlowKey {
        src: v4_mapped(CLIENT),
        dst: v4_mapped(SERVICE),
        sport: CLIENT_PORT,
        dport: PORT,
        proto: PROTO_TCP,
        _pad: [0; 3],
    };
    if let Ok(flow) = maps.conntrack.get(&forward, 0) {
        let _ = maps.conntrack.remove(&flow.reverse_key());
        let _ = maps.conntrack.remove(&forward);
        if let Ok(removed) = read_budget(maps, budget::REMOVED) {
            let _ = write_budget(maps, budget::REMOVED, removed + 1);
        }
    }
    let _ = slots::zero_slots(
        &mut maps.l4_service_stats,
        map_names::L4_SERVICE_STATS,
        [PROBE_SERVICE_SLOT],
    );
}

/// Runs the ingress program of `placement` on `frame` as if it arrived on `ifindex`.
fn test_run(
    ebpf: &Ebpf,
    placement: Placement,
    ifindex: u32,
    frame: &[u8],
) -> Result<(Action, Vec<u8>), String> {
    let mut out = vec![0u8; frame.len() + 256];
    let unsupported = |e: aya::programs::ProgramError| format!("BPF_PROG_TEST_RUN: {e}");
    let program = |name| ebpf.program(name).ok_or(format!("no program {name}"));
    let (action, size) = match placement {
        Placement::Xdp(_) => {
            let xdp: &Xdp = program(XDP_PROGRAM)?.try_into().map_err(unsupported)?;
            // struct xdp_md: data, data_end, data_meta, ingress_ifindex, rx_queue_index, egress.
            let ctx: Vec<u8> = [0, frame.len() as u32, 0, ifindex, 0, 0]
                .iter()
                .flat_map(|v| v.to_ne_bytes())
                .collect();
            let r = xdp
                .test_run(options(frame, &mut out, &ctx))
                .map_err(unsupported)?;
            let action = match r.return_value {
                4 => Action::Redirect,
                2 => Action::Pass,
                1 => Action::Drop,
                v => Action::Other(v.into()),
            };
            (action, r.data_size_out)
        }
        Placement::Tc => {
            let tc: &SchedClassifier = program(TC_INGRESS_PROGRAM)?
                .try_into()
                .map_err(unsupported)?;
            // struct __sk_buff up to `ifindex` (offset 40): the device the skb arrives on.
            let mut ctx = vec![0u8; 44];
            ctx[40..44].copy_from_slice(&ifindex.to_ne_bytes());
            let r = tc
                .test_run(options(frame, &mut out, &ctx))
                .map_err(unsupported)?;
            let action = match r.return_value as i32 {
                7 => Action::Redirect,
                -1 | 0 => Action::Pass,
                2 => Action::Drop,
                v => Action::Other(v.into()),
            };
            (action, r.data_size_out)
        }
    };
    out.truncate(size as usize);
    Ok((action, out))
}

fn options<'a>(frame: &'a [u8], out: &'a mut [u8], ctx: &'a [u8]) -> TestRunOptions<'a> {
    TestRunOptions {
        data_in: Some(frame),
        data_out: Some(out),
        ctx_in: Some(ctx),
        repeat: 1,
        ..Default::default()
    }
}

/// Whether the program did to the probe what the fast path must.
fn judge(action: Action, out: &[u8], want: &Expected, counters: &ServiceCounters) -> Outcome {
    match action {
        Action::Redirect => match check(out, want) {
            Ok(()) => Outcome::Passed,
            Err(why) => Outcome::Failed(why),
        },
        Action::Pass => {
            let reasons: Vec<&str> = counters
                .slow_reasons()
                .into_iter()
                .filter(|(_, n)| *n > 0)
                .map(|(reason, _)| reason)
                .collect();
            Outcome::Skipped(if reasons.is_empty() {
                "the probe's next hop is not one the fast path sends to".to_owned()
            } else {
                format!("the probe went to the stack ({})", reasons.join(", "))
            })
        }
        Action::Drop => Outcome::Failed("the program dropped the probe".to_owned()),
        Action::Other(v) => Outcome::Failed(format!("the program returned {v} for the probe")),
    }
}

#[cfg(test)]
mod tests;

//! The TCP-mode fast path: a SYN to a service picks a replica from the service's Maglev ring,
//! gets a source port towards it and two conntrack entries; from then on every packet of the
//! flow, both ways, is rewritten (full NAT) and redirected by XDP without entering the stack.
//! Anything else returns `None`, and the caller passes the frame to the stack (the slow path).
use core::intrinsics::{AtomicOrdering, atomic_xadd};

use aya_ebpf::{
    EbpfContext,
    bindings::{
        BPF_FIB_LKUP_RET_NO_NEIGH, BPF_FIB_LKUP_RET_SUCCESS, BPF_FIB_LOOKUP_SRC, BPF_NOEXIST,
        bpf_fib_lookup, xdp_action,
    },
    helpers::{bpf_fib_lookup as fib_lookup, bpf_get_prandom_u32, bpf_ktime_get_ns, bpf_redirect},
    programs::XdpContext,
};
use proxy_common::{
    csum,
    fastpath::{
        FLOW_FIN, FLOW_FORWARD, FLOW_RST, FLOW_SEEN, Flow, FlowKey, PROTO_TCP, ServiceCounters,
        ServiceKey, budget, flow_hash, v4_mapped, v4_of,
    },
};

use crate::{
    backend_count::{self, Direction},
    headers::{self, Frame, Headers},
    maps::{
        CONNTRACK, FLOW_BUDGET, L4_CONFIG, L4_GLOBAL_STATS, L4_SERVICE_STATS, L4_SERVICES, MAGLEV,
        REALS,
    },
    packet::{TCP_ACK, TCP_RST, TCP_SYN},
};

const TCP_FIN: u8 = 0x01;
const AF_INET: u8 = 2;
/// Source ports tried towards a replica before giving the flow to the slow path.
const PORT_PROBES: u32 = 16;
/// `last_seen_ns` is refreshed at most this often, to keep CPUs from bouncing its cache line.
const TOUCH_EVERY_NS: u64 = 1_000_000_000;

/// Forwards the frame if it belongs to (or starts) a fast-path flow. `None`: pass it on.
#[inline(always)]
pub fn forward(ctx: &XdpContext) -> Option<u32> {
    let h = match headers::classify(ctx) {
        Frame::Tcp4(h) => h,
        Frame::Ipv6 => {
            global(|g| g.ipv6_passed += 1);
            return None;
        }
        Frame::Other => return None,
    };
    // Safety: `h` points at header bytes checked to lie inside the frame.
    let (key, flags) = unsafe {
        (
            FlowKey {
                src: v4_mapped((*h).saddr),
                dst: v4_mapped((*h).daddr),
                sport: u16::from_be_bytes((*h).sport),
                dport: u16::from_be_bytes((*h).dport),
                proto: PROTO_TCP,
                _pad: [0; 3],
            },
            (*h).flags,
        )
    };
    let flow = match CONNTRACK.get_ptr_mut(&key) {
        Some(flow) => flow,
        None if flags & (TCP_SYN | TCP_ACK | TCP_RST) == TCP_SYN => new_flow(ctx, &key)?,
        None => return None,
    };
    Some(translate(ctx, h, flow, flags))
}

/// Sets up a flow for a SYN to a service, or `None` (counted) to leave it to the slow path.
#[inline(always)]
fn new_flow(ctx: &XdpContext, key: &FlowKey) -> Option<*mut Flow> {
    let mut svc_key = ServiceKey {
        addr: key.dst,
        port: key.dport,
        proto: PROTO_TCP,
        _pad: 0,
    };
    // Safety: user space writes whole entries.
    let svc = match unsafe { L4_SERVICES.get(&svc_key) } {
        Some(svc) => *svc,
        None => {
            svc_key.addr = [0; 16];
            *unsafe { L4_SERVICES.get(&svc_key) }?
        }
    };
    if svc.ring_size == 0 {
        count(svc.slot, |c| c.slow_no_replica += 1);
        return None;
    }
    let created = FLOW_BUDGET.get_ptr_mut(budget::CREATED)?;
    let removed = *FLOW_BUDGET.get(budget::REMOVED)?;
    let limit = *FLOW_BUDGET.get(budget::LIMIT)?;
    // Safety: an aligned u64 in an array map; other CPUs only add to it atomically, so a
    // plain aligned read sees some whole value.
    let created_now = unsafe { core::ptr::read_volatile(created) };
    if created_now.wrapping_sub(removed) >= limit {
        count(svc.slot, |c| c.slow_conntrack_full += 1);
        return None;
    }
    let (src, dst) = (v4_of(&key.src), v4_of(&key.dst));
    let h = flow_hash(src, dst, key.sport, key.dport) % svc.ring_size;
    let slot = *MAGLEV.get(svc.ring_index(h))?;
    if slot == 0 {
        count(svc.slot, |c| c.slow_no_replica += 1);
        return None;
    }
    let real = *REALS.get(slot - 1)?;
    let snat = match source_towards(ctx, v4_of(&real.addr)) {
        Route::Ready(snat) => snat,
        Route::NoNeighbour => {
            // The stack would drop a rewritten frame from our own address as a martian, so the
            // flow goes to the slow path, whose connection makes the kernel resolve it.
            count(svc.slot, |c| c.slow_no_neighbour += 1);
            return None;
        }
        Route::None => {
            count(svc.slot, |c| c.slow_no_route += 1);
            return None;
        }
    };
    let config = *L4_CONFIG.get(0)?;
    if config.port_count == 0 {
        count(svc.slot, |c| c.slow_no_port += 1);
        return None;
    }
    // Safety: helpers without preconditions.
    let now = unsafe { bpf_ktime_get_ns() };
    let reply = Flow {
        src: key.dst,
        dst: key.src,
        sport: key.dport,
        dport: key.sport,
        flags: 0,
        _pad: [0; 3],
        service: svc.slot,
        idle_timeout_s: svc.idle_timeout_s,
        last_seen_ns: now,
    };
    let mut rev = FlowKey {
        src: real.addr,
        dst: v4_mapped(snat),
        sport: real.port,
        dport: 0,
        proto: PROTO_TCP,
        _pad: [0; 3],
    };
    let mut found = false;
    for _ in 0..PORT_PROBES {
        // Safety: no preconditions.
        let r = unsafe { bpf_get_prandom_u32() };
        rev.dport = config.port_min + (r % config.port_count as u32) as u16;
        if CONNTRACK.insert(&rev, &reply, BPF_NOEXIST as u64).is_ok() {
            found = true;
            break;
        }
    }
    if !found {
        count(svc.slot, |c| c.slow_no_port += 1);
        return None;
    }
    let forward = Flow {
        src: rev.dst,
        dst: real.addr,
        sport: rev.dport,
        dport: real.port,
        flags: FLOW_FORWARD,
        _pad: [0; 3],
        service: svc.slot,
        idle_timeout_s: svc.idle_timeout_s,
        last_seen_ns: now,
    };
    if CONNTRACK.insert(key, &forward, BPF_NOEXIST as u64).is_err() {
        // Another CPU set this flow up from a retransmitted SYN meanwhile: use its entries.
        let _ = CONNTRACK.remove(&rev);
        return CONNTRACK.get_ptr_mut(key);
    }
    // Safety: as above. The BPF target has no `AtomicU64::fetch_add`; the intrinsic lowers to
    // the BPF atomic add instruction.
    unsafe { atomic_xadd::<u64, u64, { AtomicOrdering::Relaxed }>(created, 1) };
    count(svc.slot, |c| c.fast_flows += 1);
    CONNTRACK.get_ptr_mut(key)
}

/// Rewrites the frame as `flow` says and sends it on its way.
#[inline(always)]
fn translate(ctx: &XdpContext, h: *mut Headers, flow: *mut Flow, tcp_flags: u8) -> u32 {
    // Safety: `flow` is a live conntrack value (an LRU element stays valid while the program
    // runs) and `h` lies inside the frame. Racing writers only store whole small fields.
    let f = unsafe { *flow };
    // A SYN on an existing entry starts the tuple's next connection: forget how the last ended.
    let kept = if tcp_flags & TCP_SYN != 0 {
        // A client that reuses the tuple of a finished connection (its port is free again once
        // the server kept the TIME_WAIT) opens a new flow on the same replica: count it as one.
        // A SYN on a live entry is a retransmission and counts nothing.
        if f.flags & FLOW_FORWARD != 0 && f.flags & (FLOW_FIN | FLOW_RST) != 0 {
            count(f.service, |c| c.fast_flows += 1);
        }
        f.flags & FLOW_FORWARD
    } else {
        f.flags
    };
    let mut seen = kept | FLOW_SEEN;
    if tcp_flags & TCP_FIN != 0 {
        seen |= FLOW_FIN;
    }
    if tcp_flags & TCP_RST != 0 {
        seen |= FLOW_RST;
    }
    // Safety: as above.
    let now = unsafe { bpf_ktime_get_ns() };
    if seen != f.flags || now.wrapping_sub(f.last_seen_ns) > TOUCH_EVERY_NS {
        unsafe {
            (*flow).flags = seen;
            (*flow).last_seen_ns = now;
        }
    }
    let (new_src, new_dst) = (v4_of(&f.src), v4_of(&f.dst));
    // Safety: `h` lies inside the frame.
    unsafe {
        let (old_src, old_dst) = ((*h).saddr, (*h).daddr);
        let (old_sport, old_dport) = (
            u16::from_be_bytes((*h).sport),
            u16::from_be_bytes((*h).dport),
        );
        let mut ip = u16::from_be_bytes((*h).ip_check);
        ip = csum::replace32(ip, old_src, new_src);
        ip = csum::replace32(ip, old_dst, new_dst);
        let mut tcp = u16::from_be_bytes((*h).tcp_check);
        tcp = csum::replace32(tcp, old_src, new_src);
        tcp = csum::replace32(tcp, old_dst, new_dst);
        tcp = csum::replace16(tcp, old_sport, f.sport);
        tcp = csum::replace16(tcp, old_dport, f.dport);
        (*h).saddr = new_src;
        (*h).daddr = new_dst;
        (*h).sport = f.sport.to_be_bytes();
        (*h).dport = f.dport.to_be_bytes();
        (*h).ip_check = ip.to_be_bytes();
        (*h).tcp_check = tcp.to_be_bytes();
    }
    global(|g| g.translated += 1);
    if f.flags & FLOW_FORWARD != 0 {
        backend_count::count(ctx, Direction::ToBackend);
    }
    // Safety: `h` lies inside the frame.
    let tot_len = u16::from_be_bytes(unsafe { (*h).tot_len });
    let mut params = lookup_params(ctx, new_dst, tot_len);
    params.__bindgen_anon_3.ipv4_src = u32::from_ne_bytes(new_src);
    // Safety: `params` is a valid, fully initialised struct of the size passed.
    let rc = unsafe {
        fib_lookup(
            ctx.as_ptr(),
            &mut params,
            size_of::<bpf_fib_lookup>() as i32,
            0,
        )
    };
    match rc as u32 {
        BPF_FIB_LKUP_RET_SUCCESS => unsafe {
            (*h).eth_dst = params.dmac;
            (*h).eth_src = params.smac;
            global(|g| g.redirected += 1);
            bpf_redirect(params.ifindex, 0) as u32
        },
        BPF_FIB_LKUP_RET_NO_NEIGH => {
            // The neighbour went away mid-flow. The stack cannot forward a frame from our own
            // address, so this one is lost; user space sees the count and resolves the
            // neighbour again, and TCP retransmits.
            count(f.service, |c| c.neighbour_misses += 1);
            xdp_action::XDP_DROP
        }
        _ => xdp_action::XDP_PASS,
    }
}

/// What the kernel's FIB says about a destination.
enum Route {
    /// Routable and its neighbour known: the local source address to use.
    Ready([u8; 4]),
    /// Routable, but the neighbour (ARP) is not resolved.
    NoNeighbour,
    /// Not routable from here.
    None,
}

/// The local address the kernel would use towards `dst`, if it can send there now.
#[inline(always)]
fn source_towards(ctx: &XdpContext, dst: [u8; 4]) -> Route {
    let mut params = lookup_params(ctx, dst, 0);
    // Safety: as in `translate`.
    let rc = unsafe {
        fib_lookup(
            ctx.as_ptr(),
            &mut params,
            size_of::<bpf_fib_lookup>() as i32,
            BPF_FIB_LOOKUP_SRC,
        )
    };
    match rc as u32 {
        BPF_FIB_LKUP_RET_SUCCESS => {
            // Safety: the kernel filled ipv4_src (BPF_FIB_LOOKUP_SRC).
            let src = unsafe { params.__bindgen_anon_3.ipv4_src };
            if src == 0 {
                Route::None
            } else {
                Route::Ready(src.to_ne_bytes())
            }
        }
        BPF_FIB_LKUP_RET_NO_NEIGH => Route::NoNeighbour,
        _ => Route::None,
    }
}

#[inline(always)]
fn lookup_params(ctx: &XdpContext, dst: [u8; 4], tot_len: u16) -> bpf_fib_lookup {
    // Safety: bpf_fib_lookup is plain data; all zero is its "unset" state.
    let mut params: bpf_fib_lookup = unsafe { core::mem::zeroed() };
    params.family = AF_INET;
    params.l4_protocol = PROTO_TCP;
    params.__bindgen_anon_1.tot_len = tot_len;
    params.__bindgen_anon_4.ipv4_dst = u32::from_ne_bytes(dst);
    // Safety: `ctx.ctx` is the kernel's xdp_md for this run.
    params.ifindex = unsafe { (*ctx.ctx).ingress_ifindex };
    params
}

#[inline(always)]
fn count(slot: u32, f: impl FnOnce(&mut ServiceCounters)) {
    if let Some(c) = L4_SERVICE_STATS.get_ptr_mut(slot) {
        // Safety: the per-CPU slot belongs to this CPU while the program runs.
        f(unsafe { &mut *c });
    }
}

#[inline(always)]
fn global(f: impl FnOnce(&mut proxy_common::fastpath::GlobalCounters)) {
    if let Some(c) = L4_GLOBAL_STATS.get_ptr_mut(0) {
        // Safety: as in `count`.
        f(unsafe { &mut *c });
    }
}

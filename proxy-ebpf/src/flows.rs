//! The TCP-mode fast path's flow logic, shared by the XDP and TC programs: a SYN to a service
//! picks a replica from the service's Maglev ring, gets a source port towards it and two
//! conntrack entries; from then on every packet of the flow, both ways, is rewritten (full
//! NAT, `proxy_common::nat`) and redirected without entering the stack. How a packet is read,
//! rewritten and sent is the hook's part (`xdp_fast`, `tc_fast`).
use core::intrinsics::{AtomicOrdering, atomic_xadd};

use aya_ebpf::{
    EbpfContext,
    bindings::{
        BPF_FIB_LKUP_RET_NO_NEIGH, BPF_FIB_LKUP_RET_SUCCESS, BPF_FIB_LOOKUP_SRC, BPF_NOEXIST,
        bpf_fib_lookup,
    },
    helpers::{bpf_fib_lookup as fib_lookup, bpf_get_prandom_u32, bpf_ktime_get_ns},
    programs::{TcContext, XdpContext},
};
use proxy_common::{
    BackendKey,
    fastpath::{
        FLOW_FIN, FLOW_FORWARD, FLOW_RST, FLOW_SEEN, Flow, FlowKey, GlobalCounters, PROTO_TCP,
        ServiceCounters, ServiceEntry, ServiceKey, budget, flow_hash, hook, is_v4_mapped,
        v4_mapped, v4_of,
    },
    nat::Tuple4,
    nat6::Tuple6,
};

use crate::{
    maps::{
        CONNTRACK, FLOW_BUDGET, IFACE_HOOKS, L4_CONFIG, L4_GLOBAL_STATS, L4_SERVICE_STATS,
        L4_SERVICES, MAGLEV, REALS,
    },
    packet::{TCP_ACK, TCP_RST, TCP_SYN},
};

const TCP_FIN: u8 = 0x01;
const AF_INET: u8 = 2;
const AF_INET6: u8 = 10;
/// Source ports tried towards a replica before giving the flow to the slow path.
const PORT_PROBES: u32 = 16;
/// `last_seen_ns` is refreshed at most this often, to keep CPUs from bouncing its cache line.
const TOUCH_EVERY_NS: u64 = 1_000_000_000;

/// The hook a fast-path program runs in: what the shared flow logic needs from it.
pub trait Hook: EbpfContext {
    /// The interface the packet arrived on.
    fn ingress_ifindex(&self) -> u32;
    /// Whether this hook can send a packet whose next hop's link-layer address is not known
    /// yet (TC's `bpf_redirect_neigh` resolves it; an XDP frame cannot wait).
    const RESOLVES_NEIGHBOURS: bool;
    /// This hook's `fastpath::hook` value.
    const KIND: u32;
}

impl Hook for XdpContext {
    #[inline(always)]
    fn ingress_ifindex(&self) -> u32 {
        // Safety: `ctx` is the kernel's xdp_md for this run.
        unsafe { (*self.ctx).ingress_ifindex }
    }
    const RESOLVES_NEIGHBOURS: bool = false;
    const KIND: u32 = hook::XDP;
}

impl Hook for TcContext {
    #[inline(always)]
    fn ingress_ifindex(&self) -> u32 {
        // Safety: `skb` is the kernel's __sk_buff for this run; at ingress `ifindex` is the
        // receiving device.
        unsafe { (*self.skb.skb).ifindex }
    }
    const RESOLVES_NEIGHBOURS: bool = true;
    const KIND: u32 = hook::TC;
}

/// The conntrack key of an arriving IPv4 segment.
#[inline(always)]
pub fn key_of(t: &Tuple4) -> FlowKey {
    FlowKey {
        src: v4_mapped(t.saddr),
        dst: v4_mapped(t.daddr),
        sport: t.sport,
        dport: t.dport,
        proto: PROTO_TCP,
        _pad: [0; 3],
    }
}

/// The conntrack key of an arriving IPv6 segment.
#[inline(always)]
pub fn key_of6(t: &Tuple6) -> FlowKey {
    FlowKey {
        src: t.saddr,
        dst: t.daddr,
        sport: t.sport,
        dport: t.dport,
        proto: PROTO_TCP,
        _pad: [0; 3],
    }
}

/// The flow a segment belongs to, set up now if it is a SYN to a service; `None` leaves the
/// segment to the stack (the slow path), with the reason counted.
// A call of its own (bpf-to-bpf), as is the hooks' rewrite: the verifier adds up the frames
// of a call chain, and setting a flow up and rewriting a packet never need theirs at once.
#[inline(never)]
pub fn flow_for<H: Hook>(ctx: &H, key: &FlowKey, tcp_flags: u8) -> Option<*mut Flow> {
    match CONNTRACK.get_ptr_mut(key) {
        Some(flow) => Some(flow),
        None if tcp_flags & (TCP_SYN | TCP_ACK | TCP_RST) == TCP_SYN => new_flow(ctx, key),
        None => None,
    }
}

/// Sets up a flow for a SYN to a service, or `None` (counted) to leave it to the slow path.
#[inline(always)]
fn new_flow<H: Hook>(ctx: &H, key: &FlowKey) -> Option<*mut Flow> {
    let mut svc_key = ServiceKey {
        addr: key.dst,
        port: key.dport,
        proto: PROTO_TCP,
        _pad: 0,
    };
    // The exact address, then any address of its family (a listener on `0.0.0.0`), then any
    // address at all (`[::]`, which takes IPv4 too).
    // Safety: user space writes whole entries.
    let svc = match unsafe { L4_SERVICES.get(&svc_key) } {
        Some(svc) => *svc,
        None => {
            let v4 = is_v4_mapped(&key.dst);
            svc_key.addr = if v4 { v4_mapped([0; 4]) } else { [0; 16] };
            match unsafe { L4_SERVICES.get(&svc_key) } {
                Some(svc) => *svc,
                None if v4 => {
                    svc_key.addr = [0; 16];
                    *unsafe { L4_SERVICES.get(&svc_key) }?
                }
                None => return None,
            }
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
    let h = flow_hash(&key.src, &key.dst, key.sport, key.dport) % svc.ring_size;
    let slot = *MAGLEV.get(svc.ring_index(h))?;
    if slot == 0 {
        count(svc.slot, |c| c.slow_no_replica += 1);
        return None;
    }
    let real = *REALS.get(slot - 1)?;
    // The rewrite keeps the header's family: an IPv6 client to an IPv4 replica (or the
    // reverse) is the relay's to bridge.
    if is_v4_mapped(&real.addr) != is_v4_mapped(&key.dst) {
        count(svc.slot, |c| c.slow_other_family += 1);
        return None;
    }
    let mut snat = [0u8; 16];
    let egress = match unpack(source_towards(ctx, &real.addr, &mut snat)) {
        (Route::Ready, egress) => egress,
        (Route::NoNeighbour, egress) if H::RESOLVES_NEIGHBOURS => egress,
        (Route::NoNeighbour, _) => {
            // The stack would drop a rewritten frame from our own address as a martian, so the
            // flow goes to the slow path, whose connection makes the kernel resolve it.
            count(svc.slot, |c| c.slow_no_neighbour += 1);
            return None;
        }
        (Route::None, _) => {
            count(svc.slot, |c| c.slow_no_route += 1);
            return None;
        }
    };
    // Replies arrive on the replica's interface and go out of the client's: both must run
    // this program, or replies would reach the stack unrewritten (and an XDP frame can only
    // be redirected into a device that takes XDP frames).
    if !runs::<H>(ctx.ingress_ifindex()) || !runs::<H>(egress) {
        count(svc.slot, |c| c.slow_return_path += 1);
        return None;
    }
    install(key, &real, &snat, &svc)
}

/// Makes the flow's two conntrack entries: the reply's under a free source port towards the
/// replica, then the forward one. `None` (counted) when no port is free.
// A call of its own, after `source_towards` returned: their frames are never needed at once.
#[inline(never)]
fn install(
    key: &FlowKey,
    real: &BackendKey,
    snat: &[u8; 16],
    svc: &ServiceEntry,
) -> Option<*mut Flow> {
    let config = *L4_CONFIG.get(0)?;
    if config.port_count == 0 {
        count(svc.slot, |c| c.slow_no_port += 1);
        return None;
    }
    // Safety: helpers without preconditions.
    let now = unsafe { bpf_ktime_get_ns() };
    // One value for both entries (the reply's first, then the forward's): stack is scarce.
    let mut entry = Flow {
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
        dst: *snat,
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
        if CONNTRACK.insert(&rev, &entry, BPF_NOEXIST as u64).is_ok() {
            found = true;
            break;
        }
    }
    if !found {
        count(svc.slot, |c| c.slow_no_port += 1);
        return None;
    }
    entry.src = rev.dst;
    entry.dst = real.addr;
    entry.sport = rev.dport;
    entry.dport = real.port;
    entry.flags = FLOW_FORWARD;
    if CONNTRACK.insert(key, &entry, BPF_NOEXIST as u64).is_err() {
        // Another CPU set this flow up from a retransmitted SYN meanwhile: use its entries.
        let _ = CONNTRACK.remove(&rev);
        return CONNTRACK.get_ptr_mut(key);
    }
    // Safety: as above. The BPF target has no `AtomicU64::fetch_add`; the intrinsic lowers to
    // the BPF atomic add instruction.
    let created = FLOW_BUDGET.get_ptr_mut(budget::CREATED)?;
    unsafe { atomic_xadd::<u64, u64, { AtomicOrdering::Relaxed }>(created, 1) };
    count(svc.slot, |c| c.fast_flows += 1);
    CONNTRACK.get_ptr_mut(key)
}

/// Records a segment of `flow` (its FIN, RST, a new SYN on the tuple, the time) and returns
/// the entry as it now stands.
#[inline(always)]
pub fn update(flow: *mut Flow, tcp_flags: u8) -> Flow {
    // Safety: `flow` is a live conntrack value (an LRU element stays valid while the program
    // runs). Racing writers only store whole small fields.
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
    global(|g| g.translated += 1);
    f
}

/// Where a rewritten packet goes next.
#[derive(Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum Egress {
    /// Out of the hop's interface, to its MAC.
    Ready = 0,
    /// Out of the hop's interface, whose next hop is not resolved yet (MACs unset).
    NoNeighbour = 1,
    /// Not routable by the fast path: hand it to the stack.
    Stack = 2,
}

/// The next hop of a rewritten packet, filled by [`egress`].
#[derive(Clone, Copy, Default)]
pub struct Hop {
    /// The interface.
    pub ifindex: u32,
    /// The next hop's MAC.
    pub dmac: [u8; 6],
    /// The interface's MAC.
    pub smac: [u8; 6],
}

/// Looks up how to send a packet from `src` to `dst` (the kernel's FIB and neighbour table)
/// into `hop`. Addresses in key form: IPv4-mapped ones are looked up as IPv4.
// A call of its own with an out parameter: the lookup's 64 bytes stay out of the callers'
// frames (a BPF call returns one register).
#[inline(never)]
pub fn egress<H: Hook>(ctx: &H, src: &[u8; 16], dst: &[u8; 16], hop: &mut Hop) -> Egress {
    // Safety: bpf_fib_lookup is plain data; all zero is its "unset" state.
    let mut params: bpf_fib_lookup = unsafe { core::mem::zeroed() };
    // tot_len 0: the MTU is the kernel's business (a TC skb may be a GSO train).
    lookup_params(ctx, dst, &mut params);
    set_source(&mut params, src);
    // Safety: `params` is a valid, fully initialised struct of the size passed.
    let rc = unsafe {
        fib_lookup(
            ctx.as_ptr(),
            &mut params,
            size_of::<bpf_fib_lookup>() as i32,
            0,
        )
    };
    hop.ifindex = params.ifindex;
    match rc as u32 {
        BPF_FIB_LKUP_RET_SUCCESS => {
            hop.dmac = params.dmac;
            hop.smac = params.smac;
            Egress::Ready
        }
        BPF_FIB_LKUP_RET_NO_NEIGH => Egress::NoNeighbour,
        _ => Egress::Stack,
    }
}

/// Whether interface `ifindex` runs hook `H`'s program.
#[inline(always)]
fn runs<H: Hook>(ifindex: u32) -> bool {
    // Safety: a plain u32 that user space writes whole.
    unsafe { IFACE_HOOKS.get(&ifindex) }.copied() == Some(H::KIND)
}

/// What the kernel's FIB says about a destination (the source address goes to an out
/// parameter: a BPF call returns one register).
#[derive(Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
enum Route {
    /// Routable and its neighbour known.
    Ready = 0,
    /// Routable, but the neighbour (ARP or ND) is not resolved; source and interface are known.
    NoNeighbour = 1,
    /// Not routable from here.
    None = 2,
}

/// The local address the kernel would use towards `dst` (into `src`, key form) and the
/// interface, as `(route, ifindex)` packed into one register.
// A call of its own: the lookup's parameters would otherwise sit in `flow_for`'s frame, which
// is near the stack limit already.
#[inline(never)]
fn source_towards<H: Hook>(ctx: &H, dst: &[u8; 16], src: &mut [u8; 16]) -> u64 {
    let none = (Route::None as u64) << 32;
    // Safety: as in `egress`.
    let mut params: bpf_fib_lookup = unsafe { core::mem::zeroed() };
    lookup_params(ctx, dst, &mut params);
    // Safety: as in `egress`.
    let rc = unsafe {
        fib_lookup(
            ctx.as_ptr(),
            &mut params,
            size_of::<bpf_fib_lookup>() as i32,
            BPF_FIB_LOOKUP_SRC,
        )
    };
    // The kernel fills the source before it looks for the neighbour.
    let route = match rc as u32 {
        BPF_FIB_LKUP_RET_SUCCESS => Route::Ready,
        BPF_FIB_LKUP_RET_NO_NEIGH => Route::NoNeighbour,
        _ => return none,
    };
    *src = source_of(&params);
    if *src == [0; 16] || *src == v4_mapped([0; 4]) {
        return none;
    }
    ((route as u64) << 32) | params.ifindex as u64
}

/// Splits what [`source_towards`] packed.
#[inline(always)]
fn unpack(packed: u64) -> (Route, u32) {
    let route = match packed >> 32 {
        0 => Route::Ready,
        1 => Route::NoNeighbour,
        _ => Route::None,
    };
    (route, packed as u32)
}

#[inline(always)]
fn lookup_params<H: Hook>(ctx: &H, dst: &[u8; 16], params: &mut bpf_fib_lookup) {
    params.l4_protocol = PROTO_TCP;
    if is_v4_mapped(dst) {
        params.family = AF_INET;
        params.__bindgen_anon_4.ipv4_dst = u32::from_ne_bytes(v4_of(dst));
    } else {
        params.family = AF_INET6;
        params.__bindgen_anon_4.ipv6_dst = words(dst);
    }
    params.ifindex = ctx.ingress_ifindex();
}

#[inline(always)]
fn set_source(params: &mut bpf_fib_lookup, src: &[u8; 16]) {
    if params.family == AF_INET {
        params.__bindgen_anon_3.ipv4_src = u32::from_ne_bytes(v4_of(src));
    } else {
        params.__bindgen_anon_3.ipv6_src = words(src);
    }
}

/// The source address the kernel filled in (`BPF_FIB_LOOKUP_SRC`), in key form.
#[inline(always)]
fn source_of(params: &bpf_fib_lookup) -> [u8; 16] {
    // Safety: the union member of the family asked for is the one the kernel wrote.
    unsafe {
        if params.family == AF_INET {
            v4_mapped(params.__bindgen_anon_3.ipv4_src.to_ne_bytes())
        } else {
            let w = params.__bindgen_anon_3.ipv6_src;
            let mut a = [0u8; 16];
            a[..4].copy_from_slice(&w[0].to_ne_bytes());
            a[4..8].copy_from_slice(&w[1].to_ne_bytes());
            a[8..12].copy_from_slice(&w[2].to_ne_bytes());
            a[12..].copy_from_slice(&w[3].to_ne_bytes());
            a
        }
    }
}

/// An IPv6 address as the FIB's four words (each in network byte order in memory).
#[inline(always)]
fn words(a: &[u8; 16]) -> [u32; 4] {
    [
        u32::from_ne_bytes([a[0], a[1], a[2], a[3]]),
        u32::from_ne_bytes([a[4], a[5], a[6], a[7]]),
        u32::from_ne_bytes([a[8], a[9], a[10], a[11]]),
        u32::from_ne_bytes([a[12], a[13], a[14], a[15]]),
    ]
}

#[inline(always)]
pub fn count(slot: u32, f: impl FnOnce(&mut ServiceCounters)) {
    if let Some(c) = L4_SERVICE_STATS.get_ptr_mut(slot) {
        // Safety: the per-CPU slot belongs to this CPU while the program runs.
        f(unsafe { &mut *c });
    }
}

#[inline(always)]
pub fn global(f: impl FnOnce(&mut GlobalCounters)) {
    if let Some(c) = L4_GLOBAL_STATS.get_ptr_mut(0) {
        // Safety: as in `count`.
        f(unsafe { &mut *c });
    }
}

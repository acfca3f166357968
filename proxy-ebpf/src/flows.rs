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
    fastpath::{
        FLOW_FIN, FLOW_FORWARD, FLOW_RST, FLOW_SEEN, Flow, FlowKey, GlobalCounters, PROTO_TCP,
        ServiceCounters, ServiceKey, budget, flow_hash, hook, v4_mapped, v4_of,
    },
    nat::Tuple4,
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

/// The conntrack key of an arriving segment.
#[inline(always)]
fn key_of(t: &Tuple4) -> FlowKey {
    FlowKey {
        src: v4_mapped(t.saddr),
        dst: v4_mapped(t.daddr),
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
pub fn flow_for<H: Hook>(ctx: &H, tuple: &Tuple4, tcp_flags: u8) -> Option<*mut Flow> {
    let key = key_of(tuple);
    match CONNTRACK.get_ptr_mut(&key) {
        Some(flow) => Some(flow),
        None if tcp_flags & (TCP_SYN | TCP_ACK | TCP_RST) == TCP_SYN => new_flow(ctx, &key),
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
    let (snat, egress) = match source_towards(ctx, v4_of(&real.addr)) {
        Route::Ready(snat, egress) => (snat, egress),
        Route::NoNeighbour(snat, egress) if H::RESOLVES_NEIGHBOURS => (snat, egress),
        Route::NoNeighbour(..) => {
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
    // Replies arrive on the replica's interface and go out of the client's: both must run
    // this program, or replies would reach the stack unrewritten (and an XDP frame can only
    // be redirected into a device that takes XDP frames).
    if !runs::<H>(ctx.ingress_ifindex()) || !runs::<H>(egress) {
        count(svc.slot, |c| c.slow_return_path += 1);
        return None;
    }
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
pub enum Egress {
    /// Out of `ifindex` with these link-layer addresses.
    Ready {
        /// The interface.
        ifindex: u32,
        /// The next hop's MAC.
        dmac: [u8; 6],
        /// The interface's MAC.
        smac: [u8; 6],
    },
    /// Out of `ifindex`, whose next hop is not resolved yet.
    NoNeighbour {
        /// The interface.
        ifindex: u32,
    },
    /// Not routable by the fast path: hand it to the stack.
    Stack,
}

/// Looks up how to send a packet from `src` to `dst` (the kernel's FIB and neighbour table).
#[inline(always)]
pub fn egress<H: Hook>(ctx: &H, src: [u8; 4], dst: [u8; 4]) -> Egress {
    // tot_len 0: the MTU is the kernel's business (a TC skb may be a GSO train).
    let mut params = lookup_params(ctx, dst, 0);
    params.__bindgen_anon_3.ipv4_src = u32::from_ne_bytes(src);
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
        BPF_FIB_LKUP_RET_SUCCESS => Egress::Ready {
            ifindex: params.ifindex,
            dmac: params.dmac,
            smac: params.smac,
        },
        BPF_FIB_LKUP_RET_NO_NEIGH => Egress::NoNeighbour {
            ifindex: params.ifindex,
        },
        _ => Egress::Stack,
    }
}

/// Whether interface `ifindex` runs hook `H`'s program.
#[inline(always)]
fn runs<H: Hook>(ifindex: u32) -> bool {
    // Safety: a plain u32 that user space writes whole.
    unsafe { IFACE_HOOKS.get(&ifindex) }.copied() == Some(H::KIND)
}

/// What the kernel's FIB says about a destination.
enum Route {
    /// Routable and its neighbour known: the local source address to use, and the interface.
    Ready([u8; 4], u32),
    /// Routable, but the neighbour (ARP) is not resolved; source and interface are known.
    NoNeighbour([u8; 4], u32),
    /// Not routable from here.
    None,
}

/// The local address the kernel would use towards `dst`, if it can send there now.
#[inline(always)]
fn source_towards<H: Hook>(ctx: &H, dst: [u8; 4]) -> Route {
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
                Route::Ready(src.to_ne_bytes(), params.ifindex)
            }
        }
        // The kernel fills the source before it looks for the neighbour.
        BPF_FIB_LKUP_RET_NO_NEIGH => {
            // Safety: as above.
            let src = unsafe { params.__bindgen_anon_3.ipv4_src };
            if src == 0 {
                Route::None
            } else {
                Route::NoNeighbour(src.to_ne_bytes(), params.ifindex)
            }
        }
        _ => Route::None,
    }
}

#[inline(always)]
fn lookup_params<H: Hook>(ctx: &H, dst: [u8; 4], tot_len: u16) -> bpf_fib_lookup {
    // Safety: bpf_fib_lookup is plain data; all zero is its "unset" state.
    let mut params: bpf_fib_lookup = unsafe { core::mem::zeroed() };
    params.family = AF_INET;
    params.l4_protocol = PROTO_TCP;
    params.__bindgen_anon_1.tot_len = tot_len;
    params.__bindgen_anon_4.ipv4_dst = u32::from_ne_bytes(dst);
    params.ifindex = ctx.ingress_ifindex();
    params
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

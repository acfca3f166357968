//! Types of the TCP-mode fast path: services, the Maglev rings, conntrack entries and the
//! counters that say why a flow did or did not take the fast path.
//!
//! Addresses are IPv4-mapped IPv6 (`::ffff:a.b.c.d`) everywhere, so IPv6 fits the same keys
//! without a layout change. Ports are host byte order.

/// How many TCP-mode services the fast path can hold (slots of `L4_SERVICE_STATS` and ring
/// regions of `MAGLEV`).
pub const MAX_L4_SERVICES: u32 = 128;

/// The largest Maglev ring of one service: a prime, enough for 81 replicas at M ≥ 100 × N.
pub const RING_MAX: u32 = 8191;

/// Entries of the `MAGLEV` array: two rings (double buffer) of `RING_MAX` per service.
pub const MAGLEV_ENTRIES: u32 = MAX_L4_SERVICES * 2 * RING_MAX;

/// IP protocol number of TCP.
pub const PROTO_TCP: u8 = 6;

/// A TCP-mode service as the kernel sees it: the address and port clients connect to. An
/// all-zero address stands for every local address of both families (the listener is bound
/// to `[::]`, which takes IPv4 too); `::ffff:0.0.0.0` for every local IPv4 address only (bound
/// to `0.0.0.0`), so IPv6 clients are not served where the relay does not listen.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServiceKey {
    /// The address, IPv4-mapped; all zero for any, `::ffff:0.0.0.0` for any IPv4.
    pub addr: [u8; 16],
    /// The port (`srcPort`).
    pub port: u16,
    /// The IP protocol (`PROTO_TCP`).
    pub proto: u8,
    /// Explicit padding, always zero.
    pub _pad: u8,
}

/// Where a service's ring is and how its flows are timed out.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ServiceEntry {
    /// The service's slot: its ring region and its `L4_SERVICE_STATS` slot.
    pub slot: u32,
    /// Which of the two rings is live (0 or 1). User space writes the other one, then flips.
    pub ring_half: u32,
    /// The ring's length M (a prime), or 0 when the service has no replica.
    pub ring_size: u32,
    /// Seconds a flow may stay idle (the service's `timeoutTunnel`).
    pub idle_timeout_s: u32,
}

impl ServiceEntry {
    /// Index in `MAGLEV` of position `h` of this service's live ring.
    pub const fn ring_index(&self, h: u32) -> u32 {
        (self.slot * 2 + self.ring_half) * RING_MAX + h
    }
}

/// Index in `MAGLEV` of position `h` of ring `half` of service `slot`.
pub const fn ring_index(slot: u32, half: u32, h: u32) -> u32 {
    (slot * 2 + half) * RING_MAX + h
}

/// A conntrack key: one direction of a flow as it arrives at the proxy.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FlowKey {
    /// Source address, IPv4-mapped.
    pub src: [u8; 16],
    /// Destination address, IPv4-mapped.
    pub dst: [u8; 16],
    /// Source port.
    pub sport: u16,
    /// Destination port.
    pub dport: u16,
    /// IP protocol.
    pub proto: u8,
    /// Explicit padding, always zero.
    pub _pad: [u8; 3],
}

/// The flow goes client → backend (the entry made from the SYN).
pub const FLOW_FORWARD: u8 = 1;
/// A FIN was seen in this direction.
pub const FLOW_FIN: u8 = 2;
/// A RST was seen in this direction.
pub const FLOW_RST: u8 = 4;
/// A packet was seen in this direction after the one that created the entry.
pub const FLOW_SEEN: u8 = 8;

/// What a conntrack entry rewrites the packet to, and when it was last used.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Flow {
    /// New source address, IPv4-mapped.
    pub src: [u8; 16],
    /// New destination address, IPv4-mapped.
    pub dst: [u8; 16],
    /// New source port.
    pub sport: u16,
    /// New destination port.
    pub dport: u16,
    /// `FLOW_*` bits.
    pub flags: u8,
    /// Explicit padding, always zero.
    pub _pad: [u8; 3],
    /// The service's slot.
    pub service: u32,
    /// Seconds the flow may stay idle once established.
    pub idle_timeout_s: u32,
    /// `bpf_ktime_get_ns` (CLOCK_MONOTONIC) of the last packet, refreshed at most once a second.
    pub last_seen_ns: u64,
}

impl Flow {
    /// The key under which packets of the other direction arrive: this entry's rewritten
    /// tuple, reversed.
    pub const fn reverse_key(&self) -> FlowKey {
        FlowKey {
            src: self.dst,
            dst: self.src,
            sport: self.dport,
            dport: self.sport,
            proto: PROTO_TCP,
            _pad: [0; 3],
        }
    }
}

/// Which fast-path program runs on an interface (`IFACE_HOOKS` values). A flow is fast-pathed
/// only when its client's and its replica's interfaces run the same one.
pub mod hook {
    /// The XDP program (physical NICs).
    pub const XDP: u32 = 1;
    /// The TC ingress program (veths and other virtual devices).
    pub const TC: u32 = 2;
}

/// Slots of `FLOW_BUDGET`.
pub mod budget {
    /// Flows created by the programs (atomically incremented).
    pub const CREATED: u32 = 0;
    /// Flows removed, as reconciled by user space's sweep.
    pub const REMOVED: u32 = 1;
    /// Most flows at once; 0 disables the fast path.
    pub const LIMIT: u32 = 2;
    /// Entries of the map.
    pub const LEN: u32 = 3;
}

/// Settings user space gives the fast path (`L4_CONFIG[0]`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FastPathConfig {
    /// First source port used towards backends.
    pub port_min: u16,
    /// How many ports from `port_min` on.
    pub port_count: u16,
}

/// Why flows of a service took the fast path or not, per CPU (`L4_SERVICE_STATS`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "user", derive(serde::Serialize))]
pub struct ServiceCounters {
    /// Flows forwarded by the fast path (XDP or TC) from their SYN on.
    pub fast_flows: u64,
    /// SYNs passed on because the conntrack budget (`--conntrack-size`) was used up.
    pub slow_conntrack_full: u64,
    /// SYNs passed on because no source port was free towards the chosen replica.
    pub slow_no_port: u64,
    /// SYNs passed on because the kernel had no route to the replica.
    pub slow_no_route: u64,
    /// SYNs passed on because the service had no replica in its ring.
    pub slow_no_replica: u64,
    /// SYNs passed on because the replica's link-layer address was not known yet (the relay's
    /// connection makes the kernel resolve it; user space also warms neighbours up).
    pub slow_no_neighbour: u64,
    /// Packets of established fast-path flows whose neighbour was gone: XDP drops them (TCP
    /// retransmits), TC hands them to `bpf_redirect_neigh`, which never counts here.
    pub neighbour_misses: u64,
    /// SYNs passed on because the replica's interface (where replies arrive) does not run the
    /// same fast-path program as the client's: not attached there, or XDP on one side and TC
    /// on the other (an XDP frame cannot be redirected into any device).
    pub slow_return_path: u64,
    /// SYNs passed on because the chosen replica's address family differs from the client's
    /// (an IPv6 client and an IPv4 replica, or the reverse): the relay bridges the two.
    pub slow_other_family: u64,
}

impl ServiceCounters {
    /// Every slow-path reason the programs count, by the name metrics and JSON give it.
    pub const fn slow_reasons(&self) -> [(&'static str, u64); 7] {
        [
            ("conntrack_full", self.slow_conntrack_full),
            ("no_port", self.slow_no_port),
            ("no_route", self.slow_no_route),
            ("no_replica", self.slow_no_replica),
            ("no_neighbour", self.slow_no_neighbour),
            ("return_path", self.slow_return_path),
            ("other_family", self.slow_other_family),
        ]
    }

    /// SYNs the programs passed on with a reason (any of [`Self::slow_reasons`]).
    pub const fn slow_with_reason(&self) -> u64 {
        let reasons = self.slow_reasons();
        let mut total = 0u64;
        let mut i = 0;
        while i < reasons.len() {
            total = total.wrapping_add(reasons[i].1);
            i += 1;
        }
        total
    }
}

impl crate::Counters for ServiceCounters {
    fn add(&mut self, o: &ServiceCounters) {
        self.fast_flows = self.fast_flows.wrapping_add(o.fast_flows);
        self.slow_conntrack_full = self.slow_conntrack_full.wrapping_add(o.slow_conntrack_full);
        self.slow_no_port = self.slow_no_port.wrapping_add(o.slow_no_port);
        self.slow_no_route = self.slow_no_route.wrapping_add(o.slow_no_route);
        self.slow_no_replica = self.slow_no_replica.wrapping_add(o.slow_no_replica);
        self.slow_no_neighbour = self.slow_no_neighbour.wrapping_add(o.slow_no_neighbour);
        self.neighbour_misses = self.neighbour_misses.wrapping_add(o.neighbour_misses);
        self.slow_return_path = self.slow_return_path.wrapping_add(o.slow_return_path);
        self.slow_other_family = self.slow_other_family.wrapping_add(o.slow_other_family);
    }
}

/// Counters not tied to a service (`L4_GLOBAL_STATS[0]`, per CPU).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "user", derive(serde::Serialize))]
pub struct GlobalCounters {
    /// IPv6 packets with an extension header before TCP, which the fast path does not parse,
    /// passed to the stack untouched.
    pub ipv6_passed: u64,
    /// Packets rewritten by a conntrack entry.
    pub translated: u64,
    /// Of those, packets redirected out of an interface (by XDP or TC).
    pub redirected: u64,
    /// Packets the TC program dropped because a kernel helper refused to rewrite them.
    pub rewrite_failed: u64,
}

impl crate::Counters for GlobalCounters {
    fn add(&mut self, o: &GlobalCounters) {
        self.ipv6_passed = self.ipv6_passed.wrapping_add(o.ipv6_passed);
        self.translated = self.translated.wrapping_add(o.translated);
        self.redirected = self.redirected.wrapping_add(o.redirected);
        self.rewrite_failed = self.rewrite_failed.wrapping_add(o.rewrite_failed);
    }
}

/// Maps an IPv4 address (network byte order) into the 16-byte key form.
pub const fn v4_mapped(a: [u8; 4]) -> [u8; 16] {
    [
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, a[0], a[1], a[2], a[3],
    ]
}

/// The IPv4 address of an IPv4-mapped key address.
pub const fn v4_of(a: &[u8; 16]) -> [u8; 4] {
    [a[12], a[13], a[14], a[15]]
}

/// Whether a key address is IPv4-mapped (`::ffff:a.b.c.d`).
pub const fn is_v4_mapped(a: &[u8; 16]) -> bool {
    let mut i = 0;
    while i < 10 {
        if a[i] != 0 {
            return false;
        }
        i += 1;
    }
    a[10] == 0xff && a[11] == 0xff
}

/// Hash of a flow's tuple, used to pick its Maglev ring position: the same tuple always lands
/// on the same position. A murmur3-style mix of both addresses (all 16 bytes, so IPv4-mapped
/// and IPv6 alike) and the ports.
#[inline(always)]
pub const fn flow_hash(src: &[u8; 16], dst: &[u8; 16], sport: u16, dport: u16) -> u32 {
    let mut h: u32 = 0x9747_b28c;
    let mut i = 0;
    while i < 16 {
        h = mix(
            h,
            u32::from_be_bytes([src[i], src[i + 1], src[i + 2], src[i + 3]]),
        );
        h = mix(
            h,
            u32::from_be_bytes([dst[i], dst[i + 1], dst[i + 2], dst[i + 3]]),
        );
        i += 4;
    }
    h = mix(h, ((sport as u32) << 16) | dport as u32);
    // Final avalanche (murmur3's fmix32).
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^ (h >> 16)
}

#[inline(always)]
const fn mix(h: u32, k: u32) -> u32 {
    let k = k
        .wrapping_mul(0xcc9e_2d51)
        .rotate_left(15)
        .wrapping_mul(0x1b87_3593);
    (h ^ k)
        .rotate_left(13)
        .wrapping_mul(5)
        .wrapping_add(0xe654_6b64)
}

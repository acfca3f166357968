//! Types shared by flowproxy's kernel programs (`proxy-ebpf`) and user space (`proxy`).
//!
//! Every type here is `#[repr(C)]` with explicit padding so that both sides agree on the byte
//! layout of map keys and values. The `user` feature adds `aya::Pod` for user space.
#![no_std]

#[cfg(test)]
extern crate std;

pub mod csum;
pub mod fastpath;
pub mod nat;
pub mod nat6;

/// Version of the map layouts below. Bump it whenever a key or value changes shape, so that a
/// restart over old pins can tell that they must be replaced rather than reused.
pub const MAP_LAYOUT_VERSION: u32 = 5;

/// Directory under the BPF filesystem where flowproxy pins its maps unless told otherwise.
pub const DEFAULT_PIN_DIR: &str = "/sys/fs/bpf/flowproxy";

/// How many interfaces the counting program can tell apart (slots of `IFACE_STATS`).
pub const MAX_INTERFACES: u32 = 64;

/// How many backends (replica address and port) can be counted at once (slots of `BACKEND_STATS`).
pub const MAX_BACKENDS: u32 = 4096;

/// Bytes of a service name kept in `BACKENDS` values (longer names are cut).
pub const SERVICE_NAME_LEN: usize = 56;

/// Map names, which are also the file names of their pins.
pub mod map_names {
    /// `ARRAY<u32>[1]`: the `MAP_LAYOUT_VERSION` the pins were made with.
    pub const LAYOUT: &str = "LAYOUT";
    /// `HASH<u32 ifindex, u32 slot>`: which `IFACE_STATS` slot counts an interface's packets.
    pub const IFACE_SLOTS: &str = "IFACE_SLOTS";
    /// `HASH<u32 ifindex, u32 hook>`: which fast-path program (`fastpath::hook`) runs on an
    /// interface.
    pub const IFACE_HOOKS: &str = "IFACE_HOOKS";
    /// `PERCPU_ARRAY<IfaceCounters>` indexed by slot: ingress packets and bytes per interface.
    pub const IFACE_STATS: &str = "IFACE_STATS";
    /// `HASH<BackendKey, BackendSlot>`: the replicas being counted, written by user space as
    /// discovery finds them.
    pub const BACKENDS: &str = "BACKENDS";
    /// `PERCPU_ARRAY<BackendCounters>` indexed by `BackendSlot::slot`.
    pub const BACKEND_STATS: &str = "BACKEND_STATS";
    /// `ARRAY<BackendKey>` indexed by backend slot: the address a slot stands for, so a
    /// Maglev ring can hold slots.
    pub const REALS: &str = "REALS";
    /// `HASH<ServiceKey, ServiceEntry>`: the TCP-mode services the fast path forwards.
    pub const L4_SERVICES: &str = "L4_SERVICES";
    /// `ARRAY<u32>`: the Maglev rings, two per service; an entry is a backend slot + 1 (0: none).
    pub const MAGLEV: &str = "MAGLEV";
    /// `LRU_HASH<FlowKey, Flow>`: conntrack, a forward and a reverse entry per flow.
    pub const CONNTRACK: &str = "CONNTRACK";
    /// `ARRAY<u64>[3]`: flows created, flows removed and the most flows at once.
    pub const FLOW_BUDGET: &str = "FLOW_BUDGET";
    /// `ARRAY<FastPathConfig>[1]`: the source-port range towards backends.
    pub const L4_CONFIG: &str = "L4_CONFIG";
    /// `PERCPU_ARRAY<ServiceCounters>` indexed by service slot.
    pub const L4_SERVICE_STATS: &str = "L4_SERVICE_STATS";
    /// `PERCPU_ARRAY<GlobalCounters>[1]`.
    pub const L4_GLOBAL_STATS: &str = "L4_GLOBAL_STATS";
}

/// A backend: a replica's address and port. IPv4 addresses are stored IPv4-mapped
/// (`::ffff:a.b.c.d`) so IPv6 fits the same key.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BackendKey {
    /// The address, network byte order, IPv4-mapped for IPv4.
    pub addr: [u8; 16],
    /// The port, host byte order.
    pub port: u16,
    /// Explicit padding, always zero (keys are compared bytewise).
    pub _pad: [u8; 2],
}

impl BackendKey {
    /// The key of IPv4 address `addr` (network byte order) and `port`.
    pub const fn v4(addr: [u8; 4], port: u16) -> Self {
        Self {
            addr: [
                0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, addr[0], addr[1], addr[2], addr[3],
            ],
            port,
            _pad: [0; 2],
        }
    }

    /// The key of `addr` in key form (IPv6, or IPv4-mapped; network byte order) and `port`.
    pub const fn new(addr: [u8; 16], port: u16) -> Self {
        Self {
            addr,
            port,
            _pad: [0; 2],
        }
    }
}

/// Where a backend is counted, and which service it belongs to (for people reading the map).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BackendSlot {
    /// Index into `BACKEND_STATS`.
    pub slot: u32,
    /// The service's name, NUL-padded (user space only; the programs never read it).
    pub service: [u8; SERVICE_NAME_LEN],
}

/// Traffic of one backend as seen on the attached interfaces. "in" is what the backend sent
/// (XDP ingress), "out" what was sent to it (TC egress).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "user", derive(serde::Serialize))]
pub struct BackendCounters {
    /// Frames from the backend.
    pub packets_in: u64,
    /// Bytes of those frames.
    pub bytes_in: u64,
    /// Frames to the backend.
    pub packets_out: u64,
    /// Bytes of those frames.
    pub bytes_out: u64,
    /// New TCP connections to the backend (SYN without ACK).
    pub connections: u64,
    /// Segments with RST, either direction.
    pub resets: u64,
}

impl Counters for BackendCounters {
    fn add(&mut self, o: &BackendCounters) {
        self.packets_in = self.packets_in.wrapping_add(o.packets_in);
        self.bytes_in = self.bytes_in.wrapping_add(o.bytes_in);
        self.packets_out = self.packets_out.wrapping_add(o.packets_out);
        self.bytes_out = self.bytes_out.wrapping_add(o.bytes_out);
        self.connections = self.connections.wrapping_add(o.connections);
        self.resets = self.resets.wrapping_add(o.resets);
    }
}

/// Counters kept one instance per CPU by the programs; user space adds the instances up.
pub trait Counters: Copy + Default {
    /// Adds another CPU's (or interval's) counts to these (wrapping, as the kernel's do).
    fn add(&mut self, other: &Self);
}

/// The total of per-CPU `values`.
pub fn sum<'a, T: Counters + 'a>(values: impl IntoIterator<Item = &'a T>) -> T {
    values.into_iter().fold(T::default(), |mut total, v| {
        total.add(v);
        total
    })
}

/// Packets and bytes seen on one interface's ingress, as counted by the XDP program (one
/// instance per CPU; user space sums them).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "user", derive(serde::Serialize))]
pub struct IfaceCounters {
    /// Frames seen.
    pub packets: u64,
    /// Bytes of those frames, from the Ethernet header on.
    pub bytes: u64,
}

impl Counters for IfaceCounters {
    fn add(&mut self, other: &IfaceCounters) {
        self.packets = self.packets.wrapping_add(other.packets);
        self.bytes = self.bytes.wrapping_add(other.bytes);
    }
}

#[cfg(feature = "user")]
mod pod {
    // Safety: `IfaceCounters` is `repr(C)`, made only of integers and has no padding, so every
    // byte pattern is a valid value.
    unsafe impl aya::Pod for super::IfaceCounters {}
    // Safety: repr(C), integers and byte arrays only, explicit padding.
    unsafe impl aya::Pod for super::BackendKey {}
    // Safety: repr(C), a u32 then a byte array; 4 + 56 bytes, no padding.
    unsafe impl aya::Pod for super::BackendSlot {}
    // Safety: repr(C), u64 fields only.
    unsafe impl aya::Pod for super::BackendCounters {}
    // Safety (all below): repr(C), integers and byte arrays only, explicit padding fields, sizes
    // checked in the tests.
    unsafe impl aya::Pod for super::fastpath::ServiceKey {}
    unsafe impl aya::Pod for super::fastpath::ServiceEntry {}
    unsafe impl aya::Pod for super::fastpath::FlowKey {}
    unsafe impl aya::Pod for super::fastpath::Flow {}
    unsafe impl aya::Pod for super::fastpath::FastPathConfig {}
    unsafe impl aya::Pod for super::fastpath::ServiceCounters {}
    unsafe impl aya::Pod for super::fastpath::GlobalCounters {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_have_no_padding() {
        assert_eq!(core::mem::size_of::<IfaceCounters>(), 16);
    }

    #[test]
    fn backend_types_have_no_implicit_padding() {
        assert_eq!(core::mem::size_of::<BackendKey>(), 20);
        assert_eq!(core::mem::size_of::<BackendSlot>(), 4 + SERVICE_NAME_LEN);
        assert_eq!(core::mem::size_of::<BackendCounters>(), 48);
    }

    #[test]
    fn fast_path_types_have_no_implicit_padding() {
        use fastpath::*;
        assert_eq!(core::mem::size_of::<ServiceKey>(), 20);
        assert_eq!(core::mem::size_of::<ServiceEntry>(), 16);
        assert_eq!(core::mem::size_of::<FlowKey>(), 40);
        assert_eq!(core::mem::size_of::<Flow>(), 56);
        assert_eq!(core::mem::size_of::<FastPathConfig>(), 4);
        assert_eq!(core::mem::size_of::<ServiceCounters>(), 72);
        assert_eq!(core::mem::size_of::<GlobalCounters>(), 32);
    }

    #[test]
    fn a_flow_reverses_to_the_key_of_its_replies() {
        use fastpath::*;
        let fwd = Flow {
            src: v4_mapped([198, 18, 1, 1]),
            dst: v4_mapped([198, 18, 2, 2]),
            sport: 61000,
            dport: 5432,
            ..Default::default()
        };
        let rev = fwd.reverse_key();
        assert_eq!(v4_of(&rev.src), [198, 18, 2, 2]);
        assert_eq!((rev.sport, rev.dport), (5432, 61000));
    }

    #[test]
    fn flow_hash_spreads_neighbouring_ports() {
        use fastpath::{flow_hash, v4_mapped};
        // 3000 consecutive client ports over 3 buckets: each near a third.
        let mut buckets = [0u32; 3];
        for port in 40000..43000u16 {
            buckets[(flow_hash(
                &v4_mapped([10, 0, 0, 1]),
                &v4_mapped([10, 0, 0, 2]),
                port,
                5432,
            ) % 3) as usize] += 1;
        }
        for b in buckets {
            assert!((900..1100).contains(&b), "{buckets:?}");
        }
        assert_eq!(
            flow_hash(&v4_mapped([1, 2, 3, 4]), &v4_mapped([5, 6, 7, 8]), 1, 2),
            flow_hash(&v4_mapped([1, 2, 3, 4]), &v4_mapped([5, 6, 7, 8]), 1, 2)
        );
    }

    #[test]
    fn flow_hash_tells_ipv6_hosts_apart_and_knows_mapped_addresses() {
        use fastpath::{flow_hash, is_v4_mapped, v4_mapped};
        let a = [0x20, 1, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
        let mut b = a;
        b[15] = 2;
        assert_ne!(flow_hash(&a, &b, 1, 2), flow_hash(&b, &a, 1, 2));
        assert!(is_v4_mapped(&v4_mapped([198, 18, 0, 1])));
        assert!(!is_v4_mapped(&a));
        assert!(!is_v4_mapped(&[0; 16]));
    }

    #[test]
    fn ipv4_keys_are_ipv4_mapped() {
        let key = BackendKey::v4([198, 18, 0, 2], 8080);
        assert_eq!(&key.addr[10..], &[0xff, 0xff, 198, 18, 0, 2]);
        assert_eq!(key.port, 8080);
    }

    #[test]
    fn add_sums_both_fields() {
        let mut a = IfaceCounters {
            packets: 1,
            bytes: 60,
        };
        a.add(&IfaceCounters {
            packets: 2,
            bytes: 100,
        });
        assert_eq!(
            a,
            IfaceCounters {
                packets: 3,
                bytes: 160
            }
        );
    }
}

//! Types shared by flowproxy's kernel programs (`proxy-ebpf`) and user space (`proxy`).
//!
//! Every type here is `#[repr(C)]` with explicit padding so that both sides agree on the byte
//! layout of map keys and values. The `user` feature adds `aya::Pod` for user space.
#![no_std]

/// Version of the map layouts below. Bump it whenever a key or value changes shape, so that a
/// restart over old pins can tell that they must be replaced rather than reused.
pub const MAP_LAYOUT_VERSION: u32 = 1;

/// Directory under the BPF filesystem where flowproxy pins its maps unless told otherwise.
pub const DEFAULT_PIN_DIR: &str = "/sys/fs/bpf/flowproxy";

/// How many interfaces the counting program can tell apart (slots of `IFACE_STATS`).
pub const MAX_INTERFACES: u32 = 64;

/// Map names, which are also the file names of their pins.
pub mod map_names {
    /// `HASH<u32 ifindex, u32 slot>`: which `IFACE_STATS` slot counts an interface's packets.
    pub const IFACE_SLOTS: &str = "IFACE_SLOTS";
    /// `PERCPU_ARRAY<IfaceCounters>` indexed by slot: ingress packets and bytes per interface.
    pub const IFACE_STATS: &str = "IFACE_STATS";
}

/// Packets and bytes seen on one interface's ingress, as counted by the XDP program (one
/// instance per CPU; user space sums them).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IfaceCounters {
    /// Frames seen.
    pub packets: u64,
    /// Bytes of those frames, from the Ethernet header on.
    pub bytes: u64,
}

impl IfaceCounters {
    /// Adds another CPU's (or interval's) counts to these.
    pub fn add(&mut self, other: &IfaceCounters) {
        self.packets = self.packets.wrapping_add(other.packets);
        self.bytes = self.bytes.wrapping_add(other.bytes);
    }
}

#[cfg(feature = "user")]
mod pod {
    // Safety: `IfaceCounters` is `repr(C)`, made only of integers and has no padding, so every
    // byte pattern is a valid value.
    unsafe impl aya::Pod for super::IfaceCounters {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_have_no_padding() {
        assert_eq!(core::mem::size_of::<IfaceCounters>(), 16);
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

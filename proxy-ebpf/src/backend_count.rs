//! Per-backend counting, shared by the XDP (ingress) and TC (egress) programs.
use proxy_common::BackendKey;

use crate::{
    maps::{BACKEND_STATS, BACKENDS},
    packet::{Packet, TCP_ACK, TCP_RST, TCP_SYN, parse_tcp},
};

/// Which way a segment travels relative to the backend.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// From the backend (seen on ingress).
    FromBackend,
    /// To the backend (seen on egress).
    ToBackend,
}

/// Counts `p` for the backend it comes from or goes to, if that backend is being counted.
// A call of its own: the parsed addresses stay out of the fast path's frames.
#[inline(never)]
pub fn count<P: Packet>(p: &P, direction: Direction) -> Option<()> {
    let tcp = parse_tcp(p)?;
    let from_backend = direction == Direction::FromBackend;
    let mut key = BackendKey::new([0; 16], tcp.port(p, from_backend)?);
    tcp.addr(p, from_backend, &mut key.addr)?;
    // Safety: user space writes whole values; a racing update only changes which slot counts.
    let slot = unsafe { BACKENDS.get(&key) }?.slot;
    let counters = BACKEND_STATS.get_ptr_mut(slot)?;
    let len = p.len() as u64;
    // Safety: the per-CPU slot belongs to this CPU alone while the program runs.
    unsafe {
        match direction {
            Direction::FromBackend => {
                (*counters).packets_in += 1;
                (*counters).bytes_in += len;
            }
            Direction::ToBackend => {
                (*counters).packets_out += 1;
                (*counters).bytes_out += len;
                if tcp.flags & (TCP_SYN | TCP_ACK) == TCP_SYN {
                    (*counters).connections += 1;
                }
            }
        }
        if tcp.flags & TCP_RST != 0 {
            (*counters).resets += 1;
        }
    }
    Some(())
}

//! What user space decodes from BPF map values and keys, for any bytes a map or a pin may
//! hold: a backend key's address (`backends::addr_of`), a slot's service name
//! (`backends::service_of`), per-CPU counters summed (`proxy_common::sum`, wrapping), and the
//! sweep's verdict on a conntrack entry pair (`sweep::verdict`). None may panic, and each
//! must agree with the plain reading of the `#[repr(C)]` layout.
#![no_main]

use std::net::{IpAddr, SocketAddr};

use flowproxy::dataplane::{
    backends::{addr_of, key_of, service_of},
    fastpath::sweep::{CLOSED_TIMEOUT, Verdict, verdict},
};
use libfuzzer_sys::fuzz_target;
use proxy_common::{
    BackendCounters, BackendKey, BackendSlot, IfaceCounters, SERVICE_NAME_LEN,
    fastpath::{Flow, GlobalCounters, ServiceCounters},
    sum,
};

/// Takes the next `size_of::<T>()` bytes as a `T`, as aya reads a map value.
fn take<T: aya::Pod>(bytes: &mut &[u8]) -> Option<T> {
    let size = std::mem::size_of::<T>();
    if bytes.len() < size {
        return None;
    }
    let (head, rest) = bytes.split_at(size);
    *bytes = rest;
    // Safety: `head` holds `size_of::<T>()` bytes, and `T: Pod` is valid for any bytes.
    Some(unsafe { std::ptr::read_unaligned(head.as_ptr().cast::<T>()) })
}

/// Up to `cpus` per-CPU values of `T`.
fn per_cpu<T: aya::Pod>(bytes: &mut &[u8], cpus: usize) -> Vec<T> {
    std::iter::from_fn(|| take(bytes)).take(cpus).collect()
}

fn backend_key(key: BackendKey) {
    let addr = addr_of(&key);
    assert_eq!(addr.port(), key.port);
    match addr.ip() {
        IpAddr::V4(v4) => {
            assert_eq!(key.addr[..12], [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff]);
            assert_eq!(key.addr[12..], v4.octets());
            let again = key_of(addr);
            assert_eq!(
                again,
                BackendKey {
                    _pad: [0; 2],
                    ..key
                }
            );
        }
        IpAddr::V6(v6) => {
            assert_eq!(v6.octets(), key.addr);
            assert!(v6.to_ipv4_mapped().is_none());
            let again = key_of(SocketAddr::new(IpAddr::V6(v6), key.port));
            assert_eq!((again.addr, again.port), (key.addr, key.port));
        }
    }
}

fn backend_slot(slot: BackendSlot) {
    let name = service_of(&slot);
    let end = slot
        .service
        .iter()
        .position(|&b| b == 0)
        .unwrap_or(SERVICE_NAME_LEN);
    assert!(!name.contains('\0'), "{name:?}");
    match std::str::from_utf8(&slot.service[..end]) {
        Ok(text) => assert_eq!(name, text),
        // Each invalid byte becomes one U+FFFD (3 bytes) at most.
        Err(_) => assert!(name.len() <= 3 * end && name.contains('\u{fffd}')),
    }
}

fn counters(bytes: &mut &[u8], cpus: usize) {
    let backends: Vec<BackendCounters> = per_cpu(bytes, cpus);
    let total = sum(&backends);
    let fold =
        |f: fn(&BackendCounters) -> u64| backends.iter().fold(0u64, |a, c| a.wrapping_add(f(c)));
    assert_eq!(total.packets_in, fold(|c| c.packets_in));
    assert_eq!(total.bytes_in, fold(|c| c.bytes_in));
    assert_eq!(total.packets_out, fold(|c| c.packets_out));
    assert_eq!(total.bytes_out, fold(|c| c.bytes_out));
    assert_eq!(total.connections, fold(|c| c.connections));
    assert_eq!(total.resets, fold(|c| c.resets));
    let ifaces: Vec<IfaceCounters> = per_cpu(bytes, cpus);
    let total = sum(&ifaces);
    assert_eq!(
        total.packets,
        ifaces.iter().fold(0u64, |a, c| a.wrapping_add(c.packets))
    );
    assert_eq!(
        total.bytes,
        ifaces.iter().fold(0u64, |a, c| a.wrapping_add(c.bytes))
    );
    let services: Vec<ServiceCounters> = per_cpu(bytes, cpus);
    let total = sum(&services);
    let flows = services
        .iter()
        .fold(0u64, |a, c| a.wrapping_add(c.fast_flows));
    assert_eq!(total.fast_flows, flows);
    let globals: Vec<GlobalCounters> = per_cpu(bytes, cpus);
    let total = sum(&globals);
    let translated = globals
        .iter()
        .fold(0u64, |a, c| a.wrapping_add(c.translated));
    assert_eq!(total.translated, translated);
}

fn flows(forward: Flow, reply: Option<Flow>, now_ns: u64) {
    let rev = forward.reverse_key();
    assert_eq!((rev.src, rev.dst), (forward.dst, forward.src));
    assert_eq!((rev.sport, rev.dport), (forward.dport, forward.sport));
    let v = verdict(&forward, reply.as_ref(), now_ns);
    let last = reply.map_or(forward.last_seen_ns, |r| {
        r.last_seen_ns.max(forward.last_seen_ns)
    });
    // A flow seen at or after `now` (clock skew between entries included) is never expired,
    // and one idle longer than every timeout always is.
    if now_ns <= last {
        assert_eq!(v, Verdict::Keep);
    }
    let longest = CLOSED_TIMEOUT.max(std::time::Duration::from_secs(u64::from(
        forward.idle_timeout_s,
    )));
    if u128::from(now_ns - now_ns.min(last)) > longest.as_nanos() {
        assert_eq!(v, Verdict::Expired);
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&cpus, mut bytes)) = data.split_first() else {
        return;
    };
    let cpus = usize::from(cpus % 8) + 1;
    if let Some(key) = take::<BackendKey>(&mut bytes) {
        backend_key(key);
    }
    if let Some(slot) = take::<BackendSlot>(&mut bytes) {
        backend_slot(slot);
    }
    if let (Some(forward), Some(now)) = (take::<Flow>(&mut bytes), take::<u64>(&mut bytes)) {
        let reply = take::<Flow>(&mut bytes);
        flows(forward, reply, now);
    }
    counters(&mut bytes, cpus);
});

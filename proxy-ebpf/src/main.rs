//! flowproxy's kernel programs. Entry points are one line that delegates to a `try_*` function;
//! maps are declared with the key and value types they hold.
//!
//! Built only for `bpfel-unknown-none` (`cargo xtask build-ebpf`); on the host this crate is an
//! empty binary so that workspace-wide commands still work.
#![cfg_attr(target_arch = "bpf", no_std)]
#![cfg_attr(target_arch = "bpf", no_main)]
// The BPF target lacks `AtomicU64::fetch_add`; the fast path's flow budget uses the intrinsic.
#![cfg_attr(target_arch = "bpf", allow(internal_features))]
#![cfg_attr(target_arch = "bpf", feature(core_intrinsics))]

#[cfg(target_arch = "bpf")]
mod backend_count;
#[cfg(target_arch = "bpf")]
mod flows;
#[cfg(target_arch = "bpf")]
mod headers;
#[cfg(target_arch = "bpf")]
mod iface_count;
#[cfg(target_arch = "bpf")]
mod maps;
#[cfg(target_arch = "bpf")]
mod packet;
#[cfg(target_arch = "bpf")]
mod tc_count;
#[cfg(target_arch = "bpf")]
mod tc_fast;
#[cfg(target_arch = "bpf")]
mod xdp_count;
#[cfg(target_arch = "bpf")]
mod xdp_fast;

#[cfg(not(target_arch = "bpf"))]
fn main() {}

#[cfg(target_arch = "bpf")]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    // The verifier rejects any program that could reach here, so this never runs.
    loop {}
}

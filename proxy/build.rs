//! Embeds the BPF object built by `cargo xtask build-ebpf` into the binary, so `flowproxy` is one
//! self-contained file (it runs `FROM scratch`). Without the object the binary still builds: it
//! then runs only with `--no-ebpf` and says how to build the object otherwise.
use std::{env, fs, path::PathBuf};

fn main() {
    println!("cargo:rerun-if-env-changed=FLOWPROXY_BPF_OBJECT");
    let object = env::var_os("FLOWPROXY_BPF_OBJECT")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let manifest = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
            manifest.join("../target/ebpf/bpfel-unknown-none/release/flowproxy-ebpf")
        });
    println!("cargo:rerun-if-changed={}", object.display());
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("set by cargo")).join("flowproxy-ebpf.o");
    let bytes = fs::read(&object).unwrap_or_default();
    if bytes.is_empty() {
        println!(
            "cargo:warning=no BPF object at {}: flowproxy will need --no-ebpf (build it with `cargo xtask build`)",
            object.display()
        );
    }
    fs::write(&out, bytes).expect("OUT_DIR is writable");
}

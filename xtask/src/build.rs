//! Building the BPF object and the workspace, running flowproxy, and running the tests.
use std::{path::PathBuf, process::Command};

use anyhow::bail;

use crate::shell::{cargo, is_root, run, workspace_root};

/// Where `build_ebpf` leaves the object (proxy/build.rs embeds it from here).
pub fn ebpf_object() -> PathBuf {
    workspace_root().join("target/ebpf/bpfel-unknown-none/release/flowproxy-ebpf")
}

/// The debug flowproxy binary.
pub fn flowproxy_binary() -> PathBuf {
    workspace_root().join("target/debug/flowproxy")
}

/// The debug demo backend (the article's go-demo).
pub fn demo_backend_binary() -> PathBuf {
    workspace_root().join("target/debug/flowproxy-demo")
}

/// Builds the kernel programs with nightly for bpfel-unknown-none, linked by bpf-linker.
pub fn build_ebpf() -> anyhow::Result<()> {
    let mut cmd = Command::new("rustup");
    cmd.current_dir(workspace_root())
        .args([
            "run",
            "nightly",
            "cargo",
            "build",
            "--package",
            "flowproxy-ebpf",
        ])
        .args([
            "--target",
            "bpfel-unknown-none",
            "-Z",
            "build-std=core",
            "--release",
        ])
        .args(["--target-dir", "target/ebpf"]);
    // The outer (stable) cargo's settings must not leak into the nightly build.
    for var in [
        "RUSTUP_TOOLCHAIN",
        "RUSTC",
        "RUSTC_WRAPPER",
        "RUSTFLAGS",
        "CARGO",
    ] {
        cmd.env_remove(var);
    }
    run(&mut cmd)?;
    eprintln!("build-ebpf: {}", ebpf_object().display());
    Ok(())
}

/// Builds the BPF object, then the workspace with it embedded in flowproxy.
pub fn build_all(release: bool) -> anyhow::Result<()> {
    build_ebpf()?;
    let mut cmd = cargo();
    cmd.args([
        "build",
        "--workspace",
        "--exclude",
        "flowproxy-ebpf",
        "--bins",
    ]);
    if release {
        cmd.arg("--release");
    }
    run(&mut cmd)
}

/// Runs the freshly built flowproxy with `args`.
pub fn run_flowproxy(args: &[String]) -> anyhow::Result<()> {
    run(Command::new(flowproxy_binary()).args(args))
}

/// Formats and lints the code, then runs every test of the workspace (integration tests need
/// root: they create network namespaces and load BPF programs).
pub fn test(extra: &[String]) -> anyhow::Result<()> {
    if !is_root() {
        bail!(
            "the integration tests create network namespaces and load BPF programs: run as root (sudo -E cargo xtask test)"
        );
    }
    build_all(false)?;
    run(cargo().args(["fmt", "--all", "--", "--check"]))?;
    run(cargo().args([
        "clippy",
        "--workspace",
        "--exclude",
        "flowproxy-ebpf",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;
    run(cargo()
        .args(["test", "--workspace", "--exclude", "flowproxy-ebpf"])
        .args(extra)
        .env("FLOWPROXY_BIN", flowproxy_binary())
        .env("FLOWPROXY_DEMO_BIN", demo_backend_binary()))
}

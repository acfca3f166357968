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
    let mut cmd = cargo();
    cmd.args([
        "test",
        "--workspace",
        "--exclude",
        "flowproxy-ebpf",
        "--no-fail-fast",
    ])
    .args(extra)
    .env("FLOWPROXY_BIN", flowproxy_binary())
    .env("FLOWPROXY_DEMO_BIN", demo_backend_binary());
    let mut totals = run_counting_tests(&mut cmd)?;
    swarm_checks(extra, &mut totals);
    fuzz_checks(extra, &mut totals);
    // One closing line for the whole workspace: the last `test result:` line cargo prints is
    // a doc-test run, which says nothing about the rest.
    println!("tests: {} passed, {} failed", totals.passed, totals.failed);
    if totals.failed > 0 || totals.passed == 0 {
        bail!("{} tests failed, {} passed", totals.failed, totals.passed);
    }
    Ok(())
}

/// Adds the Swarm test's checks (`cargo xtask swarm-test`) to the totals. A filter selects
/// `cargo test` tests only, so the Swarm test runs only without one (and says so otherwise).
fn swarm_checks(extra: &[String], totals: &mut Totals) {
    if !extra.is_empty() {
        println!("swarm-test: not run (a test filter was given); run `cargo xtask swarm-test`");
        return;
    }
    match crate::swarm::swarm_test(crate::swarm::Driver::Local, crate::swarm::Scenario::All) {
        Ok(report) => {
            println!("{}", report.summary());
            totals.passed += report.passed();
            totals.failed += report.failed();
        }
        Err(e) => {
            println!("swarm-test: FAILED to run: {e:#}");
            totals.failed += 1;
        }
    }
}

/// Adds the fuzz targets (each run for [`crate::fuzz::TEST_SECONDS`], one test each) to the
/// totals; like the Swarm test, only without a test filter.
fn fuzz_checks(extra: &[String], totals: &mut Totals) {
    if !extra.is_empty() {
        println!("fuzz: not run (a test filter was given); run `cargo xtask fuzz`");
        return;
    }
    let (passed, failed) = crate::fuzz::test_checks();
    println!("fuzz: {passed} targets passed, {failed} failed");
    totals.passed += passed;
    totals.failed += failed;
}

/// Passed and failed tests summed over every `test result:` line.
#[derive(Debug, Default, PartialEq, Eq)]
struct Totals {
    passed: u64,
    failed: u64,
}

/// Runs `cargo test`, echoing its output, and sums its results.
fn run_counting_tests(cmd: &mut Command) -> anyhow::Result<Totals> {
    use std::io::{BufRead as _, BufReader};
    eprintln!("+ cargo test (workspace)");
    let mut child = cmd.stdout(std::process::Stdio::piped()).spawn()?;
    let stdout = child.stdout.take().expect("stdout is piped");
    let mut totals = Totals::default();
    for line in BufReader::new(stdout).lines() {
        let line = line?;
        println!("{line}");
        add_result_line(&mut totals, &line);
    }
    let status = child.wait()?;
    if !status.success() && totals.failed == 0 {
        bail!("cargo test failed ({status}) before reporting any failed test");
    }
    Ok(totals)
}

fn add_result_line(totals: &mut Totals, line: &str) {
    let Some(rest) = line.strip_prefix("test result: ") else {
        return;
    };
    let count = |word: &str| -> u64 {
        rest.split(';')
            .find_map(|part| part.trim().strip_suffix(word))
            .and_then(|n| n.trim().rsplit(' ').next()?.parse().ok())
            .unwrap_or(0)
    };
    totals.passed += count("passed");
    totals.failed += count("failed");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn result_lines_are_summed() {
        let mut t = Totals::default();
        add_result_line(
            &mut t,
            "test result: ok. 74 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.02s",
        );
        add_result_line(
            &mut t,
            "test result: FAILED. 5 passed; 3 failed; 0 ignored; 0 measured; 0 filtered out",
        );
        add_result_line(&mut t, "running 3 tests");
        assert_eq!(
            t,
            Totals {
                passed: 79,
                failed: 3
            }
        );
    }
}

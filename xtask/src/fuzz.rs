//! `cargo xtask fuzz`: the cargo-fuzz targets in `fuzz/` (nightly, libFuzzer), run one after
//! the other. `cargo xtask test` runs each briefly and counts it as one test.
//!
//! Seeds (small hand-made inputs) are committed in `fuzz/corpus/<target>/`; what libFuzzer
//! finds on top of them goes to `fuzz/target/corpus/<target>/` (ignored by git), so the
//! committed corpus stays reviewable while local runs keep their progress. A crash leaves its
//! input in `fuzz/artifacts/<target>/`.
use std::{
    collections::BTreeSet,
    fs,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use anyhow::{Context as _, bail};

use crate::shell::{run, workspace_root};

/// Seconds each target runs in `cargo xtask test`: five targets stay under two minutes.
pub const TEST_SECONDS: u64 = 20;

/// What one target's run came to.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// It ran its time without a crash; libFuzzer's closing line, if it printed one.
    Passed(Option<String>),
    /// It crashed (or failed to run); the inputs it saved, if any.
    Failed(Vec<PathBuf>),
}

fn fuzz_dir() -> PathBuf {
    workspace_root().join("fuzz")
}

/// The targets: one file each in `fuzz/fuzz_targets/`, by name.
pub fn targets() -> anyhow::Result<Vec<String>> {
    let dir = fuzz_dir().join("fuzz_targets");
    let mut names: Vec<String> = fs::read_dir(&dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            name.strip_suffix(".rs").map(str::to_owned)
        })
        .collect();
    names.sort();
    Ok(names)
}

/// `cargo +nightly fuzz ...` in `fuzz/`, with the outer (stable) cargo's settings removed.
///
/// The targets need no BPF object: flowproxy's build script is pointed at an empty file that
/// always exists, so the build neither waits for `build-ebpf` nor reruns because the object
/// is missing.
fn cargo_fuzz() -> Command {
    let no_object = fuzz_dir().join("target/no-bpf-object");
    if !no_object.exists() {
        let _ = fs::create_dir_all(fuzz_dir().join("target"));
        let _ = fs::write(&no_object, b"");
    }
    let mut cmd = Command::new("rustup");
    cmd.env("FLOWPROXY_BPF_OBJECT", &no_object);
    cmd.current_dir(fuzz_dir())
        .args(["run", "nightly", "cargo", "fuzz"]);
    for var in [
        "RUSTUP_TOOLCHAIN",
        "RUSTC",
        "RUSTC_WRAPPER",
        "RUSTFLAGS",
        "CARGO",
        "CARGO_TARGET_DIR",
    ] {
        cmd.env_remove(var);
    }
    cmd
}

/// Builds every target (one build, so the runs that follow start at once).
pub fn build() -> anyhow::Result<()> {
    run(cargo_fuzz().args(["build", "--sanitizer", "none"]))
}

/// Runs `target` for `seconds`, alone (one process, one job), and says how it went.
pub fn run_target(target: &str, seconds: u64) -> anyhow::Result<Outcome> {
    let dir = fuzz_dir();
    let seeds = dir.join("corpus").join(target);
    let grown = dir.join("target/corpus").join(target);
    let artifacts = dir.join("artifacts").join(target);
    let log = dir.join("target").join(format!("{target}.log"));
    for d in [&seeds, &grown, &artifacts] {
        fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
    }
    let before = files_in(&artifacts);
    let mut cmd = cargo_fuzz();
    cmd.args(["run", "--sanitizer", "none", "--jobs", "1", target])
        .arg(&grown)
        .arg(&seeds)
        .arg("--")
        .arg(format!("-max_total_time={seconds}"))
        .args(["-rss_limit_mb=2048", "-timeout=10", "-print_final_stats=1"])
        .stdout(Stdio::null())
        .stderr(fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?);
    eprintln!(
        "+ cargo fuzz run {target} ({seconds} s, log in {})",
        log.display()
    );
    let status = cmd
        .status()
        .context("could not start `cargo fuzz`; `cargo xtask setup` installs it")?;
    let output = fs::read_to_string(&log).unwrap_or_default();
    let new: Vec<PathBuf> = files_in(&artifacts).difference(&before).cloned().collect();
    let outcome = outcome(status.success(), &output, new);
    if let Outcome::Failed(_) = outcome {
        let lines: Vec<&str> = output.lines().collect();
        for line in &lines[lines.len().saturating_sub(40)..] {
            eprintln!("  {line}");
        }
    }
    Ok(outcome)
}

/// Passed when libFuzzer exited cleanly and saved nothing; otherwise the saved inputs, new in
/// the artifacts directory or named in the log.
fn outcome(success: bool, log: &str, mut artifacts: Vec<PathBuf>) -> Outcome {
    for line in log.lines() {
        if let Some((_, path)) = line.split_once("Test unit written to ") {
            let path = PathBuf::from(path.trim());
            let path = if path.is_relative() {
                fuzz_dir().join(path)
            } else {
                path
            };
            if !artifacts.contains(&path) {
                artifacts.push(path);
            }
        }
    }
    if success && artifacts.is_empty() {
        let done = log
            .lines()
            .rev()
            .find(|l| l.starts_with("Done "))
            .map(str::to_owned);
        Outcome::Passed(done)
    } else {
        Outcome::Failed(artifacts)
    }
}

fn files_in(dir: &Path) -> BTreeSet<PathBuf> {
    fs::read_dir(dir)
        .map(|entries| entries.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default()
}

/// Prints one line for `target`'s outcome; true when it passed.
fn report(target: &str, outcome: &Outcome) -> bool {
    match outcome {
        Outcome::Passed(done) => {
            println!(
                "fuzz {target}: ok ({})",
                done.as_deref().unwrap_or("no crash")
            );
            true
        }
        Outcome::Failed(inputs) if inputs.is_empty() => {
            println!("fuzz {target}: FAILED (no input saved; see the log above)");
            false
        }
        Outcome::Failed(inputs) => {
            for input in inputs {
                println!(
                    "fuzz {target}: FAILED, reproduce with: cargo +nightly fuzz run {target} {}",
                    input.display()
                );
            }
            false
        }
    }
}

/// `cargo xtask fuzz`: builds, then runs each of `only` (every target if empty) for `seconds`.
pub fn fuzz(seconds: u64, only: &[String]) -> anyhow::Result<()> {
    let all = targets()?;
    if let Some(unknown) = only.iter().find(|t| !all.contains(t)) {
        bail!(
            "no fuzz target {unknown}; the targets are {}",
            all.join(", ")
        );
    }
    build()?;
    let mut failed = Vec::new();
    for target in all.iter().filter(|t| only.is_empty() || only.contains(t)) {
        if !report(target, &run_target(target, seconds)?) {
            failed.push(target.as_str());
        }
    }
    if !failed.is_empty() {
        bail!("fuzz targets crashed: {}", failed.join(", "));
    }
    Ok(())
}

/// For `cargo xtask test`: each target for [`TEST_SECONDS`], as (passed, failed) counts of
/// one test per target. A build that fails counts every target as failed.
pub fn test_checks() -> (u64, u64) {
    let targets = match targets() {
        Ok(t) => t,
        Err(e) => {
            println!("fuzz: FAILED to list the targets: {e:#}");
            return (0, 1);
        }
    };
    if let Err(e) = build() {
        println!("fuzz: FAILED to build: {e:#}");
        return (0, targets.len().max(1) as u64);
    }
    let (mut passed, mut failed) = (0, 0);
    for target in &targets {
        let ok = match run_target(target, TEST_SECONDS) {
            Ok(outcome) => report(target, &outcome),
            Err(e) => {
                println!("fuzz {target}: FAILED to run: {e:#}");
                false
            }
        };
        if ok {
            passed += 1;
        } else {
            failed += 1;
        }
    }
    (passed, failed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clean_run_passes_with_its_closing_line() {
        let log = "#1024\tpulse  cov: 10\nDone 5000 runs in 20 second(s)\nstat::number_of_executed_units: 5000\n";
        assert_eq!(
            outcome(true, log, vec![]),
            Outcome::Passed(Some("Done 5000 runs in 20 second(s)".into()))
        );
    }

    #[test]
    fn a_crash_fails_with_the_saved_input() {
        let log = "thread '<unnamed>' panicked at fuzz_targets/headers.rs:10:5\n\
                   ==1== ERROR: libFuzzer: deadly signal\n\
                   artifact_prefix='/w/fuzz/artifacts/headers/'; Test unit written to /w/fuzz/artifacts/headers/crash-ab12\n";
        assert_eq!(
            outcome(false, log, vec![]),
            Outcome::Failed(vec![PathBuf::from("/w/fuzz/artifacts/headers/crash-ab12")])
        );
        // Found by the directory listing as well: named once.
        let listed = vec![PathBuf::from("/w/fuzz/artifacts/headers/crash-ab12")];
        assert_eq!(outcome(false, log, listed.clone()), Outcome::Failed(listed));
    }

    #[test]
    fn a_run_that_fails_without_input_or_leaves_one_fails() {
        assert_eq!(
            outcome(false, "error: could not compile", vec![]),
            Outcome::Failed(vec![])
        );
        let left = vec![PathBuf::from("/w/fuzz/artifacts/x/oom-1")];
        assert_eq!(outcome(true, "", left.clone()), Outcome::Failed(left));
    }

    #[test]
    fn every_target_file_is_listed() {
        let targets = targets().unwrap();
        for t in [
            "dfp_params",
            "headers",
            "map_decoders",
            "route_lookup",
            "state_load",
        ] {
            assert!(targets.iter().any(|x| x == t), "{t} in {targets:?}");
        }
    }
}

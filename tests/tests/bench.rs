//! `cargo xtask bench --quick` works end to end: every scenario runs briefly and the results
//! parse. Numbers from a quick run say nothing about performance, so nothing here asserts a
//! timing; it only checks that each scenario produced numbers, or says plainly that the feature
//! it measures is not implemented yet.
use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, bail, ensure};
use serde_json::Value;

/// The debug xtask binary, built by `cargo xtask ...` (which is `cargo run -p xtask`).
fn xtask() -> anyhow::Result<PathBuf> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/debug/xtask");
    if !path.is_file() {
        bail!(
            "no xtask binary at {}: build it with `cargo build -p xtask` (any `cargo xtask` command does)",
            path.display()
        );
    }
    Ok(path)
}

#[test]
fn the_quick_benchmark_runs_every_scenario_and_its_results_parse() -> anyhow::Result<()> {
    let out = std::env::temp_dir().join(format!("fp-{}-bench-quick", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let status = Command::new(xtask()?)
        .args(["bench", "--quick", "--out"])
        .arg(&out)
        .status()
        .context("running xtask bench --quick")?;
    let checked = check(&out, status.success());
    let _ = std::fs::remove_dir_all(&out);
    checked
}

fn check(out: &Path, succeeded: bool) -> anyhow::Result<()> {
    ensure!(
        succeeded,
        "xtask bench --quick failed (its output is above)"
    );
    for file in ["results.md", "results.png"] {
        let len = std::fs::metadata(out.join(file))
            .with_context(|| format!("{file} was not written"))?
            .len();
        ensure!(len > 0, "{file} is empty");
    }
    let text = std::fs::read_to_string(out.join("results.json"))?;
    let results: Value = serde_json::from_str(&text).context("results.json does not parse")?;
    ensure!(results["mode"] == "quick", "mode: {}", results["mode"]);
    let scenarios = results["scenarios"]
        .as_array()
        .context("no scenarios array")?;
    let ids: Vec<u64> = scenarios.iter().filter_map(|s| s["id"].as_u64()).collect();
    ensure!(
        ids == (1..=9).collect::<Vec<_>>(),
        "scenarios {ids:?}, not 1 to 9"
    );
    for scenario in scenarios {
        check_scenario(scenario)
            .with_context(|| format!("scenario {}: {}", scenario["id"], scenario["title"]))?;
    }
    let targets = results["targets"].as_array().context("no targets array")?;
    ensure!(!targets.is_empty(), "no target was checked");
    Ok(())
}

/// Every row holds numbers, or is marked not implemented with the issue that will add it.
fn check_scenario(scenario: &Value) -> anyhow::Result<()> {
    let rows = scenario["rows"].as_array().context("no rows")?;
    ensure!(rows.len() >= 2, "{} rows: nothing is compared", rows.len());
    let mut measured = 0;
    for row in rows {
        let name = &row["contender"];
        match row["status"].as_str() {
            Some("measured") => {
                let metrics = row["metrics"].as_array().context("no metrics")?;
                ensure!(!metrics.is_empty(), "{name} has no metrics");
                for m in metrics {
                    let median = m["median"].as_f64();
                    ensure!(
                        median.is_some_and(f64::is_finite),
                        "{name} {}: median {}",
                        m["key"],
                        m["median"]
                    );
                    let samples = m["samples"].as_array().context("no samples")?;
                    ensure!(
                        !samples.is_empty() && samples.iter().all(|s| s.as_f64().is_some()),
                        "{name} {}: samples {samples:?}",
                        m["key"]
                    );
                }
                measured += 1;
            }
            Some("not_implemented") => {
                let note = row["note"].as_str().unwrap_or_default();
                ensure!(
                    note.contains("not implemented (issue 5)"),
                    "{name} is not implemented without saying why: {note:?}"
                );
            }
            other => bail!("{name} has status {other:?}"),
        }
    }
    ensure!(measured >= 2, "only {measured} measured rows");
    Ok(())
}

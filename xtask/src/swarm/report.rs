//! The Swarm test's checks: each one named as a user would describe it, printed as it ends,
//! and counted into `cargo xtask test`'s total.
use std::fmt::Write as _;

/// Results so far.
#[derive(Debug, Default)]
pub struct Report {
    results: Vec<(String, Option<String>)>,
}

impl Report {
    /// Runs one check and records whether it passed; returns that.
    pub fn check(&mut self, name: &str, check: impl FnOnce() -> anyhow::Result<()>) -> bool {
        eprintln!("swarm-test: checking: {name}");
        let result = check();
        self.record(name, result)
    }

    /// Records an outcome computed elsewhere (a step that failed before its checks could run).
    pub fn record(&mut self, name: &str, result: anyhow::Result<()>) -> bool {
        let error = result.err().map(|e| format!("{e:#}"));
        match &error {
            None => println!("swarm-test: ok     {name}"),
            Some(e) => println!("swarm-test: FAILED {name}: {e}"),
        }
        let passed = error.is_none();
        self.results.push((name.to_owned(), error));
        passed
    }

    /// How many checks passed.
    pub fn passed(&self) -> u64 {
        self.results.iter().filter(|(_, e)| e.is_none()).count() as u64
    }

    /// How many checks failed.
    pub fn failed(&self) -> u64 {
        self.results.len() as u64 - self.passed()
    }

    /// Every check with its outcome, failures with their reason.
    pub fn summary(&self) -> String {
        let mut out = String::new();
        for (name, error) in &self.results {
            match error {
                None => writeln!(out, "  ok     {name}"),
                Some(e) => writeln!(out, "  FAILED {name}: {e}"),
            }
            .expect("writing to a String");
        }
        write!(
            out,
            "swarm-test: {} passed, {} failed",
            self.passed(),
            self.failed()
        )
        .expect("writing to a String");
        out
    }
}

//! Running the system tools the harness drives, with errors that show what they printed.
use std::process::Command;

use anyhow::{Context as _, bail};

/// Runs a command and returns its stdout, failing with its stderr if it does not succeed.
pub fn run(program: &str, args: &[&str]) -> anyhow::Result<String> {
    run_cmd(Command::new(program).args(args))
}

/// Runs a prepared command and returns its stdout, failing with its stderr if it does not succeed.
pub fn run_cmd(cmd: &mut Command) -> anyhow::Result<String> {
    let out = cmd
        .output()
        .with_context(|| format!("could not start {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs a command for its effect on cleanup paths, where a failure has nothing left to undo.
pub fn run_quietly(program: &str, args: &[&str]) {
    let _ = Command::new(program).args(args).output();
}

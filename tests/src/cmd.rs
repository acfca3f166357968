//! Running the system tools the harness drives, with errors that show what they printed.
use std::{os::unix::process::CommandExt as _, process::Command};

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

/// Makes the command's process get SIGKILL when the thread that spawns it exits, so that a test
/// process killed outright (not unwinding through drops) leaves no server behind. Spawn such
/// processes from the thread that owns them.
pub fn die_with_parent(cmd: &mut Command) -> &mut Command {
    // Safety: prctl is async-signal-safe, and the closure touches nothing else after fork.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        })
    }
}

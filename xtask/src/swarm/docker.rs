//! The docker CLI aimed at one daemon, with errors that show what it printed.
use std::{
    ffi::OsString,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use anyhow::{Context as _, bail};

/// The Docker client, from docker.io when installed (the version the daemons run), else the
/// first `docker` on PATH.
pub fn client() -> PathBuf {
    let debian = Path::new("/usr/bin/docker");
    if debian.exists() {
        debian.to_path_buf()
    } else {
        PathBuf::from("docker")
    }
}

/// How to reach one daemon: a `-H` address, or the caller's environment (`DOCKER_HOST`...),
/// or a docker-machine's TLS settings.
#[derive(Debug, Clone)]
pub struct Docker {
    args: Vec<OsString>,
}

impl Docker {
    /// The daemon listening on `socket`.
    pub fn unix(socket: &Path) -> Self {
        let mut host = OsString::from("unix://");
        host.push(socket);
        Self {
            args: vec!["-H".into(), host],
        }
    }

    /// The daemon the environment points at (`DOCKER_HOST`, or the default socket).
    pub fn from_env() -> Self {
        Self { args: Vec::new() }
    }

    /// A daemon reached with these global options (`docker-machine config NODE`).
    pub fn with_args(args: Vec<OsString>) -> Self {
        Self { args }
    }

    /// The global options that aim the CLI at this daemon (`-H ...`, TLS settings).
    pub fn global_args(&self) -> &[OsString] {
        &self.args
    }

    /// A `docker` command with this daemon's options; add the subcommand.
    pub fn command(&self) -> Command {
        let mut cmd = Command::new(client());
        cmd.args(&self.args);
        cmd
    }

    /// Runs `docker ARGS`, echoing it, and returns stdout; a failure carries stderr.
    pub fn capture(&self, args: &[&str]) -> anyhow::Result<String> {
        let mut cmd = self.command();
        cmd.args(args);
        capture(&mut cmd)
    }

    /// Like `capture`, without echoing: for polls that run many times.
    pub fn quiet(&self, args: &[&str]) -> anyhow::Result<String> {
        let mut cmd = self.command();
        cmd.args(args);
        quiet(&mut cmd)
    }

    /// `docker save IMAGES | docker(other) load`: images reach a daemon without a registry.
    pub fn copy_images(&self, other: &Docker, images: &[&str]) -> anyhow::Result<()> {
        eprintln!("+ docker save {} | docker load", images.join(" "));
        let mut save = self.command();
        let mut saver = save
            .arg("save")
            .args(images)
            .stdout(Stdio::piped())
            .spawn()
            .context("starting docker save")?;
        let mut load = other.command();
        let stdin = saver.stdout.take().expect("stdout is piped");
        let loaded = load.arg("load").arg("--quiet").stdin(stdin).output();
        let saved = saver.wait()?;
        let loaded = loaded.context("starting docker load")?;
        if !saved.success() || !loaded.status.success() {
            bail!(
                "docker save | docker load failed ({saved}, {}): {}",
                loaded.status,
                String::from_utf8_lossy(&loaded.stderr).trim()
            );
        }
        Ok(())
    }
}

/// Runs `cmd`, echoing it, and returns its stdout; a failure carries its stderr.
pub fn capture(cmd: &mut Command) -> anyhow::Result<String> {
    eprintln!("+ {}", display(cmd));
    quiet(cmd)
}

/// Runs `cmd` and returns its stdout; a failure carries its stderr.
pub fn quiet(cmd: &mut Command) -> anyhow::Result<String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("could not start `{}`", display(cmd)))?;
    if !out.status.success() {
        bail!(
            "`{}` failed ({}): {}",
            display(cmd),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn display(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|s| s.to_string_lossy())
        .collect::<Vec<_>>()
        .join(" ")
}

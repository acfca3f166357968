//! One dockerd per node, started inside the node's network namespace with its own data root,
//! exec root, socket, cgroup parent and containerd namespace, and addresses inside
//! 198.18.0.0/15: nothing it does reaches the host's own Docker, if there is one.
use std::{
    fs,
    os::unix::process::CommandExt as _,
    path::PathBuf,
    process::{Child, Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};

use super::{
    cleanup::{self, DATA_ROOT, RUN_ROOT},
    docker::Docker,
    lab::NodeNet,
};
use crate::shell::workspace_root;

/// How long a daemon may take to answer after it starts, and to stop after SIGTERM.
const START_TIMEOUT: Duration = Duration::from_secs(60);
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// A running dockerd; dropping it stops it and removes everything it made.
#[derive(Debug)]
pub struct Daemon {
    /// `node-N`.
    pub name: String,
    /// The CLI aimed at this daemon.
    pub docker: Docker,
    child: Child,
    data_root: PathBuf,
    exec_root: PathBuf,
    cgroup_parent: String,
    /// Socket, pid file and configuration, removed on stop.
    files: Vec<PathBuf>,
}

impl Daemon {
    /// Starts dockerd in `node`'s namespace and waits until it answers.
    pub fn start(node: &NodeNet) -> anyhow::Result<Self> {
        let id = format!("node{}", node.index);
        let run = PathBuf::from(RUN_ROOT);
        let data_root = PathBuf::from(DATA_ROOT).join(&id);
        let exec_root = run.join(&id);
        let socket = run.join(format!("{id}.sock"));
        let config = run.join(format!("{id}.json"));
        let pidfile = run.join(format!("{id}.pid"));
        fs::create_dir_all(&exec_root)?;
        fs::create_dir_all(&data_root)?;
        // An empty configuration of our own: the host's /etc/docker/daemon.json must not apply.
        fs::write(&config, "{}\n")?;
        let logs = workspace_root().join("target/swarm-test");
        fs::create_dir_all(&logs)?;
        let log_path = logs.join(format!("dockerd-{id}.log"));
        let log = fs::File::create(&log_path)?;
        let cgroup_parent = format!("{}-{id}", super::lab::PREFIX);
        let i = u32::from(node.index);
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--net={}", node.netns_path().display()))
            .arg("dockerd")
            .arg("--config-file")
            .arg(&config)
            .arg("--data-root")
            .arg(&data_root)
            .arg("--exec-root")
            .arg(&exec_root)
            .arg("--pidfile")
            .arg(&pidfile)
            .arg("-H")
            .arg(format!("unix://{}", socket.display()))
            // docker0 and the local pool (docker_gwbridge) inside the test range, per node.
            .arg(format!("--bip=198.19.{}.1/24", 241 + i))
            .arg(format!(
                "--default-address-pool=base=198.19.{}.0/20,size=24",
                128 + 16 * i
            ))
            .arg(format!("--containerd-namespace={cgroup_parent}"))
            .arg(format!(
                "--containerd-plugins-namespace={cgroup_parent}-plugins"
            ))
            .arg(format!("--cgroup-parent={cgroup_parent}"))
            // Tasks use the loaded images instead of trying a registry first.
            .env("DOCKER_SERVICE_PREFER_OFFLINE_IMAGE", "1")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        // Safety: prctl is async-signal-safe. nsenter execs dockerd in the same process, so a
        // killed xtask still stops its daemon (which stops its containers).
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        eprintln!(
            "+ nsenter --net={} dockerd ... (log: {})",
            node.netns_path().display(),
            log_path.display()
        );
        let child = cmd
            .spawn()
            .context("starting dockerd (is docker.io installed?)")?;
        let mut daemon = Self {
            name: format!("node-{}", node.index),
            docker: Docker::unix(&socket),
            child,
            data_root,
            exec_root,
            cgroup_parent,
            files: vec![socket, pidfile, config],
        };
        daemon.wait_ready(&log_path)?;
        Ok(daemon)
    }

    /// The daemon's API socket on the host (bind-mounted into the proxy for label discovery).
    pub fn socket(&self) -> &std::path::Path {
        &self.files[0]
    }

    fn wait_ready(&mut self, log: &std::path::Path) -> anyhow::Result<()> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if self.docker.quiet(&["version"]).is_ok() {
                return Ok(());
            }
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "dockerd for {} exited ({status}); its log {} ends with:\n{}",
                    self.name,
                    log.display(),
                    tail(log)
                );
            }
            if Instant::now() > deadline {
                bail!(
                    "dockerd for {} did not answer within {START_TIMEOUT:?}; see {}",
                    self.name,
                    log.display()
                );
            }
            thread::sleep(Duration::from_millis(100));
        }
    }

    fn stop(&mut self) {
        // Containers first, so dockerd has nothing to wait for; then the daemon itself.
        let _ = self.docker.quiet(&["swarm", "leave", "--force"]);
        if let Ok(ids) = self.docker.quiet(&["ps", "-aq"]) {
            let ids: Vec<&str> = ids.split_whitespace().collect();
            if !ids.is_empty() {
                let mut args = vec!["rm", "-f"];
                args.extend(ids);
                let _ = self.docker.quiet(&args);
            }
        }
        // Safety: kill has no memory effects; the child is ours and not yet reaped.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + STOP_TIMEOUT;
        while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        // Whatever survived: containerd, shims, container processes; then mounts and files.
        let exec_root = self.exec_root.to_string_lossy().into_owned();
        let cgroup = format!("/{}/", self.cgroup_parent);
        cleanup::kill_where(|cmdline, cgroups| {
            cmdline.contains(&exec_root) || cgroups.contains(&cgroup)
        });
        cleanup::unmount_under(&self.data_root);
        cleanup::unmount_under(&self.exec_root);
        cleanup::remove_cgroups(&self.cgroup_parent);
        let _ = fs::remove_dir_all(&self.data_root);
        let _ = fs::remove_dir_all(&self.exec_root);
        for file in &self.files {
            let _ = fs::remove_file(file);
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop();
    }
}

fn tail(path: &std::path::Path) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}

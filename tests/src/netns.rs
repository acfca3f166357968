//! Hosts made of network namespaces, joined to the root namespace (where flowproxy runs) by
//! veth pairs with addresses from 198.18.0.0/15.
use std::{fs::File, net::Ipv4Addr, os::fd::AsRawFd, path::Path, process::Command, sync::Once};

use anyhow::{Context as _, bail};

use crate::{
    cmd::{run, run_cmd, run_quietly},
    names::{self, Ids, Slots},
};

/// A host: one network namespace, deleted on drop with everything inside it.
#[derive(Debug)]
pub struct Host {
    /// The namespace's name (`ip netns list`).
    pub name: String,
    label: String,
}

/// A veth pair between the root namespace and a host, with static neighbour entries so that no
/// ARP or IPv6 chatter adds packets the tests did not send.
#[derive(Debug)]
pub struct Link {
    /// The root namespace's end, where flowproxy attaches.
    pub root_if: String,
    /// The host's end.
    pub host_if: String,
    /// Address of the root end.
    pub root_addr: Ipv4Addr,
    /// Address of the host end.
    pub host_addr: Ipv4Addr,
    ids: Ids,
}

impl Host {
    /// Creates a namespace; `label` only names the host in errors.
    pub fn new(label: &str) -> anyhow::Result<Self> {
        remove_leftovers();
        let name = Ids::next().netns();
        run("ip", &["netns", "add", &name]).with_context(|| format!("creating host {label}"))?;
        let host = Self {
            name,
            label: label.to_owned(),
        };
        run("ip", &["-n", &host.name, "link", "set", "lo", "up"])?;
        Ok(host)
    }

    /// A command that runs inside the host.
    pub fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name, program]);
        cmd
    }

    /// Runs a program inside the host and returns its stdout.
    pub fn run(&self, program: &str, args: &[&str]) -> anyhow::Result<String> {
        run_cmd(self.command(program).args(args)).with_context(|| format!("on host {}", self.label))
    }

    /// Runs `f` on a thread that lives in the host's namespace, so sockets it opens are the host's.
    pub fn enter<T: Send>(&self, f: impl FnOnce() -> T + Send) -> anyhow::Result<T> {
        in_netns(&self.name, f).with_context(|| format!("in host {}", self.label))
    }

    /// Joins this host to the root namespace with a fresh veth pair.
    pub fn link_to_root(&self) -> anyhow::Result<Link> {
        let ids = Ids::next();
        let (root_addr, host_addr) = Slots::take(1).pair();
        let (root_if, host_if) = (ids.veth('r'), ids.veth('h'));
        run(
            "ip",
            &[
                "link", "add", &root_if, "type", "veth", "peer", "name", &host_if, "netns",
                &self.name,
            ],
        )?;
        let link = Link {
            root_if,
            host_if,
            root_addr,
            host_addr,
            ids,
        };
        link.configure(self)?;
        Ok(link)
    }
}

/// Runs `f` on a thread that lives in the network namespace `name` (under /run/netns).
pub fn in_netns<T: Send>(name: &str, f: impl FnOnce() -> T + Send) -> anyhow::Result<T> {
    let ns = File::open(Path::new("/run/netns").join(name))
        .with_context(|| format!("opening the namespace {name}"))?;
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                // Safety: setns only changes this (scoped, short-lived) thread's namespace.
                if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                    bail!("setns: {}", std::io::Error::last_os_error());
                }
                Ok(f())
            })
            .join()
            .map_err(|_| anyhow::anyhow!("the thread in namespace {name} panicked"))?
    })
}

impl Link {
    fn configure(&self, host: &Host) -> anyhow::Result<()> {
        let ns = host.name.as_str();
        std::fs::write(
            format!("/proc/sys/net/ipv6/conf/{}/disable_ipv6", self.root_if),
            "1",
        )?;
        host.run(
            "sysctl",
            &[
                "-qw",
                &format!("net.ipv6.conf.{}.disable_ipv6=1", self.host_if),
            ],
        )?;
        run(
            "ip",
            &[
                "addr",
                "add",
                &format!("{}/30", self.root_addr),
                "dev",
                &self.root_if,
            ],
        )?;
        run(
            "ip",
            &[
                "-n",
                ns,
                "addr",
                "add",
                &format!("{}/30", self.host_addr),
                "dev",
                &self.host_if,
            ],
        )?;
        let root_mac = std::fs::read_to_string(format!("/sys/class/net/{}/address", self.root_if))?;
        let host_mac = host.run(
            "cat",
            &[&format!("/sys/class/net/{}/address", self.host_if)],
        )?;
        run(
            "ip",
            &[
                "neigh",
                "replace",
                &self.host_addr.to_string(),
                "lladdr",
                host_mac.trim(),
                "dev",
                &self.root_if,
                "nud",
                "permanent",
            ],
        )?;
        run(
            "ip",
            &[
                "-n",
                ns,
                "neigh",
                "replace",
                &self.root_addr.to_string(),
                "lladdr",
                root_mac.trim(),
                "dev",
                &self.host_if,
                "nud",
                "permanent",
            ],
        )?;
        run("ip", &["link", "set", &self.root_if, "up"])?;
        run("ip", &["-n", ns, "link", "set", &self.host_if, "up"])?;
        Ok(())
    }

    /// A pin directory for a flowproxy attached to this link.
    pub fn pin_dir(&self) -> std::path::PathBuf {
        self.ids.pin_dir()
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        run_quietly("ip", &["link", "del", &self.root_if]);
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        run_quietly("ip", &["netns", "del", &self.name]);
    }
}

/// Removes namespaces, links, pin directories and temporary files left by harness processes
/// that are gone.
fn remove_leftovers() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let dead = |name: &str| {
            names::owner_pid(name).is_some_and(|pid| !Path::new(&format!("/proc/{pid}")).exists())
        };
        if let Ok(list) = run("ip", &["netns", "list"]) {
            for name in list.lines().filter_map(|l| l.split_whitespace().next()) {
                if dead(name) {
                    run_quietly("ip", &["netns", "del", name]);
                }
            }
        }
        if let Ok(list) = run("ip", &["-o", "link", "show"]) {
            for name in list.lines().filter_map(|l| l.split(':').nth(1)) {
                let name = name.trim().split('@').next().unwrap_or_default();
                if dead(name) {
                    run_quietly("ip", &["link", "del", name]);
                }
            }
        }
        if let Ok(dirs) = std::fs::read_dir("/sys/fs/bpf") {
            for dir in dirs.flatten() {
                if dead(&dir.file_name().to_string_lossy()) {
                    let _ = std::fs::remove_dir_all(dir.path());
                }
            }
        }
        // Process logs and DNS server directories, all named `fp-<pid>-<n>...`.
        if let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) {
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if name.starts_with(&format!("{}-", names::PREFIX)) && dead(&name) {
                    let path = entry.path();
                    let _ = std::fs::remove_file(&path).or_else(|_| std::fs::remove_dir_all(&path));
                }
            }
        }
    });
}

//! `cargo xtask swarm-test`: flowproxy on a real Docker Swarm. The images are built, three
//! dockerd daemons start in network namespaces of their own (or docker-machine VMs are used),
//! the article is replayed on a one-node Swarm, then the other nodes join for the multi-node
//! checks. Everything is removed at the end, also after a failure.
pub mod docker;
pub mod install;

mod article;
mod bpf;
mod cleanup;
mod cluster;
mod daemon;
mod http;
mod lab;
mod local;
mod machine;
mod membership;
mod multi;
mod pins;
mod production;
mod readme;
mod report;
mod services;
mod single;
mod stack;
mod tcp_mode;

use std::{fs::File, os::fd::AsRawFd as _};

use anyhow::{Context as _, bail};
use clap::ValueEnum;

use crate::{image, shell::is_root};
pub use report::Report;

use cluster::Cluster;

/// The article's three nodes.
const NODES: u8 = 3;

/// Who plays the article's docker-machine nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Driver {
    /// dockerd daemons in network namespaces of this machine (what CI runs).
    Local,
    /// docker-machine VMs `node-1` ... `node-3` (`MACHINE_DRIVER`, default virtualbox).
    DockerMachine,
}

/// Which scenarios run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Scenario {
    /// Both, one node first.
    All,
    /// The article on one node.
    Single,
    /// Three nodes with the stack file.
    Multi,
}

/// `cargo xtask swarm-test`: runs the scenarios, prints every check, fails if one failed.
pub fn command(driver: Driver, scenario: Scenario) -> anyhow::Result<()> {
    let report = swarm_test(driver, scenario)?;
    println!("{}", report.summary());
    if report.failed() > 0 {
        bail!("{} Swarm checks failed", report.failed());
    }
    Ok(())
}

/// Builds the images, brings the Swarm up, runs the scenarios and tears everything down.
/// An error means the test could not run at all; failed checks are in the report.
pub fn swarm_test(driver: Driver, scenario: Scenario) -> anyhow::Result<Report> {
    if driver == Driver::Local && !is_root() {
        bail!(
            "the Swarm test starts dockerd in network namespaces: run as root (sudo -E cargo xtask swarm-test)"
        );
    }
    if driver == Driver::DockerMachine {
        machine::Machines::check_installed()?;
    }
    install::docker()?;
    image::build_static_binaries()?;
    let contexts = image::write_contexts()?;
    let _lock = lock()?;
    let mut report = Report::default();
    match driver {
        Driver::Local => {
            cleanup::leftovers();
            let pins = pins::Guard::new();
            let local = local::Local::start(NODES)?;
            let result = run(&local, &contexts, scenario, &mut report);
            drop(local);
            drop(pins);
            report.record(
                "teardown: no daemon, mount, namespace or directory of the test is left",
                cleanup::verify_clean(),
            );
            result?;
        }
        Driver::DockerMachine => {
            let machines = machine::Machines::start(NODES)?;
            run(&machines, &contexts, scenario, &mut report)?;
        }
    }
    Ok(report)
}

fn run(
    cluster: &dyn Cluster,
    contexts: &[(image::Image, std::path::PathBuf)],
    scenario: Scenario,
    report: &mut Report,
) -> anyhow::Result<()> {
    let nodes = cluster.nodes();
    // Built on node-1, then carried to the others: no registry is involved.
    image::build_images(&nodes[0].docker, contexts)?;
    let tags: Vec<&str> = contexts.iter().map(|(i, _)| i.tag).collect();
    for node in &nodes[1..] {
        nodes[0].docker.copy_images(&node.docker, &tags)?;
    }
    membership::init(&nodes[0], cluster.address_pool())?;
    if scenario == Scenario::Multi {
        // What the one-node scenario's README block and step 2 make, which the three nodes'
        // services also use: the token's secret and the networks.
        article::create_secret(cluster, &nodes[0])?;
        article::networks(&nodes[0], &["proxy", "go-demo"])?;
    } else {
        single::run(cluster, report);
    }
    if scenario != Scenario::Single {
        multi::run(cluster, report);
    }
    Ok(())
}

/// One Swarm test at a time per machine: the namespaces, paths and ports are fixed.
fn lock() -> anyhow::Result<File> {
    let path = "/run/lock/flowproxy-swarm.lock";
    let file = File::create(path).with_context(|| format!("creating {path}"))?;
    // Safety: flock on a descriptor we own.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        eprintln!("swarm-test: waiting for another Swarm test on this machine ({path})");
        // Safety: as above.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } != 0 {
            return Err(std::io::Error::last_os_error()).with_context(|| format!("locking {path}"));
        }
    }
    Ok(file)
}

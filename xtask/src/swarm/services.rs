//! Swarm services the scenarios create, and waiting for their tasks. `Services` removes what
//! it created when dropped and waits for the containers to stop, so each proxy gets SIGTERM
//! (and unpins its maps) before the daemons go.
use std::time::Duration;

use anyhow::{Context as _, bail};
use flowproxy_tests::wait::eventually;

use super::{
    cluster::{Cluster, Node},
    http,
};

/// How long tasks may take to start or stop.
pub const TASK_TIMEOUT: Duration = Duration::from_secs(90);

/// The services of one scenario, created on the manager.
pub struct Services {
    nodes: Vec<Node>,
    names: Vec<String>,
}

impl Services {
    /// No services yet; `nodes[0]` is the manager.
    pub fn new(nodes: &[Node]) -> Self {
        Self {
            nodes: nodes.to_vec(),
            names: Vec::new(),
        }
    }

    /// `docker service create --detach --name NAME ARGS...`.
    pub fn create(&mut self, name: &str, args: &[&str]) -> anyhow::Result<()> {
        let mut all = vec!["service", "create", "--detach", "--name", name];
        all.extend(args);
        self.names.push(name.to_owned());
        self.nodes[0].docker.capture(&all).map(drop)
    }

    /// Takes over `name`, created by other means (the README's own `docker service create`),
    /// so it is removed with the rest.
    pub fn adopt(&mut self, name: &str) {
        self.names.push(name.to_owned());
    }

    /// `docker stack deploy -c FILE STACK`, whose services are `names`.
    pub fn deploy_stack(
        &mut self,
        stack: &str,
        file: &std::path::Path,
        names: &[&str],
    ) -> anyhow::Result<()> {
        self.names.extend(names.iter().map(|n| (*n).to_owned()));
        let file = file.to_string_lossy();
        self.nodes[0]
            .docker
            .capture(&["stack", "deploy", "--compose-file", &file, stack])
            .map(drop)
    }

    /// `docker service rm NAME`, then waits until its containers are gone on every node.
    pub fn remove(&mut self, name: &str) -> anyhow::Result<()> {
        self.names.retain(|n| n != name);
        self.nodes[0].docker.capture(&["service", "rm", name])?;
        self.wait_gone(name)
    }

    fn wait_gone(&self, name: &str) -> anyhow::Result<()> {
        eventually(TASK_TIMEOUT, || {
            for node in &self.nodes {
                let left = containers(node, name)?;
                if !left.is_empty() {
                    bail!("{} still runs {name} containers {left:?}", node.name);
                }
            }
            Ok(())
        })
    }
}

impl Drop for Services {
    fn drop(&mut self) {
        for name in std::mem::take(&mut self.names) {
            let _ = self.nodes[0].docker.quiet(&["service", "rm", &name]);
            let _ = self.wait_gone(&name);
        }
    }
}

/// IDs of the running containers of `service` on `node` (a task's hostname is its short ID).
pub fn containers(node: &Node, service: &str) -> anyhow::Result<Vec<String>> {
    let out = node.docker.quiet(&[
        "ps",
        "--quiet",
        "--filter",
        &format!("label=com.docker.swarm.service.name={service}"),
    ])?;
    Ok(out.split_whitespace().map(str::to_owned).collect())
}

/// The short IDs (hostnames) of `service`'s running containers on every node.
pub fn replica_names(nodes: &[Node], service: &str) -> anyhow::Result<Vec<String>> {
    let mut names = Vec::new();
    for node in nodes {
        names.extend(containers(node, service)?);
    }
    names.sort();
    Ok(names)
}

/// Waits until `service` has `count` tasks in state Running (`docker service ps`).
pub fn wait_running(manager: &Node, service: &str, count: usize) -> anyhow::Result<()> {
    eventually(TASK_TIMEOUT, || {
        let out = manager.docker.quiet(&[
            "service",
            "ps",
            service,
            "--filter",
            "desired-state=running",
            "--format",
            "{{.CurrentState}} {{.Error}}",
        ])?;
        let running = out.lines().filter(|l| l.starts_with("Running")).count();
        if running != count {
            bail!(
                "{running} of {count} {service} tasks running: {}",
                out.trim()
            );
        }
        Ok(())
    })
    .with_context(|| format!("waiting for {count} {service} tasks"))
}

/// Waits until the proxy on `node` answers its ping (`/v1/docker-flow-proxy/ping`).
pub fn wait_proxy_ready(cluster: &dyn Cluster, node: &Node) -> anyhow::Result<()> {
    let url = format!("http://{}:8080/v1/docker-flow-proxy/ping", node.addr);
    eventually(TASK_TIMEOUT, || {
        let response = http::get(cluster, &url, &[])?;
        if response.status != 200 {
            bail!("ping answered {}", response.status);
        }
        Ok(())
    })
    .with_context(|| format!("waiting for the proxy on {}", node.name))
}

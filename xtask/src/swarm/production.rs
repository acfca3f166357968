//! What the production-shaped stack file promises, checked on the deployed service: the
//! settings Swarm took from it, every task healthy by the image's health check, and a
//! `docker service update --image` rolling one node at a time with the configuration kept.
use std::time::Duration;

use anyhow::{Context as _, ensure};
use flowproxy_tests::wait::eventually;
use serde_json::Value;

use super::{
    article,
    cluster::{Cluster, Node},
    http,
    services::{self, TASK_TIMEOUT},
    stack,
};

/// The image tag the roll moves to (the same image, tagged again on every node: no registry).
pub const NEXT_TAG: &str = "flowproxy:v2";
/// How long a roll over three nodes may take (per node: stop, start, first healthy check,
/// update delay; then the monitor period).
const ROLL_TIMEOUT: Duration = Duration::from_secs(240);
/// The proxy's drain after SIGTERM (`DRAIN_TIMEOUT` in proxy/src/l7/server.rs).
const DRAIN: Duration = Duration::from_secs(8);

/// `docker service inspect` of the stack's proxy has every production setting of the file.
pub fn settings(manager: &Node) -> anyhow::Result<()> {
    let out = manager.docker.quiet(&[
        "service",
        "inspect",
        "--format",
        "{{json .Spec}}",
        stack::SERVICE,
    ])?;
    let spec: Value = serde_json::from_str(out.trim()).context("docker service inspect")?;
    check_spec(&spec)
}

/// The checks of [`settings`] on a service's `Spec`.
fn check_spec(spec: &Value) -> anyhow::Result<()> {
    let update = &spec["UpdateConfig"];
    ensure!(update["Parallelism"] == 1, "update parallelism: {update}");
    ensure!(update["Order"] == "stop-first", "update order: {update}");
    ensure!(
        update["FailureAction"] == "rollback",
        "update failure action: {update}"
    );
    let rollback = &spec["RollbackConfig"];
    ensure!(
        rollback["Parallelism"] == 1,
        "rollback parallelism: {rollback}"
    );
    ensure!(
        rollback["Order"] == "stop-first",
        "rollback order: {rollback}"
    );
    let task = &spec["TaskTemplate"];
    ensure!(
        task["RestartPolicy"]["Condition"] == "any",
        "restart policy: {}",
        task["RestartPolicy"]
    );
    let reservations = &task["Resources"]["Reservations"];
    ensure!(
        reservations["NanoCPUs"].as_u64() > Some(0)
            && reservations["MemoryBytes"].as_u64() > Some(0),
        "resource reservations: {reservations}"
    );
    let container = &task["ContainerSpec"];
    let grace = container["StopGracePeriod"].as_u64().unwrap_or(0);
    ensure!(
        u128::from(grace) > DRAIN.as_nanos(),
        "stop grace period {grace} ns is not longer than the {DRAIN:?} drain"
    );
    ensure!(
        container["Healthcheck"]["Test"] == serde_json::json!(["CMD", "/flowproxy", "healthcheck"]),
        "health check: {}",
        container["Healthcheck"]
    );
    let mounts = container["Mounts"].as_array().cloned().unwrap_or_default();
    ensure!(
        mounts
            .iter()
            .any(|m| m["Type"] == "volume" && m["Target"] == "/var/lib/flowproxy"),
        "no named volume on the state directory: {mounts:?}"
    );
    let secrets = container["Secrets"].as_array().cloned().unwrap_or_default();
    ensure!(
        secrets.iter().any(|s| s["SecretName"] == article::SECRET),
        "no {} secret: {secrets:?}",
        article::SECRET
    );
    ensure!(
        container["Sysctls"]["net.ipv4.conf.all.forwarding"] == "1",
        "forwarding (the TCP-mode fast path's FIB lookups) is not on: {}",
        container["Sysctls"]
    );
    let env = container["Env"].as_array().cloned().unwrap_or_default();
    ensure!(
        env.iter()
            .any(|e| e == "API_TOKEN_FILE=/run/secrets/flowproxy_api_token"),
        "API_TOKEN_FILE is not the secret: {env:?}"
    );
    Ok(())
}

/// Every task of `service` runs (`docker service ps`: a task with a health check is
/// `Starting` until its first healthy check) and each node's container is `healthy`
/// (`docker inspect`).
pub fn healthy(nodes: &[Node], service: &str) -> anyhow::Result<()> {
    services::wait_running(&nodes[0], service, nodes.len())?;
    eventually(TASK_TIMEOUT, || {
        for node in nodes {
            let ids = services::containers(node, service)?;
            ensure!(
                ids.len() == 1,
                "{} runs {service} containers {ids:?}",
                node.name
            );
            let health = node.docker.quiet(&[
                "inspect",
                "--format",
                "{{if .State.Health}}{{.State.Health.Status}}{{else}}no health check{{end}}",
                &ids[0],
            ])?;
            ensure!(
                health.trim() == "healthy",
                "{}'s {service} container {} is {}",
                node.name,
                ids[0],
                health.trim()
            );
        }
        Ok(())
    })
}

/// `docker service update --image flowproxy:v2`: completes (no rollback), every task runs the
/// new image in a new, healthy container, and every node still routes the go-demo service.
pub fn roll(cluster: &dyn Cluster, nodes: &[Node]) -> anyhow::Result<()> {
    let manager = &nodes[0];
    let mut before = Vec::new();
    for node in nodes {
        node.docker
            .capture(&["tag", "flowproxy:latest", NEXT_TAG])?;
        before.extend(services::containers(node, stack::SERVICE)?);
    }
    manager.docker.capture(&[
        "service",
        "update",
        "--detach",
        "--no-resolve-image",
        "--image",
        NEXT_TAG,
        stack::SERVICE,
    ])?;
    // Sampled while the update runs: with parallelism 1 no two nodes are ever down at once.
    let mut most_down = 0;
    eventually(ROLL_TIMEOUT, || {
        let down = nodes.iter().filter(|n| !answers_ping(cluster, n)).count();
        most_down = most_down.max(down);
        let state = manager.docker.quiet(&[
            "service",
            "inspect",
            "--format",
            "{{if .UpdateStatus}}{{.UpdateStatus.State}} {{.UpdateStatus.Message}}{{end}}",
            stack::SERVICE,
        ])?;
        ensure!(
            !state.starts_with("rollback") && !state.starts_with("paused"),
            "the update failed: {}",
            state.trim()
        );
        ensure!(state.starts_with("completed"), "update: {}", state.trim());
        Ok(())
    })
    .context("waiting for the roll to complete")?;
    eprintln!(
        "swarm-test: at most {most_down} node(s) failed their ping at once during the update"
    );
    ensure!(
        most_down <= 1,
        "{most_down} nodes' proxies were down at once during the update"
    );
    let tasks = manager.docker.quiet(&[
        "service",
        "ps",
        stack::SERVICE,
        "--filter",
        "desired-state=running",
        "--format",
        "{{.Image}} {{.CurrentState}}",
    ])?;
    let on_next = tasks
        .lines()
        .filter(|l| l.starts_with(NEXT_TAG) && l.contains("Running"))
        .count();
    ensure!(
        on_next == nodes.len(),
        "{on_next} of {} tasks run {NEXT_TAG}: {}",
        nodes.len(),
        tasks.trim()
    );
    healthy(nodes, stack::SERVICE)?;
    for node in nodes {
        let now = services::containers(node, stack::SERVICE)?;
        ensure!(
            now.iter().all(|id| !before.contains(id)),
            "{} still runs a container from before the update: {now:?}",
            node.name
        );
        article::config_routes(cluster, node, "go-demo")
            .with_context(|| format!("{} after the roll", node.name))?;
        article::eventually_hello(cluster, node)
            .with_context(|| format!("{} after the roll", node.name))?;
    }
    Ok(())
}

/// Whether `node`'s proxy answers its ping with 200 within a second.
fn answers_ping(cluster: &dyn Cluster, node: &Node) -> bool {
    let url = format!("http://{}:8080/v1/docker-flow-proxy/ping", node.addr);
    http::get(cluster, &url, &["-m", "1"]).is_ok_and(|r| r.status == 200)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> Value {
        serde_json::json!({
            "UpdateConfig": {"Parallelism": 1, "Order": "stop-first", "FailureAction": "rollback"},
            "RollbackConfig": {"Parallelism": 1, "Order": "stop-first"},
            "TaskTemplate": {
                "RestartPolicy": {"Condition": "any"},
                "Resources": {"Reservations": {"NanoCPUs": 250_000_000u64, "MemoryBytes": 67_108_864u64}},
                "ContainerSpec": {
                    "StopGracePeriod": 20_000_000_000u64,
                    "Healthcheck": {"Test": ["CMD", "/flowproxy", "healthcheck"]},
                    "Mounts": [{"Type": "volume", "Source": "proxy_flowproxy-state", "Target": "/var/lib/flowproxy"}],
                    "Secrets": [{"SecretName": "flowproxy_api_token"}],
                    "Env": ["MODE=swarm", "API_TOKEN_FILE=/run/secrets/flowproxy_api_token"],
                    "Sysctls": {"net.ipv4.conf.all.forwarding": "1"},
                },
            },
        })
    }

    #[test]
    fn a_production_spec_passes_and_each_missing_setting_is_named() {
        check_spec(&spec()).unwrap();
        let broken: [(&str, Value); 4] = [
            ("/UpdateConfig/Order", "start-first".into()),
            (
                "/TaskTemplate/ContainerSpec/StopGracePeriod",
                8_000_000_000u64.into(),
            ),
            ("/TaskTemplate/ContainerSpec/Mounts", serde_json::json!([])),
            ("/TaskTemplate/ContainerSpec/Secrets", Value::Null),
        ];
        for (pointer, value) in broken {
            let mut spec = spec();
            *spec.pointer_mut(pointer).unwrap() = value;
            assert!(check_spec(&spec).is_err(), "{pointer}");
        }
    }

    #[test]
    fn the_stack_file_sets_what_the_checks_look_for() {
        let file = stack::STACK_FILE;
        for line in [
            "order: stop-first",
            "failure_action: rollback",
            "parallelism: 1",
            "stop_grace_period: 20s",
            "flowproxy-state:/var/lib/flowproxy",
            "API_TOKEN_FILE=/run/secrets/flowproxy_api_token",
            "test: [\"CMD\", \"/flowproxy\", \"healthcheck\"]",
            "condition: any",
            "reservations:",
            "net.ipv4.conf.all.forwarding=1",
        ] {
            assert!(file.contains(line), "{line} missing from the stack file");
        }
    }
}

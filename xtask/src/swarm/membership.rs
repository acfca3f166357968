//! Forming the Swarm: `docker swarm init` on node-1, `docker swarm join` for the others.
use super::cluster::Node;

/// `docker swarm init --advertise-addr <node-1>`, with overlay subnets from `pool` if given.
pub fn init(manager: &Node, pool: Option<&str>) -> anyhow::Result<()> {
    let mut args = vec!["swarm", "init", "--advertise-addr", &manager.addr];
    if let Some(pool) = pool {
        args.extend([
            "--default-addr-pool",
            pool,
            "--default-addr-pool-mask-length",
            "24",
        ]);
    }
    manager.docker.capture(&args).map(drop)
}

/// Joins `worker` to `manager`'s Swarm with the worker token.
pub fn join(manager: &Node, worker: &Node) -> anyhow::Result<()> {
    let token = manager
        .docker
        .capture(&["swarm", "join-token", "--quiet", "worker"])?;
    let manager_addr = format!("{}:2377", manager.addr);
    worker
        .docker
        .capture(&[
            "swarm",
            "join",
            "--token",
            token.trim(),
            "--advertise-addr",
            &worker.addr,
            &manager_addr,
        ])
        .map(drop)
}

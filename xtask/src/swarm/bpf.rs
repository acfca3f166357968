//! What the node's own bpftool shows of a proxy replica: its programs (found through the maps
//! they use, so other flowproxy processes on the host do not count) and its pinned maps, with
//! per-replica counters that moved.
use anyhow::{Context as _, bail, ensure};
use flowproxy_tests::bpftool::percpu_u64_sum;
use serde_json::Value;

use super::{
    cluster::{Cluster, Node},
    docker::quiet,
};

/// Fields of `BackendCounters`, in order.
const COUNTER_FIELDS: usize = 6;
const PACKETS_IN: usize = 0;
const PACKETS_OUT: usize = 2;

/// Checks the replica pinned at `pin_dir`: both programs loaded against its maps, and
/// `replicas` backends in `BACKENDS` whose `BACKEND_STATS` show packets both ways. (Connections
/// are counted at the SYN, which a pooled connection opened before the attachment never shows.)
pub fn check_counters(
    cluster: &dyn Cluster,
    node: &Node,
    pin_dir: &str,
    replicas: usize,
) -> anyhow::Result<()> {
    let bpftool = |args: &[&str]| -> anyhow::Result<Value> {
        let mut cmd = cluster.bpftool(node);
        cmd.arg("-j").args(args);
        let out = quiet(&mut cmd)?;
        serde_json::from_str(&out).context("parsing bpftool's JSON")
    };
    let stats_path = format!("{pin_dir}/BACKEND_STATS");
    let map = bpftool(&["map", "show", "pinned", &stats_path])?;
    let map_id = map["id"].as_u64().context("a map without id")?;
    let programs = bpftool(&["prog", "show"])?;
    let mut names: Vec<&str> = programs
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| uses_map(p, map_id))
        .filter_map(|p| p["name"].as_str())
        .collect();
    names.sort_unstable();
    ensure!(
        names
            == [
                "flowproxy_tc_egress",
                "flowproxy_tc_ingress",
                "flowproxy_xdp"
            ],
        "programs using {stats_path}: {names:?}"
    );
    let backends = bpftool(&["map", "dump", "pinned", &format!("{pin_dir}/BACKENDS")])?;
    let stats = bpftool(&["map", "dump", "pinned", &stats_path])?;
    let mut moved = 0;
    let mut seen = Vec::new();
    for entry in backends.as_array().context("BACKENDS dump is an array")? {
        let slot = entry["formatted"]["value"]["slot"]
            .as_u64()
            .with_context(|| format!("no BTF-formatted slot in {entry}"))?;
        let counters = percpu_u64_sum(&stats, u32::try_from(slot)?, COUNTER_FIELDS)?;
        if counters[PACKETS_IN] > 0 && counters[PACKETS_OUT] > 0 {
            moved += 1;
        }
        seen.push(counters);
    }
    if moved < replicas {
        bail!("{moved} of {replicas} replicas have counters that moved: {seen:?}");
    }
    Ok(())
}

fn uses_map(program: &Value, map_id: u64) -> bool {
    program["map_ids"]
        .as_array()
        .is_some_and(|ids| ids.iter().any(|id| id.as_u64() == Some(map_id)))
}

//! Keeping replicas equal by merging. A starting replica merges the entries of every peer
//! that answers before it reports ready (bounded by --bootstrap-timeout; without an answer it
//! serves what its state directory held). Then, every --peer-sync-interval, it compares its
//! digest with every peer's and merges the entries of each peer whose digest differs.
//! Replicas only ever pull and merge never drops a winning entry, so a replica that missed
//! changes repairs itself and no replica's acknowledged change is lost to another's.
use std::{
    net::SocketAddr,
    time::{Duration, Instant},
};

use futures_util::future::join_all;
use serde::Deserialize;

use super::{
    Cluster,
    apply::MergeReport,
    exchange::{ClusterConfig, ConfigDigest},
};

/// Path of every entry.
pub const CONFIG_PATH: &str = "/v1/flowproxy/config";
/// Path of the digest alone.
pub const VERSION_PATH: &str = "/v1/flowproxy/config/version";
/// Path that makes a replica compare with its peers now.
pub const SYNC_PATH: &str = "/v1/flowproxy/sync";
/// Pause between bootstrap attempts while no peer answers.
const BOOTSTRAP_RETRY: Duration = Duration::from_secs(1);

/// The answer of [`VERSION_PATH`].
#[derive(Debug, Deserialize)]
pub struct VersionAnswer {
    /// The peer's digest.
    #[serde(rename = "Version")]
    pub version: ConfigDigest,
    /// Whether the peer's bootstrap is over.
    #[serde(rename = "Ready", default)]
    pub ready: bool,
}

/// How a bootstrap ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Bootstrap {
    /// No other replica exists.
    NoPeers,
    /// These peers answered and their entries were merged.
    Merged(Vec<(SocketAddr, MergeReport)>),
    /// No peer answered in time: the saved configuration is served.
    NoAnswer,
}

/// Merges every answering peer's entries, retrying until one answers or `timeout` passes.
pub async fn bootstrap(cluster: &Cluster, timeout: Duration) -> Bootstrap {
    let deadline = Instant::now() + timeout;
    loop {
        match cluster.peers.lookup().await {
            Ok(peers) if peers.is_empty() => return Bootstrap::NoPeers,
            Ok(peers) => {
                let merged = merge_from(cluster, &peers, "bootstrap").await;
                if !merged.is_empty() {
                    return Bootstrap::Merged(merged);
                }
            }
            Err(super::PeerLookupError::NoSuchService { .. }) => return Bootstrap::NoPeers,
            Err(e) => tracing::debug!("bootstrap: {e}"),
        }
        if Instant::now() + BOOTSTRAP_RETRY > deadline {
            return Bootstrap::NoAnswer;
        }
        tokio::time::sleep(BOOTSTRAP_RETRY).await;
    }
}

/// Fetches every entry of each of `peers` and merges them; returns the peers that answered.
async fn merge_from(
    cluster: &Cluster,
    peers: &[SocketAddr],
    why: &str,
) -> Vec<(SocketAddr, MergeReport)> {
    let answers = join_all(peers.iter().map(|addr| async move {
        match cluster
            .client
            .get_json::<ClusterConfig>(*addr, CONFIG_PATH)
            .await
        {
            Ok(config) => Some((*addr, config)),
            Err(e) => {
                tracing::info!(peer = %addr, "{why}: the peer's entries are not available: {e}");
                None
            }
        }
    }))
    .await;
    let mut merged = Vec::new();
    // One peer after the other: each merge is applied through the serialised control plane.
    for (addr, config) in answers.into_iter().flatten() {
        let entries = config.services.len() + config.certs.len();
        let report = cluster.local.merge(addr, config).await;
        if report.applied > 0 || report.refused > 0 {
            tracing::info!(
                peer = %addr,
                entries,
                applied = report.applied,
                refused = report.refused,
                "entries merged from a peer"
            );
        }
        merged.push((addr, report));
    }
    merged
}

/// Compares with every peer every `interval` and collects tombstones older than
/// `tombstone_ttl`, forever.
pub async fn converge_periodically(cluster: &Cluster, interval: Duration, tombstone_ttl: Duration) {
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        converge_once(cluster).await;
        match cluster
            .local
            .changes
            .control
            .collect_tombstones(tombstone_ttl)
            .await
        {
            Ok(0) => {}
            Ok(collected) => {
                tracing::info!(collected, ttl = ?tombstone_ttl, "old tombstones collected")
            }
            Err(e) => tracing::error!("collecting tombstones failed: {e}"),
        }
    }
}

/// One comparison: merges the entries of every peer whose digest differs from this
/// replica's. Returns those peers with what each merge did.
pub async fn converge_once(cluster: &Cluster) -> Vec<(SocketAddr, MergeReport)> {
    let peers = match cluster.peers.lookup().await {
        Ok(peers) => peers,
        Err(e) => {
            tracing::debug!("peer check skipped: {e}");
            return Vec::new();
        }
    };
    let own = cluster.local.digest();
    let digests = join_all(peers.iter().map(|addr| async move {
        match cluster
            .client
            .get_json::<VersionAnswer>(*addr, VERSION_PATH)
            .await
        {
            Ok(answer) => Some((answer.version, *addr)),
            Err(e) => {
                tracing::debug!(peer = %addr, "peer check: no digest: {e}");
                None
            }
        }
    }))
    .await;
    let differing: Vec<SocketAddr> = digests
        .into_iter()
        .flatten()
        .filter(|(digest, _)| digest.digest != own.digest)
        .map(|(_, addr)| addr)
        .collect();
    if differing.is_empty() {
        return Vec::new();
    }
    tracing::debug!(peers = ?differing, own = %own.digest, "peers with other entries");
    merge_from(cluster, &differing, "peer check").await
}

/// Asks every peer to compare with its peers now (after a change made here, such as one from
/// Docker labels, which only managers see), so that they pull it without waiting for their
/// next periodic check. Failures only delay that.
pub async fn nudge_peers(cluster: &Cluster) {
    let Ok(peers) = cluster.peers.lookup().await else {
        return;
    };
    join_all(peers.iter().map(|addr| async move {
        let answer = cluster
            .client
            .send(hyper::Method::POST, *addr, SYNC_PATH, bytes::Bytes::new())
            .await;
        if let Err(e) = answer {
            tracing::debug!(peer = %addr, "asking the peer to sync failed: {e}");
        }
    }))
    .await;
}

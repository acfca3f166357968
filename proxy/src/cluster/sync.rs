//! Keeping replicas equal. A starting replica takes the newest configuration its peers have
//! before it reports ready (bounded by --bootstrap-timeout; without an answer it serves what
//! its state directory held). Then, every --peer-sync-interval, it compares its version with
//! every peer's and adopts the newest one that supersedes its own (`version.rs` has the rule).
//! Replicas only ever pull, so a replica that missed changes repairs itself and a replica
//! with the newest configuration is copied by all the others.
use std::{
    net::SocketAddr,
    time::{Duration, Instant},
};

use futures_util::future::join_all;
use serde::Deserialize;

use super::{
    Cluster,
    export::ClusterConfig,
    version::{ConfigVersion, newest},
};

/// Path of the whole configuration.
pub const CONFIG_PATH: &str = "/v1/flowproxy/config";
/// Path of the version alone.
pub const VERSION_PATH: &str = "/v1/flowproxy/config/version";
/// Path that makes a replica compare with its peers now.
pub const SYNC_PATH: &str = "/v1/flowproxy/sync";
/// Pause between bootstrap attempts while no peer answers.
const BOOTSTRAP_RETRY: Duration = Duration::from_secs(1);

/// The answer of [`VERSION_PATH`].
#[derive(Debug, Deserialize)]
struct VersionAnswer {
    #[serde(rename = "Version")]
    version: ConfigVersion,
}

/// How a bootstrap ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Bootstrap {
    /// No other replica exists.
    NoPeers,
    /// Peers answered; this replica's configuration was the newest (or equal).
    Current,
    /// The configuration of this peer was adopted.
    Adopted(SocketAddr),
    /// The newest configuration, this peer's, could not be adopted (the error is logged).
    Refused(SocketAddr),
    /// No peer answered in time: the saved configuration is served.
    NoAnswer,
}

/// Takes the newest configuration from the peers, retrying until `timeout`.
pub async fn bootstrap(cluster: &Cluster, timeout: Duration) -> Bootstrap {
    let deadline = Instant::now() + timeout;
    loop {
        let outcome = match cluster.peers.lookup().await {
            Ok(peers) if peers.is_empty() => return Bootstrap::NoPeers,
            Ok(peers) => adopt_newest(cluster, &peers).await,
            Err(e) => {
                tracing::debug!("bootstrap: {e}");
                match e {
                    super::PeerLookupError::NoSuchService { .. } => return Bootstrap::NoPeers,
                    super::PeerLookupError::Dns { .. } => None,
                }
            }
        };
        if let Some(done) = outcome {
            return done;
        }
        if Instant::now() + BOOTSTRAP_RETRY > deadline {
            return Bootstrap::NoAnswer;
        }
        tokio::time::sleep(BOOTSTRAP_RETRY).await;
    }
}

/// Asks every peer for its whole configuration and adopts the newest; `None` when no peer
/// answered, so the caller tries again.
async fn adopt_newest(cluster: &Cluster, peers: &[SocketAddr]) -> Option<Bootstrap> {
    let answers = join_all(peers.iter().map(|addr| async move {
        let config = cluster.client.get_json::<ClusterConfig>(*addr, CONFIG_PATH).await;
        if let Err(e) = &config {
            tracing::info!(peer = %addr, "bootstrap: the peer's configuration is not available: {e}");
        }
        Some((*addr, config.ok()?))
    }))
    .await;
    let answered: Vec<(SocketAddr, ClusterConfig)> = answers.into_iter().flatten().collect();
    if answered.is_empty() {
        return None;
    }
    let own = cluster.local.version();
    let Some((_, index)) = newest(
        &own,
        answered
            .iter()
            .enumerate()
            .map(|(i, (_, c))| (&c.version, i)),
    ) else {
        return Some(Bootstrap::Current);
    };
    let (addr, config) = answered.into_iter().nth(index)?;
    Some(if adopt(cluster, addr, config, &own).await {
        Bootstrap::Adopted(addr)
    } else {
        Bootstrap::Refused(addr)
    })
}

/// Compares with every peer every `interval`, forever.
pub async fn converge_periodically(cluster: &Cluster, interval: Duration) {
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        converge_once(cluster).await;
    }
}

/// One comparison: adopts the newest peer configuration that supersedes this replica's.
/// Returns the peer adopted from.
pub async fn converge_once(cluster: &Cluster) -> Option<SocketAddr> {
    let peers = match cluster.peers.lookup().await {
        Ok(peers) => peers,
        Err(e) => {
            tracing::debug!("peer check skipped: {e}");
            return None;
        }
    };
    let versions = join_all(peers.iter().map(|addr| async move {
        match cluster
            .client
            .get_json::<VersionAnswer>(*addr, VERSION_PATH)
            .await
        {
            Ok(answer) => Some((answer.version, *addr)),
            Err(e) => {
                tracing::debug!(peer = %addr, "peer check: no version: {e}");
                None
            }
        }
    }))
    .await;
    let versions: Vec<(ConfigVersion, SocketAddr)> = versions.into_iter().flatten().collect();
    let own = cluster.local.version();
    let (newer, addr) = newest(&own, versions.iter().map(|(v, a)| (v, *a)))?;
    tracing::info!(
        peer = %addr,
        own_changed_at = own.changed_at_ms,
        own_hash = %own.hash,
        peer_changed_at = newer.changed_at_ms,
        peer_hash = %newer.hash,
        "a peer has a newer configuration"
    );
    let config = match cluster
        .client
        .get_json::<ClusterConfig>(addr, CONFIG_PATH)
        .await
    {
        Ok(config) => config,
        Err(e) => {
            tracing::warn!(peer = %addr, "fetching the peer's newer configuration failed: {e}");
            return None;
        }
    };
    if !config.version.supersedes(&own) {
        return None;
    }
    adopt(cluster, addr, config, &own).await.then_some(addr)
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

/// Adopts `config` from `addr`; logs the outcome.
async fn adopt(
    cluster: &Cluster,
    addr: SocketAddr,
    config: ClusterConfig,
    own: &ConfigVersion,
) -> bool {
    let version = config.version.clone();
    let services = config.services.len();
    match cluster.local.adopt(config, own).await {
        Ok(true) => {
            tracing::info!(
                peer = %addr,
                services,
                changed_at = version.changed_at_ms,
                hash = %version.hash,
                "configuration adopted from a peer"
            );
            true
        }
        Ok(false) => {
            tracing::info!(peer = %addr, "a local change came first; the peer's configuration was not adopted");
            false
        }
        Err(e) => {
            tracing::error!(peer = %addr, "the peer's configuration was not adopted: {e}");
            false
        }
    }
}

//! Replication between proxy replicas:
//! - peers (`peers.rs`): the other replicas are the addresses of `tasks.<SERVICE_NAME>`;
//! - `distribute=true` (`distribute.rs`): a change sent to every peer, results per peer;
//! - what replicas exchange (`exchange.rs`): every service and API certificate with its
//!   version (tombstones for removals) and the digest of them all;
//! - the merge of a peer's entries (`apply.rs`), validated like a reconfigure;
//! - bootstrap and convergence (`sync.rs`): a starting replica merges its peers' entries
//!   before it reports ready; replicas compare digests periodically and merge on a difference.
//!
//! Discovery (Docker labels, the Swarm Listener) is `crate::discovery`; it feeds changes
//! through `Changes` like the API and nudges peers through [`nudge_peers`].
mod apply;
mod args;
mod client;
mod distribute;
mod exchange;
mod peers;
mod sync;

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

pub use args::{ClusterArgs, Mode};
pub use client::PeerClient;
pub use distribute::{Call, distribute};
pub use exchange::LocalConfig;
pub use peers::{PeerLookupError, Peers};
pub use sync::{VERSION_PATH, VersionAnswer, converge_once, nudge_peers};

use crate::{upstream::ReplicaResolver, wire::ApiToken};

/// What the cluster tasks run with, taken from the flags once.
#[derive(Debug, Clone)]
pub struct Settings {
    /// How the proxy is deployed.
    pub mode: Mode,
    /// Between peer checks.
    pub peer_sync_interval: Duration,
    /// The longest wait for a peer's configuration at start.
    pub bootstrap_timeout: Duration,
    /// How long a tombstone is kept at least.
    pub tombstone_ttl: Duration,
    /// The Swarm Listener's addresses (`LISTENER_ADDRESS`); with any, its services are
    /// fetched at start (`successfulinitreload` waits) and `reload?fromListener=true` asks it
    /// to notify again.
    pub listener_addresses: Vec<String>,
}

impl Settings {
    /// Whether a Swarm Listener is configured.
    pub fn listener_expected(&self) -> bool {
        self.listener_addresses.iter().any(|a| !a.trim().is_empty())
    }
}

/// This replica among its peers.
pub struct Cluster {
    /// How the proxy is deployed.
    pub mode: Mode,
    /// The other replicas.
    pub peers: Peers,
    /// Calls to peers and to the listener.
    pub client: PeerClient,
    /// This replica's configuration.
    pub local: LocalConfig,
    /// Looks up the listener's address.
    pub resolver: ReplicaResolver,
    settings: Settings,
    ready: tokio::sync::watch::Sender<bool>,
    listener_fetched: AtomicBool,
}

impl Cluster {
    /// A replica whose API listens on `api_port` (peers are called on the same port).
    pub fn new(
        settings: Settings,
        service_name: &str,
        api_port: u16,
        token: Option<ApiToken>,
        peer_timeout: Duration,
        resolver: ReplicaResolver,
        local: LocalConfig,
    ) -> Self {
        Self {
            mode: settings.mode,
            peers: Peers::new(resolver.clone(), service_name, api_port),
            client: PeerClient::new(token, peer_timeout),
            local,
            resolver,
            listener_fetched: AtomicBool::new(!settings.listener_expected()),
            settings,
            ready: tokio::sync::watch::Sender::new(false),
        }
    }

    /// Whether the start-up bootstrap is over (`/v1/docker-flow-proxy/ping` answers 200).
    pub fn is_ready(&self) -> bool {
        *self.ready.borrow()
    }

    /// Waits until the start-up bootstrap is over.
    pub async fn wait_ready(&self) {
        let mut ready = self.ready.subscribe();
        // The sender lives as long as `self`, so this only ends once ready.
        let _ = ready.wait_for(|r| *r).await;
    }

    /// Whether a Swarm Listener is configured (`LISTENER_ADDRESS`).
    pub fn listener_expected(&self) -> bool {
        self.settings.listener_expected()
    }

    /// The Swarm Listener's addresses as configured (`LISTENER_ADDRESS`).
    pub fn listener_addresses(&self) -> &[String] {
        &self.settings.listener_addresses
    }

    /// Whether the Swarm Listener's services were applied (always, without a listener).
    pub fn listener_fetched(&self) -> bool {
        self.listener_fetched.load(Ordering::Acquire)
    }

    /// Records that the Swarm Listener's services were applied.
    pub fn set_listener_fetched(&self) {
        self.listener_fetched.store(true, Ordering::Release);
    }

    /// Looks for peers once; with none, this replica is ready before this returns (so a
    /// lone proxy is ready as soon as it says so in its log).
    pub async fn first_look(&self) {
        match self.peers.lookup().await {
            Ok(peers) if peers.is_empty() => self.mark_ready("no other replica"),
            // Outside Swarm a failed look-up (no such name, or no DNS at all) means no peers.
            Err(e) if self.mode == Mode::Default => {
                tracing::debug!("no peers: {e}");
                self.mark_ready("no other replica")
            }
            _ => {}
        }
    }

    /// Bootstraps (unless already ready), then runs the peer checks until aborted.
    pub async fn run(self: Arc<Self>) {
        if !self.is_ready() {
            let outcome = sync::bootstrap(&self, self.settings.bootstrap_timeout).await;
            let why = match outcome {
                sync::Bootstrap::NoPeers => "no other replica".to_owned(),
                sync::Bootstrap::Merged(peers) => {
                    let applied: usize = peers.iter().map(|(_, r)| r.applied).sum();
                    let refused: usize = peers.iter().map(|(_, r)| r.refused).sum();
                    format!(
                        "merged the entries of {} peer(s): {applied} applied, {refused} refused",
                        peers.len()
                    )
                }
                sync::Bootstrap::NoAnswer => {
                    tracing::warn!(
                        timeout = ?self.settings.bootstrap_timeout,
                        "no peer replica answered; serving the configuration saved here"
                    );
                    "no peer answered".to_owned()
                }
            };
            self.mark_ready(&why);
        }
        sync::converge_periodically(
            &self,
            self.settings.peer_sync_interval,
            self.settings.tombstone_ttl,
        )
        .await;
    }

    fn mark_ready(&self, why: &str) {
        if !self.ready.send_replace(true) {
            tracing::info!(
                reason = why,
                "flowproxy ready: /v1/docker-flow-proxy/ping answers 200"
            );
        }
    }
}

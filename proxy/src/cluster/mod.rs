//! Everything between proxy replicas, and discovery beyond the API:
//! - peers (`peers.rs`): the other replicas are the addresses of `tasks.<SERVICE_NAME>`;
//! - `distribute=true` (`distribute.rs`): a change sent to every peer, results per peer;
//! - bootstrap and convergence (`sync.rs`): a starting replica takes the newest configuration
//!   before it reports ready, and replicas compare versions (`version.rs`) periodically;
//! - the exchanged configuration (`export.rs`): services and API certificates with a version;
//! - Docker label discovery (`labels.rs` pure, `docker.rs` through bollard);
//! - the Swarm Listener's services at start (`listener.rs`, `LISTENER_ADDRESS`).
mod args;
mod client;
mod distribute;
mod docker;
mod export;
mod labels;
mod listener;
mod peers;
mod sync;
mod version;

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
pub use docker::DockerDiscovery;
pub use export::LocalConfig;
pub use peers::{PeerLookupError, Peers};
pub use sync::{VERSION_PATH, converge_once};
pub use version::ConfigVersion;

use crate::{api::ApiToken, upstream::ReplicaResolver};

/// What the cluster tasks run with, taken from the flags once.
#[derive(Debug, Clone)]
pub struct Settings {
    /// How the proxy is deployed.
    pub mode: Mode,
    /// Between peer checks.
    pub peer_sync_interval: Duration,
    /// The longest wait for a peer's configuration at start.
    pub bootstrap_timeout: Duration,
    /// Label discovery, when on.
    pub docker: Option<DockerDiscovery>,
    /// Swarm Listener addresses.
    pub listeners: Vec<String>,
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
    ready: AtomicBool,
    /// Set once the Swarm Listener's services were applied (DFP's `successfulinitreload`).
    pub listener_fetched: AtomicBool,
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
            listener_fetched: AtomicBool::new(settings.listeners.is_empty()),
            settings,
            ready: AtomicBool::new(false),
        }
    }

    /// Whether the start-up bootstrap is over (`/v1/docker-flow-proxy/ping` answers 200).
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// Whether the Swarm Listener's services were applied (always, without a listener).
    pub fn listener_fetched(&self) -> bool {
        self.listener_fetched.load(Ordering::Acquire)
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

    /// Bootstraps (unless already ready), then runs the peer checks, the listener fetch and
    /// label discovery until aborted.
    pub async fn run(self: Arc<Self>) {
        if !self.is_ready() {
            let outcome = sync::bootstrap(&self, self.settings.bootstrap_timeout).await;
            let why = match outcome {
                sync::Bootstrap::NoPeers => "no other replica".to_owned(),
                sync::Bootstrap::Current => "this replica's configuration is current".to_owned(),
                sync::Bootstrap::Adopted(peer) => format!("configuration taken from {peer}"),
                sync::Bootstrap::Refused(peer) => {
                    format!("the configuration of {peer} was refused; serving the one saved here")
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
        let docker = async {
            if let Some(settings) = self.settings.docker.clone() {
                docker::run(&self, settings).await;
            }
        };
        tokio::join!(
            sync::converge_periodically(&self, self.settings.peer_sync_interval),
            listener::fetch_services(&self, &self.settings.listeners),
            docker,
        );
    }

    fn mark_ready(&self, why: &str) {
        if !self.ready.swap(true, Ordering::AcqRel) {
            tracing::info!(
                reason = why,
                "ready: /v1/docker-flow-proxy/ping answers 200"
            );
        }
    }
}

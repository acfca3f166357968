//! Where services come from besides the API, applied through `Changes` as the API applies
//! them (so they carry versions and replicate like any change):
//! - Docker label discovery (`labels.rs` pure, `docker.rs` through bollard): a label-made
//!   service whose Swarm service is gone is removed, leaving a tombstone that peers merge;
//! - the Swarm Listener's services at start (`listener.rs`, `LISTENER_ADDRESS`);
//! - DFP's static services from the environment (`static_services.rs`, `DFP_SERVICE_*`).
//!
//! Both start once the replica's bootstrap is over, so that what they change is merged on
//! top of what the peers had.
mod docker;
mod labels;
mod listener;
mod static_services;
mod status;

use std::sync::Arc;

pub use docker::DockerDiscovery;
pub use listener::notify_services;
pub use static_services::StaticService;
pub use status::{DiscoveryStatus, DockerState};

use crate::cluster::Cluster;

/// What discovery runs with, taken from the flags once.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// Label discovery, when on.
    pub docker: Option<DockerDiscovery>,
    /// Swarm Listener addresses.
    pub listeners: Vec<String>,
    /// DFP's static services, already parsed.
    pub static_services: Vec<StaticService>,
    /// What discovery last did, shared with the status page.
    pub status: Arc<DiscoveryStatus>,
}

/// Runs discovery once `cluster` is ready, until aborted.
pub async fn run(cluster: Arc<Cluster>, settings: Settings) {
    cluster.wait_ready().await;
    // First, so that the listener and labels may change them as they would any service.
    static_services::apply(&cluster, &settings.static_services).await;
    let docker = async {
        if let Some(docker) = settings.docker.clone() {
            docker::run(&cluster, docker, &settings.status).await;
        }
    };
    tokio::join!(
        listener::fetch_services(&cluster, &settings.listeners),
        docker
    );
}

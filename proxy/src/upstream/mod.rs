//! Where requests go: replica discovery (`tasks.<service>` with the Swarm VIP as fallback), the
//! per-replica balancer, the retry policy, and the upstream client with its idle connections.
mod client;
mod connector;
mod idle;
mod replicas;
mod resolver;
pub mod retry;
pub mod sticky;

pub use client::{
    BoxError, UpstreamBody, UpstreamClient, UpstreamError, UpstreamResponse, new_client,
};
pub use replicas::{ReplicaSet, UpstreamKey};
pub use resolver::{ReplicaResolver, ResolveError};

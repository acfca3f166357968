//! Where requests go: replica discovery (`tasks.<service>` with the Swarm VIP as fallback), the
//! per-replica balancer, and the pooled upstream client.
mod client;
mod connector;
mod replicas;
mod resolver;
pub mod sticky;

pub use client::{BoxError, UpstreamBody, UpstreamClient, new_client};
pub use connector::ByteCounters;
pub use replicas::{ReplicaSet, UpstreamKey};
pub use resolver::{ReplicaResolver, ResolveError};

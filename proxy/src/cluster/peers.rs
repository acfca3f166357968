//! The other replicas of this proxy: every address of `tasks.<SERVICE_NAME>` except this
//! replica's own, on the API port.
use std::net::{IpAddr, SocketAddr, UdpSocket};

use crate::upstream::{ReplicaResolver, ResolveError};

/// Why the replicas could not be listed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PeerLookupError {
    /// The name does not exist: no replica of that service runs (or SERVICE_NAME is wrong).
    #[error(
        "{tasks} does not resolve: no replica of service {service} is known; set SERVICE_NAME to the proxy's Swarm service name"
    )]
    NoSuchService {
        /// `tasks.<service>`.
        tasks: String,
        /// The service name.
        service: String,
    },
    /// The DNS server did not answer usefully.
    #[error("looking up the proxy's replicas ({tasks}) failed: {reason}")]
    Dns {
        /// `tasks.<service>`.
        tasks: String,
        /// The resolver's error.
        reason: String,
    },
}

/// Finds the peer replicas.
#[derive(Clone)]
pub struct Peers {
    resolver: ReplicaResolver,
    service: String,
    port: u16,
}

impl Peers {
    /// Replicas of `service`, whose APIs listen on `port`.
    pub fn new(resolver: ReplicaResolver, service: &str, port: u16) -> Self {
        Self {
            resolver,
            service: service.to_owned(),
            port,
        }
    }

    /// The DNS name listing every replica.
    pub fn tasks_name(&self) -> String {
        format!("tasks.{}", self.service)
    }

    /// The API address of every other replica, sorted.
    pub async fn lookup(&self) -> Result<Vec<SocketAddr>, PeerLookupError> {
        let tasks = self.tasks_name();
        match self.resolver.addresses(&tasks).await {
            Ok(ips) => Ok(ips
                .into_iter()
                .filter(|ip| !is_local(*ip))
                .map(|ip| SocketAddr::new(ip, self.port))
                .collect()),
            Err(ResolveError::NoSuchName { .. }) => Err(PeerLookupError::NoSuchService {
                tasks,
                service: self.service.clone(),
            }),
            Err(e) => Err(PeerLookupError::Dns {
                tasks,
                reason: e.to_string(),
            }),
        }
    }
}

/// Whether `ip` is one of this machine's (this container's) addresses: only those can be
/// bound. (With `net.ipv4.ip_nonlocal_bind=1` every address could; Docker leaves it at 0.)
pub fn is_local(ip: IpAddr) -> bool {
    UdpSocket::bind(SocketAddr::new(ip, 0)).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_addresses_are_local_and_others_are_not() {
        assert!(is_local(IpAddr::from([127, 0, 0, 1])));
        // TEST-NET-3: never assigned to an interface.
        assert!(!is_local(IpAddr::from([203, 0, 113, 7])));
    }
}

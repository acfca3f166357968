//! DNS look-ups of a service's replicas. Swarm's DNS answers `tasks.<service>` with one address
//! per running task and `<service>` with the VIP; we balance across tasks ourselves and keep the
//! VIP as the fallback for clusters where only it resolves.
use std::{
    net::{IpAddr, SocketAddr},
    time::Duration,
};

use hickory_resolver::{
    TokioResolver,
    config::{ConnectionConfig, NameServerConfig, ResolverConfig},
    net::runtime::TokioRuntimeProvider,
    proto::rr::Name,
};

/// `name` as a DNS name. Swarm names services `<stack>_<service>`, and the underscore is not
/// allowed by the IDNA parsing that looking up a `&str` goes through, so names are taken as
/// plain ASCII labels.
fn dns_name(name: &str) -> Result<Name, ResolveError> {
    Name::from_ascii(name).map_err(|e| ResolveError::NotFound {
        name: name.to_owned(),
        tried: name.to_owned(),
        reason: e.to_string(),
    })
}

/// Why a service's replicas could not be found.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    /// The resolver could not be set up from the system configuration.
    #[error("DNS resolver configuration: {0}; pass --dns-server IP:PORT")]
    Config(String),
    /// The name does not exist (NXDOMAIN) or has no address.
    #[error("{name} does not resolve (no such name)")]
    NoSuchName {
        /// The name looked up.
        name: String,
    },
    /// Neither `tasks.<name>` nor `<name>` resolved.
    #[error("{name} does not resolve (tried {tried}): {reason}")]
    NotFound {
        /// The service or host name.
        name: String,
        /// The names that were looked up.
        tried: String,
        /// The resolver's last error.
        reason: String,
    },
}

/// Resolves service names to replica addresses.
#[derive(Clone)]
pub struct ReplicaResolver {
    resolver: TokioResolver,
}

impl ReplicaResolver {
    /// A resolver using `server` (IP:PORT) or, without one, the system configuration.
    pub fn new(server: Option<SocketAddr>) -> Result<Self, ResolveError> {
        let mut builder = match server {
            Some(addr) => {
                let mut udp = ConnectionConfig::udp();
                udp.port = addr.port();
                let mut tcp = ConnectionConfig::tcp();
                tcp.port = addr.port();
                let server = NameServerConfig::new(addr.ip(), true, vec![udp, tcp]);
                TokioResolver::builder_with_config(
                    ResolverConfig::from_name_servers(vec![server]),
                    TokioRuntimeProvider::default(),
                )
            }
            None => {
                TokioResolver::builder_tokio().map_err(|e| ResolveError::Config(e.to_string()))?
            }
        };
        let opts = builder.options_mut();
        // We re-resolve on our own schedule; Docker's TTL of 600 s would keep dead tasks.
        opts.positive_max_ttl = Some(Duration::from_secs(1));
        opts.negative_max_ttl = Some(Duration::from_secs(1));
        opts.timeout = Duration::from_secs(2);
        opts.attempts = 1;
        let resolver = builder
            .build()
            .map_err(|e| ResolveError::Config(e.to_string()))?;
        Ok(Self { resolver })
    }

    /// The addresses of `name` itself (no `tasks.` prefix, no fallback), sorted. A name that
    /// does not exist is [`ResolveError::NoSuchName`], told apart from a server that did not
    /// answer.
    pub async fn addresses(&self, name: &str) -> Result<Vec<IpAddr>, ResolveError> {
        if let Ok(ip) = name.parse::<IpAddr>() {
            return Ok(vec![ip]);
        }
        let no_such_name = || ResolveError::NoSuchName {
            name: name.to_owned(),
        };
        match self.resolver.lookup_ip(dns_name(name)?).await {
            Ok(lookup) => {
                let mut ips: Vec<IpAddr> = lookup.iter().collect();
                ips.sort();
                ips.dedup();
                if ips.is_empty() {
                    Err(no_such_name())
                } else {
                    Ok(ips)
                }
            }
            Err(e) if e.is_nx_domain() || e.is_no_records_found() => Err(no_such_name()),
            Err(e) => Err(ResolveError::NotFound {
                name: name.to_owned(),
                tried: name.to_owned(),
                reason: e.to_string(),
            }),
        }
    }

    /// The replicas of `service`: the addresses of `tasks.<service>`, else of `<service>`.
    /// With `direct`, only `<service>` itself is looked up (an `outboundHostname`).
    pub async fn replicas(&self, service: &str, direct: bool) -> Result<Vec<IpAddr>, ResolveError> {
        if let Ok(ip) = service.parse::<IpAddr>() {
            return Ok(vec![ip]);
        }
        let tasks = format!("tasks.{service}");
        let candidates: Vec<&str> = if direct {
            vec![service]
        } else {
            vec![tasks.as_str(), service]
        };
        let mut reason = String::new();
        for name in &candidates {
            match self.resolver.lookup_ip(dns_name(name)?).await {
                Ok(lookup) => {
                    let mut ips: Vec<IpAddr> = lookup.iter().collect();
                    if !ips.is_empty() {
                        ips.sort();
                        ips.dedup();
                        return Ok(ips);
                    }
                }
                // Only "no such name" moves on to the VIP: after a timeout the tasks may well
                // exist, and flipping to the VIP would churn the replica set for nothing.
                Err(e) if e.is_nx_domain() || e.is_no_records_found() => reason = e.to_string(),
                Err(e) => {
                    return Err(ResolveError::NotFound {
                        name: service.to_owned(),
                        tried: (*name).to_owned(),
                        reason: e.to_string(),
                    });
                }
            }
        }
        Err(ResolveError::NotFound {
            name: service.to_owned(),
            tried: candidates.join(", "),
            reason,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stack_service_names_with_underscores_are_valid() {
        let name = dns_name("tasks.proxy_proxy").expect("underscore accepted");
        assert_eq!(name.to_ascii(), "tasks.proxy_proxy");
    }

    #[test]
    fn an_overlong_label_is_an_error_naming_the_service() {
        let long = "a".repeat(64);
        let err = dns_name(&long).expect_err("label over 63 bytes");
        assert!(err.to_string().contains(&long), "{err}");
    }
}

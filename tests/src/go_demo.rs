//! The article's `go-demo` service, played on this machine: each replica a demo backend in a
//! namespace host of its own, and a real DNS server answering like Swarm's does, with
//! `tasks.go-demo` listing the replicas and `go-demo` a VIP that forwards nowhere (this
//! kernel has no IPVS), so only per-replica balancing can reach the service.
use std::net::{Ipv4Addr, SocketAddr};

use crate::{DemoBackend, Dns, Host, Link};

/// The replicas' port, as in the article.
pub const PORT: u16 = 8080;
/// The article's reconfigure query.
pub const RECONFIGURE: &str = "serviceName=go-demo&servicePath=/demo&port=8080";
/// The VIP `go-demo` resolves to: in the benchmark range, but nobody answers there.
const VIP: Ipv4Addr = Ipv4Addr::new(198, 19, 255, 254);

/// One replica: its host, link and backend. Fields drop in order: backend, link, host.
#[derive(Debug)]
pub struct Replica {
    /// The backend process.
    pub backend: DemoBackend,
    /// The link to the root namespace.
    pub link: Link,
    /// The namespace.
    pub host: Host,
}

/// The go-demo service and its DNS.
#[derive(Debug)]
pub struct GoDemo {
    /// The replicas, named `go-demo.1`, `go-demo.2`, ...
    pub replicas: Vec<Replica>,
    /// The DNS server flowproxy is pointed at (`--dns-server`).
    pub dns: Dns,
    started: usize,
}

impl GoDemo {
    /// Starts `replicas` replicas and publishes them in DNS.
    pub fn start(replicas: usize) -> anyhow::Result<Self> {
        let dns = Dns::start()?;
        dns.set("go-demo", &[VIP])?;
        let mut demo = Self {
            replicas: Vec::new(),
            dns,
            started: 0,
        };
        demo.scale(replicas)?;
        Ok(demo)
    }

    /// Adds or removes replicas (newest first) until there are `n`, then updates DNS.
    pub fn scale(&mut self, n: usize) -> anyhow::Result<()> {
        while self.replicas.len() > n {
            self.replicas.pop();
        }
        while self.replicas.len() < n {
            self.started += 1;
            let name = format!("go-demo.{}", self.started);
            let host = Host::new(&name)?;
            let link = host.link_to_root()?;
            let backend = DemoBackend::start(&host, &link, &name, PORT)?;
            self.replicas.push(Replica {
                backend,
                link,
                host,
            });
        }
        self.publish()
    }

    /// Publishes the running replicas as `tasks.go-demo`.
    pub fn publish(&self) -> anyhow::Result<()> {
        let addrs: Vec<Ipv4Addr> = self.replicas.iter().map(|r| r.link.host_addr).collect();
        self.dns.set("tasks.go-demo", &addrs)
    }

    /// A flowproxy that finds go-demo's replicas through this DNS.
    pub fn flowproxy(&self) -> crate::Flowproxy {
        crate::Flowproxy::new()
            .arg("--dns-server")
            .arg(self.dns_server().to_string())
    }

    /// The `--dns-server` argument for flowproxy.
    pub fn dns_server(&self) -> SocketAddr {
        self.dns.addr()
    }

    /// How many requests each replica has logged, by name.
    pub fn distribution(&self) -> Vec<(String, usize)> {
        self.replicas
            .iter()
            .map(|r| (r.backend.name().to_owned(), r.backend.request_count()))
            .collect()
    }
}

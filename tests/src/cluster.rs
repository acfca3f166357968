//! Proxy replicas as Swarm runs them, on this machine: each node a host (network namespace) on
//! one LAN (the overlay network), with Docker's DNS played by a dnsmasq on the node's
//! 127.0.0.11 that answers `tasks.proxy` with every replica, and flowproxy in `MODE=swarm` on
//! the node's ports 80/443/8080. The test itself joins the LAN, as an operator's curl would.
use std::{collections::BTreeMap, net::Ipv4Addr, sync::Mutex, time::Duration};

use anyhow::Context as _;

use crate::{
    CurlResponse, Dns, Flowproxy, Host, RunningProxy, curl, eventually, http::curl_on, lan::Lan,
};

/// The API port every replica listens on (peers are called on it).
pub const API_PORT: u16 = 8080;
/// How long a replica may take to report ready.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// One node: its host, address, DNS, and (when started) its proxy. Fields drop in order.
#[derive(Debug)]
pub struct Node {
    /// The running replica, if started.
    pub proxy: Option<RunningProxy>,
    /// The node's "Docker DNS".
    pub dns: Dns,
    /// The node's address on the LAN.
    pub addr: Ipv4Addr,
    /// The node's namespace.
    pub host: Host,
}

/// Nodes on a LAN, and the names their DNS servers answer.
#[derive(Debug)]
pub struct ProxyCluster {
    /// The nodes, in the order they were added.
    pub nodes: Vec<Node>,
    names: Mutex<BTreeMap<String, Vec<Ipv4Addr>>>,
    token: Option<String>,
    /// The test's own address on the LAN.
    pub root_addr: Ipv4Addr,
    /// Dropped last: removes every LAN veth.
    pub lan: Lan,
}

impl ProxyCluster {
    /// An empty LAN that the test has joined; `token` is sent with every API call it makes.
    pub fn new(token: Option<&str>) -> anyhow::Result<Self> {
        let lan = Lan::new()?;
        let root_addr = lan.join_root()?;
        Ok(Self {
            nodes: Vec::new(),
            names: Mutex::new(BTreeMap::new()),
            token: token.map(str::to_owned),
            root_addr,
            lan,
        })
    }

    /// Adds a node (no proxy yet) whose DNS already answers every published name.
    pub fn add_node(&mut self) -> anyhow::Result<usize> {
        let index = self.nodes.len();
        let host = Host::new(&format!("node-{index}"))?;
        let addr = self.lan.join(&host)?;
        let dns = Dns::start_in_host(&host)?;
        for (name, addrs) in self.names.lock().expect("not poisoned").iter() {
            dns.set(name, addrs)?;
        }
        self.nodes.push(Node {
            proxy: None,
            dns,
            addr,
            host,
        });
        Ok(index)
    }

    /// A host on the LAN without a proxy or DNS (a listener, a fake peer), and its address.
    pub fn add_plain_host(&self, label: &str) -> anyhow::Result<(Host, Ipv4Addr)> {
        let host = Host::new(label)?;
        let addr = self.lan.join(&host)?;
        Ok((host, addr))
    }

    /// Makes every node's DNS (and later nodes') answer `name` with `addrs`.
    pub fn publish(&self, name: &str, addrs: &[Ipv4Addr]) -> anyhow::Result<()> {
        self.names
            .lock()
            .expect("not poisoned")
            .insert(name.to_owned(), addrs.to_vec());
        for node in &self.nodes {
            node.dns.set(name, addrs)?;
        }
        Ok(())
    }

    /// Publishes `tasks.proxy` as these nodes' addresses.
    pub fn publish_tasks(&self, nodes: &[usize]) -> anyhow::Result<()> {
        let addrs: Vec<Ipv4Addr> = nodes.iter().map(|&i| self.nodes[i].addr).collect();
        self.publish("tasks.proxy", &addrs)
    }

    /// The flowproxy a Swarm service would run on node `index`: swarm mode, no BPF, Docker's
    /// ports, no label discovery (`DISCOVERY=none`), the cluster's token; `extra` flags come
    /// last.
    pub fn flowproxy(&self, index: usize) -> Flowproxy {
        let mut proxy = Flowproxy::new().in_host(&self.nodes[index].host);
        for arg in [
            "--mode",
            "swarm",
            "--no-ebpf",
            "--http-addr",
            "0.0.0.0:80",
            "--https-addr",
            "0.0.0.0:443",
            "--api-addr",
        ] {
            proxy = proxy.arg(arg);
        }
        proxy = proxy.arg(format!("0.0.0.0:{API_PORT}"));
        // As an env var, so that a test can still turn label discovery on with the flag.
        proxy = proxy.env("DISCOVERY", "none");
        if let Some(token) = &self.token {
            proxy = proxy.arg("--api-token").arg(token);
        }
        proxy
    }

    /// Starts `proxy` on node `index` (it must have been made by [`ProxyCluster::flowproxy`]).
    pub fn start(&mut self, index: usize, proxy: Flowproxy) -> anyhow::Result<()> {
        let running = proxy
            .start()
            .with_context(|| format!("starting the proxy on node {index}"))?;
        self.nodes[index].proxy = Some(running);
        Ok(())
    }

    /// Starts the default proxy on each of `nodes` and waits until every one is ready.
    pub fn start_all(&mut self, nodes: &[usize], extra: &[&str]) -> anyhow::Result<()> {
        for &i in nodes {
            let mut proxy = self.flowproxy(i);
            for arg in extra {
                proxy = proxy.arg(*arg);
            }
            self.start(i, proxy)?;
        }
        for &i in nodes {
            self.wait_ready(i)?;
        }
        Ok(())
    }

    /// Waits until node `index` answers ping with 200.
    pub fn wait_ready(&self, index: usize) -> anyhow::Result<()> {
        eventually(READY_TIMEOUT, || {
            let ping = self.api(index, "/v1/docker-flow-proxy/ping")?;
            anyhow::ensure!(ping.status == 200, "ping answers {}", ping.status);
            Ok(())
        })
        .with_context(|| format!("node {index}'s log:\n{}", self.log(index)))
    }

    /// `http://<node>:8080<path_and_query>`.
    pub fn api_url(&self, index: usize, path_and_query: &str) -> String {
        format!(
            "http://{}:{API_PORT}{path_and_query}",
            self.nodes[index].addr
        )
    }

    /// An API call to node `index` with curl, carrying the token if there is one.
    pub fn api(&self, index: usize, path_and_query: &str) -> anyhow::Result<CurlResponse> {
        self.api_with(index, path_and_query, &[])
    }

    /// [`ProxyCluster::api`] with more curl arguments (`-X PUT`, `--data-binary`, ...).
    pub fn api_with(
        &self,
        index: usize,
        path_and_query: &str,
        args: &[&str],
    ) -> anyhow::Result<CurlResponse> {
        let url = self.api_url(index, path_and_query);
        let auth = self
            .token
            .as_ref()
            .map(|t| format!("Authorization: Bearer {t}"));
        let mut all: Vec<&str> = vec!["--max-time", "20"];
        if let Some(auth) = &auth {
            all.extend(["-H", auth.as_str()]);
        }
        all.extend_from_slice(args);
        all.push(&url);
        curl(&all)
    }

    /// An API call to node `index` from inside the node (its own loopback), which works while
    /// the node is partitioned away from the LAN.
    pub fn api_on_node(&self, index: usize, path_and_query: &str) -> anyhow::Result<CurlResponse> {
        let url = format!("http://127.0.0.1:{API_PORT}{path_and_query}");
        let auth = self
            .token
            .as_ref()
            .map(|t| format!("Authorization: Bearer {t}"));
        let mut all: Vec<&str> = vec!["--max-time", "20"];
        if let Some(auth) = &auth {
            all.extend(["-H", auth.as_str()]);
        }
        all.push(&url);
        curl_on(&self.nodes[index].host, &all)
    }

    /// Cuts node `index` off the LAN (`false`) or connects it again (`true`).
    pub fn set_connected(&self, index: usize, connected: bool) -> anyhow::Result<()> {
        self.lan.set_plugged(self.nodes[index].addr, connected)
    }

    /// Node `index`'s configuration digest (`/v1/flowproxy/config/version`).
    pub fn config_hash(&self, index: usize) -> anyhow::Result<String> {
        let body = self.api(index, "/v1/flowproxy/config/version")?.body;
        let json: serde_json::Value = serde_json::from_str(&body)?;
        json["Version"]["Digest"]
            .as_str()
            .map(str::to_owned)
            .with_context(|| format!("no digest in {body}"))
    }

    /// The names of the services node `index` routes (`config?type=json`).
    pub fn services(&self, index: usize) -> anyhow::Result<Vec<String>> {
        let body = self
            .api(index, "/v1/docker-flow-proxy/config?type=json")?
            .body;
        let json: serde_json::Value =
            serde_json::from_str(&body).with_context(|| format!("not JSON: {body}"))?;
        Ok(json
            .as_object()
            .map(|o| o.keys().cloned().collect())
            .unwrap_or_default())
    }

    /// Node `index`'s log (empty if it has no proxy).
    pub fn log(&self, index: usize) -> String {
        self.nodes[index]
            .proxy
            .as_ref()
            .map(RunningProxy::log)
            .unwrap_or_default()
    }
}

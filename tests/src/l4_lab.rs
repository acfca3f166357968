//! The TCP-mode fast-path topology: a client host, a proxy host with a client-facing and a
//! backend-facing veth, and three backend hosts behind a bridge (a switch host), each running a
//! small TCP server. flowproxy runs inside the proxy host.
//!
//! Interfaces are left as `ip link add ... type veth` makes them, the way Docker makes container
//! interfaces: TX checksum offload and TSO on, GRO off, so senders hand over partial checksums
//! and GSO trains. That is the case that must work. [`L4Lab::start_tuned`] is the extra case
//! the fast path was first tested in: full checksums from the senders (TX offload off) and GRO
//! on the peers (which gives a veth NAPI, so native XDP redirects into it are delivered).
use std::{
    io::{Read, Write},
    net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread::JoinHandle,
    time::Duration,
};

use anyhow::{Context as _, bail};

use crate::{Dns, Flowproxy, Host, Ids, RunningProxy, cmd::run};

/// The proxy's client-facing address.
pub const PROXY_ADDR: Ipv4Addr = Ipv4Addr::new(198, 18, 100, 1);
/// The client's address.
pub const CLIENT_ADDR: Ipv4Addr = Ipv4Addr::new(198, 18, 100, 2);
/// The proxy's backend-facing address.
pub const PROXY_BACKEND_ADDR: Ipv4Addr = Ipv4Addr::new(198, 18, 200, 1);
/// The proxy's client-facing IPv6 address (beside the IPv4 one, on the same veth).
pub const PROXY_ADDR6: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0x100, 0, 0, 0, 0, 1);
/// The client's IPv6 address.
pub const CLIENT_ADDR6: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0x100, 0, 0, 0, 0, 2);
/// The proxy's backend-facing IPv6 address.
pub const PROXY_BACKEND_ADDR6: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0x200, 0, 0, 0, 0, 1);
/// The name whose AAAA records are the backends' IPv6 addresses (`tasks.db` has their IPv4).
pub const TASKS_V6: &str = "tasks.db6";
/// The port the backends serve.
pub const BACKEND_PORT: u16 = 5432;

/// One of the lab's backend servers.
pub struct TcpBackend {
    /// Its name (what `who` answers).
    pub name: String,
    /// Its address.
    pub addr: Ipv4Addr,
    /// Its IPv6 address.
    pub addr6: Ipv6Addr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<anyhow::Result<()>>>,
    /// The backend's host (dropped after the server stops).
    pub host: Host,
}

impl Drop for TcpBackend {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Which interfaces flowproxy is given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attach {
    /// Both, by name.
    Both,
    /// Only the backend-facing one: clients arrive where no program runs.
    BackendSideOnly,
    /// `--interface auto`.
    Auto,
}

/// The whole topology, torn down on drop (proxy first).
pub struct L4Lab {
    /// flowproxy, in the proxy host.
    pub proxy: RunningProxy,
    /// DNS in the proxy host: `tasks.db` lists the backends.
    pub dns: Dns,
    /// The backends.
    pub backends: Vec<TcpBackend>,
    /// The client host.
    pub client: Host,
    /// The proxy host.
    pub proxy_host: Host,
    /// The switch host.
    _lan: Host,
    /// The proxy's client-facing and backend-facing interfaces.
    pub interfaces: (String, String),
}

fn veth(a: &Host, a_if: &str, b: &Host, b_if: &str) -> anyhow::Result<()> {
    run(
        "ip",
        &[
            "link", "add", a_if, "netns", &a.name, "type", "veth", "peer", "name", b_if, "netns",
            &b.name,
        ],
    )?;
    Ok(())
}

fn ip(host: &Host, args: &[&str]) -> anyhow::Result<()> {
    let mut all = vec!["-n", host.name.as_str()];
    all.extend_from_slice(args);
    run("ip", &all)?;
    Ok(())
}

fn ethtool(host: &Host, args: &[&str]) -> anyhow::Result<()> {
    host.run("ethtool", args)
        .context("ethtool (apt-get install ethtool)")?;
    Ok(())
}

impl L4Lab {
    /// Builds the topology with three backends, and starts flowproxy in the proxy host with
    /// `args` added to its command line.
    pub fn start(args: &[&str]) -> anyhow::Result<Self> {
        Self::start_with(None, args)
    }

    /// As [`L4Lab::start`], running the flowproxy binary `bin` when given.
    pub fn start_with(bin: Option<&std::path::Path>, args: &[&str]) -> anyhow::Result<Self> {
        Self::build(bin, args, false, Attach::Both)
    }

    /// As [`L4Lab::start`] with the offloads tuned for XDP: TX checksum offload off on every
    /// sender, GRO on where frames are redirected to.
    pub fn start_tuned(args: &[&str]) -> anyhow::Result<Self> {
        Self::build(None, args, true, Attach::Both)
    }

    /// As [`L4Lab::start`], with flowproxy told `--interface` as `attach` says.
    pub fn start_attached(attach: Attach, args: &[&str]) -> anyhow::Result<Self> {
        Self::build(None, args, false, attach)
    }

    fn build(
        bin: Option<&std::path::Path>,
        args: &[&str],
        tuned: bool,
        attach: Attach,
    ) -> anyhow::Result<Self> {
        let proxy_host = Host::new("proxy")?;
        let client = Host::new("client")?;
        let lan = Host::new("switch")?;
        let ids = Ids::next();
        let (p_client, c_if) = (ids.veth('c'), ids.veth('k'));
        let (p_back, lan_p) = (ids.veth('b'), ids.veth('s'));
        veth(&proxy_host, &p_client, &client, &c_if)?;
        veth(&proxy_host, &p_back, &lan, &lan_p)?;
        ip(
            &proxy_host,
            &["addr", "add", &format!("{PROXY_ADDR}/24"), "dev", &p_client],
        )?;
        ip(
            &proxy_host,
            &[
                "addr",
                "add",
                &format!("{PROXY_BACKEND_ADDR}/24"),
                "dev",
                &p_back,
            ],
        )?;
        ip(
            &client,
            &["addr", "add", &format!("{CLIENT_ADDR}/24"), "dev", &c_if],
        )?;
        // IPv6 beside IPv4 everywhere (no duplicate address detection: usable at once).
        for (host, addr, dev) in [
            (&proxy_host, PROXY_ADDR6, &p_client),
            (&proxy_host, PROXY_BACKEND_ADDR6, &p_back),
            (&client, CLIENT_ADDR6, &c_if),
        ] {
            ip(
                host,
                &["addr", "add", &format!("{addr}/64"), "dev", dev, "nodad"],
            )?;
        }
        ip(&lan, &["link", "add", "br0", "type", "bridge"])?;
        ip(&lan, &["link", "set", "br0", "up"])?;
        ip(&lan, &["link", "set", &lan_p, "master", "br0", "up"])?;
        for (host, dev) in [
            (&proxy_host, &p_client),
            (&proxy_host, &p_back),
            (&client, &c_if),
        ] {
            ip(host, &["link", "set", dev, "up"])?;
        }
        if tuned {
            // Full checksums from the client; NAPI on the peers that receive redirected frames.
            ethtool(&client, &["-K", &c_if, "tx", "off", "gro", "on"])?;
            ethtool(&lan, &["-K", &lan_p, "gro", "on"])?;
        }
        let mut backends = Vec::new();
        for i in 0..3u8 {
            let host = Host::new(&format!("backend{i}"))?;
            let ids = Ids::next();
            let (b_if, lan_if) = (ids.veth('e'), ids.veth('l'));
            veth(&host, &b_if, &lan, &lan_if)?;
            let addr = Ipv4Addr::new(198, 18, 200, 11 + i);
            ip(&host, &["addr", "add", &format!("{addr}/24"), "dev", &b_if])?;
            let addr6 = Ipv6Addr::new(0x2001, 2, 0x200, 0, 0, 0, 0, 0x11 + u16::from(i));
            ip(
                &host,
                &["addr", "add", &format!("{addr6}/64"), "dev", &b_if, "nodad"],
            )?;
            ip(&host, &["link", "set", &b_if, "up"])?;
            ip(&lan, &["link", "set", &lan_if, "master", "br0", "up"])?;
            if tuned {
                ethtool(&host, &["-K", &b_if, "tx", "off"])?;
            }
            backends.push(TcpBackend::start(
                host,
                (addr, addr6),
                &format!("backend{i}"),
            )?);
        }
        let dns = Dns::start_in_host(&proxy_host)?;
        let addrs: Vec<Ipv4Addr> = backends.iter().map(|b| b.addr).collect();
        dns.set("tasks.db", &addrs)?;
        let addrs6: Vec<Ipv6Addr> = backends.iter().map(|b| b.addr6).collect();
        dns.set_v6(TASKS_V6, &addrs6)?;
        // Routes through the proxy host, so client and backends can also talk directly (the
        // benchmark's baseline), forwarded by the proxy host's kernel.
        ip(
            &client,
            &[
                "route",
                "add",
                "198.18.200.0/24",
                "via",
                &PROXY_ADDR.to_string(),
            ],
        )?;
        for b in &backends {
            ip(
                &b.host,
                &[
                    "route",
                    "add",
                    "198.18.100.0/24",
                    "via",
                    &PROXY_BACKEND_ADDR.to_string(),
                ],
            )?;
        }
        let interfaces = (p_client, p_back);
        let proxy = proxy_command(&proxy_host, bin, attach, &interfaces, &dns, args).start()?;
        Ok(Self {
            proxy,
            dns,
            backends,
            client,
            proxy_host,
            _lan: lan,
            interfaces,
        })
    }

    /// Stops flowproxy and starts a new one in the proxy host, on both interfaces, with `args`
    /// (running `bin` when given); its services start empty.
    pub fn restart_proxy(
        &mut self,
        bin: Option<&std::path::Path>,
        args: &[&str],
    ) -> anyhow::Result<()> {
        self.proxy.terminate()?;
        let proxy = proxy_command(
            &self.proxy_host,
            bin,
            Attach::Both,
            &self.interfaces,
            &self.dns,
            args,
        );
        self.proxy = proxy.start()?;
        Ok(())
    }

    /// Configures the TCP-mode service `db` on `port`.
    pub fn configure(&self, port: u16, extra: &str) -> anyhow::Result<()> {
        self.configure_service("db", port, extra)
    }

    /// Configures the TCP-mode service `name` (its replicas: `tasks.<name>`) on `port`.
    pub fn configure_service(&self, name: &str, port: u16, extra: &str) -> anyhow::Result<()> {
        let answer = self.proxy.api(&format!(
            "/v1/docker-flow-proxy/reconfigure?serviceName={name}&reqMode=tcp&srcPort={port}&port={BACKEND_PORT}{extra}"
        ))?;
        if answer.status != 200 {
            bail!("reconfigure: {} {}", answer.status, answer.body);
        }
        Ok(())
    }

    /// The service's address as the client reaches it.
    pub fn service(port: u16) -> SocketAddr {
        SocketAddr::from((PROXY_ADDR, port))
    }

    /// Opens a connection from the client host to `port` of the proxy (its socket lives in
    /// the client's namespace even when used from here).
    pub fn connect(&self, port: u16) -> anyhow::Result<TcpStream> {
        self.connect_to(Self::service(port))
    }

    /// Opens a connection from the client host to `addr` (IPv4 or IPv6).
    pub fn connect_to(&self, addr: SocketAddr) -> anyhow::Result<TcpStream> {
        self.client
            .enter(|| TcpStream::connect_timeout(&addr, Duration::from_secs(5)))?
            .with_context(|| format!("connecting to {addr}"))
    }

    /// Asks the backend behind a new connection for its name.
    pub fn who(&self, port: u16) -> anyhow::Result<String> {
        self.who_at(Self::service(port))
    }

    /// [`Self::who`] over a connection to `addr`.
    pub fn who_at(&self, addr: SocketAddr) -> anyhow::Result<String> {
        let mut s = self.connect_to(addr)?;
        s.set_read_timeout(Some(Duration::from_secs(5)))?;
        s.write_all(b"W")?;
        let mut name = String::new();
        s.read_to_string(&mut name)?;
        Ok(name.trim().to_owned())
    }

    /// The fast path's stats (`flowproxy stats --json`, its `l4` part).
    pub fn l4_stats(&self) -> anyhow::Result<serde_json::Value> {
        Ok(self.proxy.stats_json()?["l4"].clone())
    }
}

/// flowproxy for the proxy host: the interfaces `attach` says, the lab's DNS, then `args`.
fn proxy_command(
    proxy_host: &Host,
    bin: Option<&std::path::Path>,
    attach: Attach,
    (p_client, p_back): &(String, String),
    dns: &Dns,
    args: &[&str],
) -> Flowproxy {
    let mut proxy = Flowproxy::new().in_host(proxy_host);
    if let Some(bin) = bin {
        proxy = proxy.binary(bin);
    }
    proxy = match attach {
        Attach::Both => proxy.interface(p_client).interface(p_back),
        Attach::BackendSideOnly => proxy.interface(p_back),
        Attach::Auto => proxy.interface("auto"),
    };
    // TCP-mode listeners bind the HTTP address's IP: IPv4 unless a test asks for `[::]`.
    if !args.contains(&"--http-addr") {
        proxy = proxy.arg("--http-addr").arg("0.0.0.0:0");
    }
    let mut proxy = proxy
        .arg("--dns-server")
        .arg(dns.addr().to_string())
        .arg("--dns-refresh")
        .arg("1");
    for a in args {
        proxy = proxy.arg(*a);
    }
    proxy
}

/// The bytes a `S` request streams: a xorshift64 sequence, so both ends can make it.
pub fn pattern(len: u64, mut sink: impl FnMut(&[u8])) {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut buf = vec![0u8; 64 * 1024];
    let mut left = len;
    while left > 0 {
        for chunk in buf.chunks_exact_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            chunk.copy_from_slice(&x.to_le_bytes());
        }
        let n = left.min(buf.len() as u64) as usize;
        sink(&buf[..n]);
        left -= n as u64;
    }
}

impl TcpBackend {
    fn start(host: Host, (addr, addr6): (Ipv4Addr, Ipv6Addr), name: &str) -> anyhow::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        // `[::]` takes IPv4 too (IPv4-mapped), as net.ipv6.bindv6only is 0 by default.
        let listener =
            host.enter(|| TcpListener::bind((Ipv6Addr::UNSPECIFIED, BACKEND_PORT)))??;
        listener.set_nonblocking(true)?;
        let thread = {
            let (stop, name) = (Arc::clone(&stop), name.to_owned());
            std::thread::spawn(move || serve(listener, &name, &stop))
        };
        Ok(Self {
            name: name.to_owned(),
            addr,
            addr6,
            stop,
            thread: Some(thread),
            host,
        })
    }
}

fn serve(listener: TcpListener, name: &str, stop: &AtomicBool) -> anyhow::Result<()> {
    while !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((conn, _)) => {
                let name = name.to_owned();
                std::thread::spawn(move || handle(conn, &name));
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(5))
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// `W`: answers the name. `S` + u64 (LE): streams that many pattern bytes. `E`: answers the
/// name, then echoes until EOF.
fn handle(mut conn: TcpStream, name: &str) -> std::io::Result<()> {
    conn.set_nonblocking(false)?;
    let mut cmd = [0u8; 1];
    conn.read_exact(&mut cmd)?;
    match cmd[0] {
        b'W' => conn.write_all(format!("{name}\n").as_bytes()),
        b'S' => {
            let mut len = [0u8; 8];
            conn.read_exact(&mut len)?;
            let mut result = Ok(());
            pattern(u64::from_le_bytes(len), |chunk| {
                if result.is_ok() {
                    result = conn.write_all(chunk);
                }
            });
            result
        }
        b'E' => {
            conn.write_all(format!("{name}\n").as_bytes())?;
            let mut buf = [0u8; 4096];
            loop {
                let n = conn.read(&mut buf)?;
                if n == 0 {
                    return Ok(());
                }
                conn.write_all(&buf[..n])?;
            }
        }
        _ => Ok(()),
    }
}

//! A real DNS server (dnsmasq) on 127.0.0.1 that answers the names a test sets, the way Swarm's
//! embedded DNS answers `tasks.<service>` with one A record per running task.
use std::{
    collections::BTreeMap,
    fs::File,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{
        Mutex,
        atomic::{AtomicU16, Ordering},
    },
    time::Duration,
};

use anyhow::{Context as _, bail, ensure};

use crate::{Host, Ids, cmd::die_with_parent, eventually, netns::in_netns};

/// How long dnsmasq may take to answer its first query, or to serve a new hosts file.
const TIMEOUT: Duration = Duration::from_secs(10);
/// Attempts at finding a free port (another process may take the one we picked first).
const START_ATTEMPTS: usize = 5;

/// A running dnsmasq that answers only from its own hosts file (TTL 1 s) and returns NXDOMAIN
/// for every other name. Stopped, and its files removed, on drop.
#[derive(Debug)]
pub struct Dns {
    child: Child,
    dir: PathBuf,
    addr: SocketAddr,
    /// The host it runs in (`None`: the root namespace).
    netns: Option<String>,
    names: Mutex<BTreeMap<String, Vec<IpAddr>>>,
}

/// Docker's embedded DNS address, which a container reaches on its own loopback.
pub const DOCKER_DNS: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 11);

impl Dns {
    /// Starts dnsmasq on a free port of 127.0.0.1 with no names.
    pub fn start() -> anyhow::Result<Self> {
        let dir = std::env::temp_dir().join(format!("{}-dns", Ids::next().netns()));
        let mut last_error = None;
        for _ in 0..START_ATTEMPTS {
            let port = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))?
                .local_addr()?
                .port();
            match Self::start_in(&dir, None, SocketAddr::from((Ipv4Addr::LOCALHOST, port))) {
                Ok(dns) => return Ok(dns),
                Err(e) if format!("{e:#}").contains("Address already in use") => {
                    last_error = Some(e);
                }
                Err(e) => return Err(e),
            }
        }
        Err(last_error.expect("at least one attempt"))
    }

    /// Starts dnsmasq inside `host` on 127.0.0.11:53, where Docker's embedded DNS answers a
    /// container, so that a flowproxy in `MODE=swarm` there finds it without `--dns-server`.
    pub fn start_in_host(host: &Host) -> anyhow::Result<Self> {
        host.run(
            "ip",
            &["addr", "add", &format!("{DOCKER_DNS}/32"), "dev", "lo"],
        )?;
        let dir = std::env::temp_dir().join(format!("{}-dns", Ids::next().netns()));
        Self::start_in(&dir, Some(host), SocketAddr::from((DOCKER_DNS, 53)))
    }

    /// One attempt; a failed one removes `dir` (the drop of its `Dns`), so each makes it anew.
    fn start_in(dir: &Path, host: Option<&Host>, addr: SocketAddr) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let hosts = dir.join("hosts");
        std::fs::write(&hosts, "")?;
        let log = File::create(dir.join("dnsmasq.log"))?;
        let mut cmd = match host {
            Some(host) => host.command("dnsmasq"),
            None => Command::new("dnsmasq"),
        };
        let child = die_with_parent(&mut cmd)
            .args([
                "--keep-in-foreground",
                "--conf-file=/dev/null",
                "--no-resolv",
                "--no-hosts",
                "--no-poll",
                "--bind-interfaces",
                // Names not in the hosts file are NXDOMAIN, as in Docker, rather than REFUSED.
                "--local=/#/",
                "--local-ttl=1",
                "--user=root",
                "--log-facility=-",
                "--log-queries",
            ])
            .arg(format!("--listen-address={}", addr.ip()))
            .arg(format!("--port={}", addr.port()))
            .arg(format!("--addn-hosts={}", hosts.display()))
            .arg(format!("--pid-file={}", dir.join("dnsmasq.pid").display()))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting dnsmasq (install it with `apt-get install dnsmasq-base`)")?;
        let mut dns = Self {
            child,
            dir: dir.to_owned(),
            addr,
            netns: host.map(|h| h.name.clone()),
            names: Mutex::new(BTreeMap::new()),
        };
        let started = eventually(TIMEOUT, || {
            if let Some(status) = dns.child.try_wait()? {
                return Ok(Err(status));
            }
            // Any answer, even NXDOMAIN, means dnsmasq is serving.
            dns.lookup("flowproxy-harness.invalid")?;
            Ok(Ok(()))
        });
        match started {
            Ok(Ok(())) => Ok(dns),
            Ok(Err(status)) => bail!("dnsmasq exited at start ({status}):\n{}", dns.log()),
            Err(e) => Err(e.context(format!("dnsmasq never answered:\n{}", dns.log()))),
        }
    }

    /// Where the server listens (UDP and TCP).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// What dnsmasq has logged, queries included.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("dnsmasq.log")).unwrap_or_default()
    }

    /// Makes `name` resolve to exactly `addrs` (no addresses: NXDOMAIN), keeping the other names,
    /// and waits until the server answers so.
    pub fn set(&self, name: &str, addrs: &[Ipv4Addr]) -> anyhow::Result<()> {
        let ips: Vec<IpAddr> = addrs.iter().copied().map(IpAddr::V4).collect();
        self.set_ips(name, &ips)
    }

    /// As [`Self::set`] with IPv6 addresses (AAAA records).
    pub fn set_v6(&self, name: &str, addrs: &[Ipv6Addr]) -> anyhow::Result<()> {
        let ips: Vec<IpAddr> = addrs.iter().copied().map(IpAddr::V6).collect();
        self.set_ips(name, &ips)
    }

    fn set_ips(&self, name: &str, addrs: &[IpAddr]) -> anyhow::Result<()> {
        let mut names = self
            .names
            .lock()
            .expect("no test panics while holding the names");
        if addrs.is_empty() {
            names.remove(name);
        } else {
            names.insert(name.to_owned(), addrs.to_vec());
        }
        let hosts = self.dir.join("hosts");
        let staged = self.dir.join("hosts.new");
        std::fs::write(&staged, render_hosts(&names))?;
        // A rename, so that dnsmasq never reads half a file.
        std::fs::rename(&staged, &hosts)?;
        // Safety: kill(2) on our own child's pid; SIGHUP makes dnsmasq re-read its hosts files.
        if unsafe { libc::kill(self.child.id() as i32, libc::SIGHUP) } != 0 {
            bail!("signalling dnsmasq: {}", std::io::Error::last_os_error());
        }
        let mut expected = addrs.to_vec();
        expected.sort();
        expected.dedup();
        eventually(TIMEOUT, || {
            let mut answered: Vec<IpAddr> =
                self.lookup(name)?.into_iter().map(IpAddr::V4).collect();
            answered.extend(self.lookup_v6(name)?.into_iter().map(IpAddr::V6));
            answered.sort();
            ensure!(
                answered == expected,
                "dnsmasq answers {name} with {answered:?}, expected {expected:?}"
            );
            Ok(())
        })
        .with_context(|| format!("dnsmasq log:\n{}", self.log()))
    }

    /// Makes `name` unknown (NXDOMAIN) again.
    pub fn remove(&self, name: &str) -> anyhow::Result<()> {
        self.set(name, &[])
    }

    /// Asks the server for `name`'s A records, as a resolver would (from its host).
    pub fn lookup(&self, name: &str) -> anyhow::Result<Vec<Ipv4Addr>> {
        let v4 = |ips: Vec<IpAddr>| {
            ips.into_iter()
                .filter_map(|ip| match ip {
                    IpAddr::V4(v4) => Some(v4),
                    IpAddr::V6(_) => None,
                })
                .collect()
        };
        Ok(v4(self.query(name, packet::TYPE_A)?))
    }

    /// Asks the server for `name`'s AAAA records.
    pub fn lookup_v6(&self, name: &str) -> anyhow::Result<Vec<Ipv6Addr>> {
        Ok(self
            .query(name, packet::TYPE_AAAA)?
            .into_iter()
            .filter_map(|ip| match ip {
                IpAddr::V6(v6) => Some(v6),
                IpAddr::V4(_) => None,
            })
            .collect())
    }

    fn query(&self, name: &str, rtype: u16) -> anyhow::Result<Vec<IpAddr>> {
        match &self.netns {
            Some(netns) => in_netns(netns, || query(self.addr, name, rtype))?,
            None => query(self.addr, name, rtype),
        }
    }
}

impl Drop for Dns {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// The hosts file for a set of names: one `addr name` line per address.
fn render_hosts(names: &BTreeMap<String, Vec<IpAddr>>) -> String {
    names
        .iter()
        .flat_map(|(name, addrs)| addrs.iter().map(move |addr| format!("{addr} {name}\n")))
        .collect()
}

/// Sends one A query for `name` over UDP and returns the addresses answered (none for NXDOMAIN).
pub fn query_a(server: SocketAddr, name: &str) -> anyhow::Result<Vec<Ipv4Addr>> {
    Ok(query(server, name, packet::TYPE_A)?
        .into_iter()
        .filter_map(|ip| match ip {
            IpAddr::V4(v4) => Some(v4),
            IpAddr::V6(_) => None,
        })
        .collect())
}

/// Sends one query of type `rtype` (A or AAAA) for `name` over UDP; the addresses answered.
fn query(server: SocketAddr, name: &str, rtype: u16) -> anyhow::Result<Vec<IpAddr>> {
    let socket = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))?;
    socket.set_read_timeout(Some(Duration::from_secs(1)))?;
    socket.connect(server)?;
    static NEXT_ID: AtomicU16 = AtomicU16::new(0);
    let id = (std::process::id() as u16).wrapping_add(NEXT_ID.fetch_add(1, Ordering::Relaxed));
    socket.send(&packet::query(id, name, rtype)?)?;
    let mut buf = [0u8; 1500];
    let len = socket
        .recv(&mut buf)
        .with_context(|| format!("no answer from {server} for {name}"))?;
    packet::answer(id, &buf[..len])
}

/// Just enough of the DNS wire format (RFC 1035, RFC 3596) for A and AAAA queries and their
/// answers.
mod packet {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

    use anyhow::{Context as _, bail, ensure};

    /// An IPv4 address record.
    pub const TYPE_A: u16 = 1;
    /// An IPv6 address record.
    pub const TYPE_AAAA: u16 = 28;
    const CLASS_IN: u16 = 1;
    const RCODE_NXDOMAIN: u8 = 3;

    /// A recursive query for the A records of `name`.
    #[cfg(test)]
    pub fn a_query(id: u16, name: &str) -> anyhow::Result<Vec<u8>> {
        query(id, name, TYPE_A)
    }

    /// A recursive query for the `rtype` records of `name`.
    pub fn query(id: u16, name: &str, rtype: u16) -> anyhow::Result<Vec<u8>> {
        let mut out = Vec::with_capacity(18 + name.len());
        out.extend_from_slice(&id.to_be_bytes());
        out.extend_from_slice(&[0x01, 0x00]); // standard query, recursion desired
        out.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]); // one question
        for label in name.trim_end_matches('.').split('.') {
            ensure!(
                !label.is_empty() && label.len() < 64,
                "bad DNS name {name:?}"
            );
            out.push(label.len() as u8);
            out.extend_from_slice(label.as_bytes());
        }
        out.push(0);
        out.extend_from_slice(&rtype.to_be_bytes());
        out.extend_from_slice(&CLASS_IN.to_be_bytes());
        Ok(out)
    }

    /// The A records of a response to the query `id`.
    #[cfg(test)]
    pub fn a_answer(id: u16, msg: &[u8]) -> anyhow::Result<Vec<Ipv4Addr>> {
        Ok(answer(id, msg)?
            .into_iter()
            .filter_map(|ip| match ip {
                IpAddr::V4(v4) => Some(v4),
                IpAddr::V6(_) => None,
            })
            .collect())
    }

    /// The A and AAAA records of a response to the query `id`; NXDOMAIN is no records, other
    /// errors fail.
    pub fn answer(id: u16, msg: &[u8]) -> anyhow::Result<Vec<IpAddr>> {
        let header = msg
            .get(..12)
            .context("DNS response shorter than its header")?;
        ensure!(
            u16::from_be_bytes([header[0], header[1]]) == id,
            "answer to another query"
        );
        ensure!(header[2] & 0x80 != 0, "not a response");
        ensure!(header[2] & 0x02 == 0, "truncated response");
        match header[3] & 0x0f {
            0 => {}
            RCODE_NXDOMAIN => return Ok(Vec::new()),
            rcode => bail!("DNS error rcode {rcode}"),
        }
        let questions = u16::from_be_bytes([header[4], header[5]]);
        let answers = u16::from_be_bytes([header[6], header[7]]);
        let mut at = 12;
        for _ in 0..questions {
            at = skip_name(msg, at)? + 4;
        }
        let mut addrs = Vec::new();
        for _ in 0..answers {
            at = skip_name(msg, at)?;
            let fixed = msg.get(at..at + 10).context("answer cut short")?;
            let rtype = u16::from_be_bytes([fixed[0], fixed[1]]);
            let class = u16::from_be_bytes([fixed[2], fixed[3]]);
            let rdlen = usize::from(u16::from_be_bytes([fixed[8], fixed[9]]));
            let data = msg
                .get(at + 10..at + 10 + rdlen)
                .context("record data cut short")?;
            if rtype == TYPE_A && class == CLASS_IN {
                let octets: [u8; 4] = data.try_into().context("A record is not 4 bytes")?;
                addrs.push(IpAddr::V4(Ipv4Addr::from(octets)));
            }
            if rtype == TYPE_AAAA && class == CLASS_IN {
                let octets: [u8; 16] = data.try_into().context("AAAA record is not 16 bytes")?;
                addrs.push(IpAddr::V6(Ipv6Addr::from(octets)));
            }
            at += 10 + rdlen;
        }
        Ok(addrs)
    }

    /// The offset just past the name at `at`, which may end in a compression pointer.
    fn skip_name(msg: &[u8], mut at: usize) -> anyhow::Result<usize> {
        loop {
            let len = *msg.get(at).context("name cut short")?;
            match len {
                0 => return Ok(at + 1),
                l if l & 0xc0 == 0xc0 => return Ok(at + 2),
                l => at += 1 + usize::from(l),
            }
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        const QUERY: &[u8] = b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\
            \x05tasks\x07go-demo\x00\x00\x01\x00\x01";

        #[test]
        fn a_query_is_encoded_as_on_the_wire() {
            assert_eq!(a_query(0x1234, "tasks.go-demo").unwrap(), QUERY);
            assert_eq!(a_query(0x1234, "tasks.go-demo.").unwrap(), QUERY);
            assert!(a_query(1, "a..b").is_err());
        }

        fn response(rcode: u8, records: &[[u8; 4]]) -> Vec<u8> {
            let mut msg = QUERY.to_vec();
            msg[2] |= 0x80;
            msg[3] = 0x80 | rcode;
            msg[7] = records.len() as u8;
            for ip in records {
                // A pointer to the question's name, type A, class IN, TTL 1, 4 bytes.
                msg.extend_from_slice(b"\xc0\x0c\x00\x01\x00\x01\x00\x00\x00\x01\x00\x04");
                msg.extend_from_slice(ip);
            }
            msg
        }

        #[test]
        fn answers_with_compressed_names_are_decoded() {
            let msg = response(0, &[[198, 18, 0, 2], [198, 18, 0, 6]]);
            assert_eq!(
                a_answer(0x1234, &msg).unwrap(),
                [Ipv4Addr::new(198, 18, 0, 2), Ipv4Addr::new(198, 18, 0, 6)]
            );
        }

        #[test]
        fn nxdomain_is_no_addresses_and_other_errors_fail() {
            assert!(a_answer(0x1234, &response(3, &[])).unwrap().is_empty());
            assert!(a_answer(0x1234, &response(5, &[])).is_err());
            assert!(a_answer(0x4321, &response(0, &[])).is_err());
        }

        #[test]
        fn a_cut_short_answer_is_an_error_not_a_panic() {
            let msg = response(0, &[[10, 0, 0, 1]]);
            for len in 0..msg.len() {
                let _ = a_answer(0x1234, &msg[..len]);
            }
            assert!(a_answer(0x1234, &msg[..msg.len() - 1]).is_err());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hosts_file_has_one_line_per_address() {
        let names = BTreeMap::from([
            (
                "tasks.go-demo".to_owned(),
                vec![
                    IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
                    IpAddr::V6("2001:2::1".parse().unwrap()),
                ],
            ),
            (
                "other".to_owned(),
                vec![IpAddr::V4(Ipv4Addr::new(10, 0, 0, 9))],
            ),
        ]);
        assert_eq!(
            render_hosts(&names),
            "10.0.0.9 other\n10.0.0.1 tasks.go-demo\n2001:2::1 tasks.go-demo\n"
        );
    }
}

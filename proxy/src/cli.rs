//! Command-line flags. Every flag also reads an environment variable, the way Swarm services
//! are configured (`-e NAME=value`).
use std::{net::SocketAddr, path::PathBuf, time::Duration};

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::{
    dataplane::{FastPathMode, FastPathSettings},
    l7::{ConnSettings, HeaderLimits, NeverAllowed, RequestLimits, UpgradeAllowList},
};

/// flowproxy: a reverse proxy for Docker Swarm with an eBPF data plane.
#[derive(Debug, Parser)]
#[command(version, about, args_conflicts_with_subcommands = true)]
pub struct Cli {
    /// What to do; without a command, flowproxy runs the proxy.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Settings of the proxy itself.
    #[command(flatten)]
    pub run: RunArgs,
    /// Where the data plane's maps are pinned (shared by the proxy and `stats`).
    #[arg(long, env = "BPFFS_DIR", default_value = proxy_common::DEFAULT_PIN_DIR, global = true)]
    pub bpffs_dir: PathBuf,
    /// Log format.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,
}

/// Subcommands besides running the proxy.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the data plane's counters, read straight from the pinned maps (or, when none
    /// are pinned, the request counts the API exports).
    Stats(StatsArgs),
    /// Exit 0 if the local proxy's API answers its ping with 200, else 1 with the reason
    /// (the image's Docker `HEALTHCHECK`).
    Healthcheck(HealthcheckArgs),
}

/// Flags of `flowproxy healthcheck`.
#[derive(Debug, Args)]
pub struct HealthcheckArgs {
    /// The API to ask; without it, the one at --api-addr (API_ADDR; a wildcard address is
    /// asked on loopback), by default http://127.0.0.1:8080.
    #[arg(long, env = "API_URL")]
    pub api_url: Option<String>,
    /// Seconds the answer may take before the proxy counts as unhealthy.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub timeout: u64,
}

/// Flags of `flowproxy stats`.
#[derive(Debug, Args)]
pub struct StatsArgs {
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// The running proxy's API, asked for per-replica request counts; when it does not answer,
    /// what the maps hold is printed and the command exits 1.
    #[arg(long, env = "API_URL", default_value = "http://127.0.0.1:8080")]
    pub api_url: String,
}

/// Flags of the running proxy.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Address of the HTTP proxy listener.
    #[arg(long, env = "HTTP_ADDR", default_value = "0.0.0.0:80")]
    pub http_addr: SocketAddr,
    /// Address of the HTTPS listener (TLS with certificates chosen by SNI).
    #[arg(long, env = "HTTPS_ADDR", default_value = "0.0.0.0:443")]
    pub https_addr: SocketAddr,
    /// Directory of PEM certificates (`NAME.pem` bundles, or `NAME.crt` with `NAME.key`).
    #[arg(long, env = "CERTS_DIR", default_value = "/certs")]
    pub certs_dir: PathBuf,
    /// Where Docker secrets are mounted (`cert-*` and `cert_*` are certificates).
    #[arg(long, env = "SECRETS_DIR", default_value = "/run/secrets")]
    pub secrets_dir: PathBuf,
    /// The certificate for clients whose SNI name no certificate covers (default: the first by name).
    #[arg(long, env = "DEFAULT_CERT")]
    pub default_cert: Option<String>,
    /// Redirect every plain-HTTP request to HTTPS (per service: `httpsOnly=true`). Takes Go's
    /// spellings (`true`, `1`, `t`, `FALSE`, ...), as DFP does.
    #[arg(long, env = "HTTPS_ONLY", num_args = 0..=1, default_value = "false", default_missing_value = "true", value_parser = go_bool)]
    pub https_only: bool,
    /// Basic-auth users for every service without its own `users` (`user:password,...`); DFP's
    /// `USERS`. Without it, the Docker secret `dfp_users` is read if present.
    #[arg(long, env = "USERS", hide_env_values = true)]
    pub users: Option<String>,
    /// Configure only services whose `proxyInstanceName` is `--proxy-instance-name` (DFP's
    /// `FILTER_PROXY_INSTANCE_NAME`), for several proxies on one Swarm. Go's bool spellings.
    #[arg(long, env = "FILTER_PROXY_INSTANCE_NAME", num_args = 0..=1, default_value = "false", default_missing_value = "true", value_parser = go_bool)]
    pub filter_proxy_instance_name: bool,
    /// This proxy's instance name (DFP's `PROXY_INSTANCE_NAME`), matched without case against
    /// services' `proxyInstanceName` when `--filter-proxy-instance-name` is on.
    #[arg(long, env = "PROXY_INSTANCE_NAME", default_value = "docker-flow")]
    pub proxy_instance_name: String,
    /// DFP's static services (`DFP_SERVICE_*`), gathered from the environment by the binary.
    #[arg(skip)]
    pub static_services: Vec<crate::dfp_env::StaticService>,
    /// What separates the items of a list parameter (`servicePath`, `serviceDomain`, header
    /// rules, methods, `redirectFromDomain`, ...), DFP's `SEPARATOR`: change it when a value
    /// needs commas. `users` always splits on commas, as in DFP. Saved services are read back
    /// with it too, so keep it when restarting.
    #[arg(long, env = "SEPARATOR", default_value = ",")]
    pub separator: String,
    /// Proxies (addresses or CIDRs, comma-separated) whose `X-Forwarded-Proto` and
    /// `X-Forwarded-Host` are kept and believed (`redirectWhenHttpProto`), as Traefik's
    /// `forwardedHeaders.trustedIPs`; from anyone else they are replaced.
    #[arg(long, env = "TRUSTED_PROXIES", value_delimiter = ',', value_parser = ip_net)]
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Seconds a replica may take to answer, for services without `timeoutServer` (DFP's
    /// `TIMEOUT_SERVER`).
    #[arg(long, env = "TIMEOUT_SERVER", default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=31_536_000))]
    pub timeout_server: u64,
    /// Seconds an idle WebSocket or TCP-mode connection stays open, for services without
    /// `timeoutTunnel` (DFP's `TIMEOUT_TUNNEL`).
    #[arg(long, env = "TIMEOUT_TUNNEL", default_value_t = 3600, value_parser = clap::value_parser!(u64).range(1..=31_536_000))]
    pub timeout_tunnel: u64,
    /// How the domains of services without `serviceDomainAlgo` match the Host header (DFP's
    /// `SERVICE_DOMAIN_ALGO`): `hdr` (the exact host), `hdr_beg`, `hdr_end` or `hdr_dom`;
    /// DFP's `hdr_beg(host)` spellings are accepted. DFP's image defaults to `hdr_beg(host)`;
    /// flowproxy to `hdr`.
    #[arg(long, env = "SERVICE_DOMAIN_ALGO", default_value = "hdr", value_parser = domain_algo)]
    pub service_domain_algo: crate::routes::DomainAlgo,
    /// Seconds a TCP connect to a replica may take (DFP's `TIMEOUT_CONNECT`).
    #[arg(long, env = "TIMEOUT_CONNECT", default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub timeout_connect: u64,
    /// Mixed into sticky-session cookies (`sessionType=sticky-server`), so that replica
    /// addresses cannot be guessed from them; give every proxy replica the same value.
    #[arg(
        long,
        env = "STICKY_SECRET",
        hide_env_values = true,
        default_value = ""
    )]
    pub sticky_secret: String,
    /// The passwords in `--users` are crypt hashes (`$6$`, `$5$`, `$1$`).
    #[arg(long, env = "USERS_PASS_ENCRYPTED", num_args = 0..=1, default_value = "false", default_missing_value = "true", value_parser = go_bool)]
    pub users_pass_encrypted: bool,
    /// Most client connections each listener holds at once; more wait in the kernel's backlog.
    #[arg(long, env = "MAX_CONNECTIONS", default_value_t = 65_536, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: u32,
    /// Seconds a client gets, after connecting (or after its TLS handshake), to send enough
    /// for its protocol to be known; also the limit for the TLS handshake itself. A silent
    /// socket is closed after this, so it cannot hold one of `--max-connections`.
    #[arg(long, env = "CLIENT_FIRST_BYTE_TIMEOUT", default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub client_first_byte_timeout: u64,
    /// Seconds a client gets to send a request's head; also how long an idle keep-alive
    /// connection waits for its next request. The two DFP variables below split it.
    #[arg(long, env = "CLIENT_HEAD_TIMEOUT", default_value_t = 15, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub client_head_timeout: u64,
    /// Seconds a request's head may take from its first byte (DFP's `TIMEOUT_HTTP_REQUEST`,
    /// HAProxy's `timeout http-request`); default `--client-head-timeout`.
    #[arg(long, env = "TIMEOUT_HTTP_REQUEST", value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub timeout_http_request: Option<u64>,
    /// Seconds an idle keep-alive connection waits for its next request (DFP's
    /// `TIMEOUT_HTTP_KEEP_ALIVE`, HAProxy's `timeout http-keep-alive`); default
    /// `--client-head-timeout`. A head must also be complete within it of the previous
    /// response (or of the connection's protocol being known).
    #[arg(long, env = "TIMEOUT_HTTP_KEEP_ALIVE", value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub timeout_http_keep_alive: Option<u64>,
    /// Seconds an open request body may send nothing before the request is answered 408 and
    /// the upstream request cancelled (DFP's `TIMEOUT_CLIENT`, HAProxy's `timeout client`).
    #[arg(long, env = "TIMEOUT_CLIENT", default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub timeout_client: u64,
    /// Largest request head in bytes (request line and every header field); larger gets 431.
    #[arg(long, env = "MAX_HEADER_BYTES", default_value_t = 32_768, value_parser = clap::value_parser!(u64).range(1024..=1_048_576))]
    pub max_header_bytes: u64,
    /// Largest single header value in bytes; larger gets 431.
    #[arg(long, env = "MAX_HEADER_VALUE_BYTES", default_value_t = 8_192, value_parser = clap::value_parser!(u64).range(256..=1_048_576))]
    pub max_header_value_bytes: u64,
    /// Protocols a request may upgrade to (comma-separated); any other `Upgrade` is dropped
    /// and the request forwarded without it. `h2c` is never allowed.
    #[arg(
        long,
        env = "ALLOWED_UPGRADES",
        value_delimiter = ',',
        default_value = "websocket"
    )]
    pub allowed_upgrades: Vec<String>,
    /// Address of the reconfigure API (Docker Flow Proxy compatible).
    #[arg(long, env = "API_ADDR", default_value = "0.0.0.0:8080")]
    pub api_addr: SocketAddr,
    /// Directory where the running configuration is saved and restored from.
    #[arg(long, env = "STATE_DIR", default_value = "/var/lib/flowproxy")]
    pub state_dir: PathBuf,
    /// DNS server (IP:PORT) for replica look-ups; without it, Docker's (127.0.0.11:53) in
    /// swarm mode, else the system resolver.
    #[arg(long, env = "DNS_SERVER")]
    pub dns_server: Option<SocketAddr>,
    /// Seconds between re-resolutions of every service's replicas.
    #[arg(long, env = "DNS_REFRESH", default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub dns_refresh: u64,
    /// Interface to attach the counting programs to; repeat the flag for several. `auto`
    /// attaches to every non-loopback interface that routes to a discovered replica.
    #[arg(long = "interface", env = "INTERFACE", value_delimiter = ',')]
    pub interfaces: Vec<String>,
    /// Run without loading any BPF program (user-space only).
    #[arg(long, env = "NO_EBPF")]
    pub no_ebpf: bool,
    /// Keep the pinned maps (and their counters) when stopping.
    #[arg(long, env = "KEEP_PINS")]
    pub keep_pins: bool,
    /// Kernel fast path for TCP-mode services: `auto` (per interface: native XDP on physical
    /// NICs whose driver has it, TC on veths, bridges, vxlan and other virtual devices), `tc`,
    /// `native` (alias `xdp`) and `generic` (both refused on virtual devices), or `off`
    /// (user-space relay only).
    #[arg(long = "l4-fastpath", env = "L4_FASTPATH", value_enum, default_value_t = FastPathMode::Auto)]
    pub l4_fastpath: FastPathMode,
    /// The most TCP-mode flows the fast path holds at once; further flows take the
    /// user-space relay.
    #[arg(long, env = "CONNTRACK_SIZE", default_value_t = 65536, value_parser = clap::value_parser!(u32).range(1..=4_000_000))]
    pub conntrack_size: u32,
    /// Seconds fast-path flows to a removed replica keep going before they are cut (reset).
    #[arg(
        long = "l4-drain-timeout",
        env = "L4_DRAIN_TIMEOUT",
        default_value_t = 30
    )]
    pub l4_drain_timeout: u64,
    /// Test hook: the fast path's self-test at attach sees its probe with one bit flipped (as
    /// if the kernel had corrupted it), so the interface falls back to the relay.
    #[arg(long, env = "L4_SELF_TEST_FAULT", hide = true)]
    pub l4_self_test_fault: bool,
    /// Seconds between sweeps of ended and idle fast-path flows.
    #[arg(long = "l4-sweep-interval", env = "L4_SWEEP_INTERVAL", default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub l4_sweep_interval: u64,
    /// Swarm mode, API token, peers, label discovery, Swarm Listener.
    #[command(flatten)]
    pub cluster: crate::cluster::ClusterArgs,
}

impl RunArgs {
    /// The fast path's settings from the flags.
    pub fn fastpath(&self) -> FastPathSettings {
        FastPathSettings {
            mode: self.l4_fastpath,
            conntrack_size: self.conntrack_size,
            drain_timeout: Duration::from_secs(self.l4_drain_timeout),
            self_test_fault: self.l4_self_test_fault,
        }
    }

    /// The per-connection timeouts and buffer ceiling of the HTTP(S) listeners.
    pub fn conn_settings(&self) -> ConnSettings {
        let head = self
            .timeout_http_request
            .unwrap_or(self.client_head_timeout);
        let idle = self
            .timeout_http_keep_alive
            .unwrap_or(self.client_head_timeout);
        ConnSettings {
            first_byte_timeout: Duration::from_secs(self.client_first_byte_timeout),
            idle_timeout: Duration::from_secs(idle),
            // hyper's timer already bounds a head at `idle`.
            head_timeout: (head < idle).then(|| Duration::from_secs(head)),
            parser_ceiling: self.header_limits().parser_ceiling(),
        }
    }

    /// The head size limits.
    pub fn header_limits(&self) -> HeaderLimits {
        HeaderLimits {
            head_bytes: usize::try_from(self.max_header_bytes).unwrap_or(usize::MAX),
            value_bytes: usize::try_from(self.max_header_value_bytes).unwrap_or(usize::MAX),
        }
    }

    /// What a request may be; fails if `--allowed-upgrades` names `h2c`.
    pub fn request_limits(&self) -> Result<RequestLimits, NeverAllowed> {
        Ok(RequestLimits {
            header: self.header_limits(),
            body_idle: Duration::from_secs(self.timeout_client),
            upgrades: UpgradeAllowList::new(self.allowed_upgrades.iter().map(String::as_str))?,
        })
    }

    /// True for `--interface auto`.
    pub fn auto_interfaces(&self) -> bool {
        self.interfaces.iter().any(|i| i == "auto")
    }
}

/// A CIDR, or a single address (as a /32 or /128).
fn ip_net(value: &str) -> Result<ipnet::IpNet, String> {
    let value = value.trim();
    value
        .parse::<ipnet::IpNet>()
        .or_else(|_| value.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
        .map_err(|_| format!("{value:?} is neither an address nor a CIDR such as 10.0.0.0/8"))
}

/// `hdr`, `hdr_beg`, `hdr_end` or `hdr_dom` (or `hdr_beg(host)`, ...).
fn domain_algo(value: &str) -> Result<crate::routes::DomainAlgo, String> {
    crate::routes::DomainAlgo::parse(value.trim()).ok_or_else(|| {
        format!(
            "{value:?} is not a domain algorithm: {}",
            crate::routes::DOMAIN_ALGO_CHOICES
        )
    })
}

/// Go's `strconv.ParseBool`, which DFP's variables are read with.
fn go_bool(value: &str) -> Result<bool, String> {
    match value {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        _ => Err(format!("{value:?} is not a boolean; write true or false")),
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interfaces_repeat_and_split_on_commas() {
        let cli = Cli::parse_from(["flowproxy", "--interface", "a", "--interface", "b,c"]);
        assert_eq!(cli.run.interfaces, ["a", "b", "c"]);
        assert!(cli.command.is_none());
    }

    #[test]
    fn stats_takes_the_global_pin_dir() {
        let cli = Cli::parse_from([
            "flowproxy",
            "stats",
            "--json",
            "--bpffs-dir",
            "/sys/fs/bpf/x",
        ]);
        assert!(matches!(
            cli.command,
            Some(Command::Stats(StatsArgs { json: true, .. }))
        ));
        assert_eq!(cli.bpffs_dir, PathBuf::from("/sys/fs/bpf/x"));
    }

    #[test]
    fn healthcheck_takes_a_url_and_a_timeout() {
        let cli = Cli::parse_from(["flowproxy", "healthcheck"]);
        let Some(Command::Healthcheck(args)) = cli.command else {
            panic!("{:?}", cli.command);
        };
        assert_eq!(args.timeout, 3);
        let cli = Cli::parse_from([
            "flowproxy",
            "healthcheck",
            "--api-url",
            "http://127.0.0.1:9000",
            "--timeout",
            "1",
        ]);
        let Some(Command::Healthcheck(args)) = cli.command else {
            panic!("{:?}", cli.command);
        };
        assert_eq!(args.api_url.as_deref(), Some("http://127.0.0.1:9000"));
        assert_eq!(args.timeout, 1);
        assert!(Cli::try_parse_from(["flowproxy", "healthcheck", "--timeout", "0"]).is_err());
        assert!(
            Cli::try_parse_from(["flowproxy", "--http-addr", "127.0.0.1:1", "healthcheck"])
                .is_err(),
            "proxy flags do not mix with a command"
        );
    }

    #[test]
    fn listeners_default_to_the_dfp_ports() {
        let cli = Cli::parse_from(["flowproxy"]);
        assert_eq!(cli.run.http_addr.port(), 80);
        assert_eq!(cli.run.api_addr.port(), 8080);
        assert_eq!(cli.run.https_addr.port(), 443);
        assert!(Cli::try_parse_from(["flowproxy", "--dns-refresh", "0"]).is_err());
        assert!(Cli::try_parse_from(["flowproxy", "--http-addr", "nope"]).is_err());
    }

    #[test]
    fn client_limits_default_and_read_their_flags() {
        let cli = Cli::parse_from(["flowproxy"]);
        let conn = cli.run.conn_settings();
        assert_eq!(conn.first_byte_timeout, Duration::from_secs(5));
        assert_eq!(conn.idle_timeout, Duration::from_secs(15));
        assert_eq!(conn.head_timeout, None);
        let dfp = Cli::parse_from([
            "flowproxy",
            "--timeout-http-request",
            "5",
            "--timeout-http-keep-alive",
            "30",
        ]);
        let conn = dfp.run.conn_settings();
        assert_eq!(conn.idle_timeout, Duration::from_secs(30));
        assert_eq!(conn.head_timeout, Some(Duration::from_secs(5)));
        let limits = cli.run.request_limits().unwrap();
        assert_eq!(limits.body_idle, Duration::from_secs(20));
        assert_eq!(limits.header.head_bytes, 32_768);
        assert_eq!(limits.header.value_bytes, 8_192);
        assert_eq!(limits.upgrades, UpgradeAllowList::default());
        let cli = Cli::parse_from([
            "flowproxy",
            "--client-first-byte-timeout",
            "1",
            "--timeout-client",
            "2",
            "--max-header-bytes",
            "4096",
            "--allowed-upgrades",
            "websocket,h2c",
        ]);
        assert_eq!(
            cli.run.conn_settings().first_byte_timeout,
            Duration::from_secs(1)
        );
        assert_eq!(cli.run.header_limits().head_bytes, 4096);
        assert!(cli.run.request_limits().is_err(), "h2c is refused");
        assert!(Cli::try_parse_from(["flowproxy", "--client-first-byte-timeout", "0"]).is_err());
    }

    #[test]
    fn the_cli_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}

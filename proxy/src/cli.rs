//! Command-line flags. Every flag also reads an environment variable, the way Swarm services
//! are configured (`-e NAME=value`).
use std::{net::SocketAddr, path::PathBuf};

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::dataplane::{FastPathMode, FastPathSettings};

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
    /// Print the data plane's counters, read straight from the pinned maps.
    Stats(StatsArgs),
}

/// Flags of `flowproxy stats`.
#[derive(Debug, Args)]
pub struct StatsArgs {
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// The running proxy's API, asked for per-replica request counts (skipped if it does not answer).
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
    /// XDP fast path for TCP-mode services: `auto` (native XDP where the driver has it,
    /// generic otherwise), `native`, `generic`, or `off` (user-space relay only).
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
            drain_timeout: std::time::Duration::from_secs(self.l4_drain_timeout),
        }
    }

    /// True for `--interface auto`.
    pub fn auto_interfaces(&self) -> bool {
        self.interfaces.iter().any(|i| i == "auto")
    }
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
    fn listeners_default_to_the_dfp_ports() {
        let cli = Cli::parse_from(["flowproxy"]);
        assert_eq!(cli.run.http_addr.port(), 80);
        assert_eq!(cli.run.api_addr.port(), 8080);
        assert_eq!(cli.run.https_addr.port(), 443);
        assert!(Cli::try_parse_from(["flowproxy", "--dns-refresh", "0"]).is_err());
        assert!(Cli::try_parse_from(["flowproxy", "--http-addr", "nope"]).is_err());
    }

    #[test]
    fn the_cli_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}

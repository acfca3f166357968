//! The flags of everything that concerns more than one proxy replica: Swarm mode, the API
//! token, peers, Docker label discovery and the Swarm Listener. Flattened into `RunArgs`.
use std::{
    net::{Ipv4Addr, SocketAddr},
    path::PathBuf,
};

use clap::{Args, ValueEnum};

/// Docker's embedded DNS server, which answers `tasks.<service>` inside Swarm.
pub const DOCKER_DNS: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::new(127, 0, 0, 11)), 53);

/// Flags for running as one replica of many.
#[derive(Debug, Clone, Args)]
pub struct ClusterArgs {
    /// `swarm` when running as a Docker Swarm service: replicas are looked up with Docker's DNS
    /// (127.0.0.11) unless --dns-server is given, and the Docker socket is used for label
    /// discovery when it is mounted.
    #[arg(long, env = "MODE", value_enum, default_value_t = Mode::Default)]
    pub mode: Mode,
    /// The proxy's own Swarm service name: its replicas are the addresses of `tasks.<NAME>`.
    #[arg(long, env = "SERVICE_NAME", default_value = "proxy")]
    pub service_name: String,
    /// Require this token on the API (`Authorization: Bearer <token>` or `?token=<token>`);
    /// ping and /metrics stay open. Without it the API is open, as in Docker Flow Proxy.
    #[arg(long, env = "API_TOKEN", hide_env_values = true)]
    pub api_token: Option<String>,
    /// Read the API token from this file (e.g. a Docker secret under /run/secrets).
    #[arg(long, env = "API_TOKEN_FILE", conflicts_with = "api_token")]
    pub api_token_file: Option<PathBuf>,
    /// Seconds between checks that this replica's configuration matches its peers'.
    #[arg(long, env = "PEER_SYNC_INTERVAL", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub peer_sync_interval: u64,
    /// Seconds a call to a peer replica may take.
    #[arg(long, env = "PEER_TIMEOUT", default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=300))]
    pub peer_timeout: u64,
    /// Seconds a starting replica waits for a peer's configuration before it reports ready
    /// with its own (saved) configuration.
    #[arg(long, env = "BOOTSTRAP_TIMEOUT", default_value_t = 15, value_parser = clap::value_parser!(u64).range(0..=3600))]
    pub bootstrap_timeout: u64,
    /// Seconds a removed service's or certificate's tombstone is kept at least (so that a
    /// replica that missed the removal does not bring the entry back); longer than any
    /// partition should last.
    #[arg(long, env = "TOMBSTONE_TTL", default_value_t = 86_400, value_parser = clap::value_parser!(u64).range(1..))]
    pub tombstone_ttl: u64,
    /// Test hook: milliseconds added to this replica's clock for the versions it makes.
    #[arg(
        long,
        env = "CLOCK_OFFSET_MS",
        default_value_t = 0,
        allow_hyphen_values = true,
        hide = true
    )]
    pub clock_offset_ms: i64,
    /// Where services come from besides the API: `docker` reads Swarm services labelled
    /// `com.df.notify=true` through --docker-socket; `auto` does so in swarm mode when the
    /// socket exists; `none` never does.
    #[arg(long, env = "DISCOVERY", value_enum, default_value_t = Discovery::Auto)]
    pub discovery: Discovery,
    /// The Docker Engine's socket, mounted read-only into the proxy's container.
    #[arg(long, env = "DOCKER_SOCKET", default_value = "/var/run/docker.sock")]
    pub docker_socket: PathBuf,
    /// Seconds between full re-reads of the Swarm services, besides Docker's events.
    #[arg(long, env = "DOCKER_POLL_INTERVAL", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub docker_poll_interval: u64,
    /// The label that marks a Swarm service for the proxy (the Swarm Listener's DF_NOTIFY_LABEL).
    #[arg(long, env = "DF_NOTIFY_LABEL", default_value = "com.df.notify")]
    pub notify_label: String,
    /// Docker Flow Swarm Listener addresses (comma-separated `host`, `host:port` or URL; port
    /// 8080 by default): at start their services are fetched and configured, as DFP does.
    #[arg(long, env = "LISTENER_ADDRESS", value_delimiter = ',')]
    pub listener_address: Vec<String>,
}

/// How the proxy is deployed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// Anywhere: the system resolver, no Docker socket unless asked for.
    Default,
    /// A Docker Swarm service (DFP's `service` is accepted too).
    #[value(alias = "service")]
    Swarm,
}

/// Whether Swarm services are read from the Docker API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Discovery {
    /// In swarm mode, when --docker-socket exists.
    Auto,
    /// Always (a missing socket stops the start).
    Docker,
    /// Never.
    None,
}

impl ClusterArgs {
    /// The DNS server replicas are looked up with: the one given, else Docker's in swarm mode,
    /// else the system resolver (`None`).
    pub fn dns_server(&self, explicit: Option<SocketAddr>) -> Option<SocketAddr> {
        explicit.or((self.mode == Mode::Swarm).then_some(DOCKER_DNS))
    }

    /// Whether to read services from the Docker API; an error names the fix.
    pub fn docker_discovery(&self) -> Result<bool, String> {
        let exists = self.docker_socket.exists();
        match self.discovery {
            Discovery::None => Ok(false),
            Discovery::Auto => Ok(self.mode == Mode::Swarm && exists),
            Discovery::Docker if exists => Ok(true),
            Discovery::Docker => Err(format!(
                "--discovery docker: the Docker socket {} does not exist; mount it \
                 (--mount type=bind,source=/var/run/docker.sock,target=/var/run/docker.sock,readonly) \
                 or set --docker-socket",
                self.docker_socket.display()
            )),
        }
    }

    /// The API token from --api-token or --api-token-file; an error names the file.
    pub fn token(&self) -> Result<Option<String>, String> {
        match (&self.api_token, &self.api_token_file) {
            (Some(token), _) => Ok(Some(token.clone())),
            (None, Some(file)) => std::fs::read_to_string(file).map(Some).map_err(|e| {
                format!(
                    "--api-token-file {}: {e}; point it at a readable file",
                    file.display()
                )
            }),
            (None, None) => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::Cli;
    use clap::Parser as _;

    fn parse(args: &[&str]) -> ClusterArgs {
        let mut all = vec!["flowproxy"];
        all.extend_from_slice(args);
        Cli::try_parse_from(all).unwrap().run.cluster
    }

    #[test]
    fn swarm_mode_uses_dockers_dns_unless_a_server_is_given() {
        let swarm = parse(&["--mode", "swarm"]);
        assert_eq!(swarm.dns_server(None), Some(DOCKER_DNS));
        let given: SocketAddr = "127.0.0.1:5353".parse().unwrap();
        assert_eq!(swarm.dns_server(Some(given)), Some(given));
        assert_eq!(parse(&[]).dns_server(None), None);
        assert_eq!(parse(&["--mode", "service"]).mode, Mode::Swarm);
        assert!(Cli::try_parse_from(["flowproxy", "--mode", "kubernetes"]).is_err());
    }

    #[test]
    fn docker_discovery_follows_the_mode_and_the_socket() {
        let missing = ["--docker-socket", "/nonexistent/docker.sock"];
        let present = ["--docker-socket", "/proc/self/exe"];
        let with = |extra: &[&str], socket: &[&str]| {
            let mut args = extra.to_vec();
            args.extend_from_slice(socket);
            parse(&args).docker_discovery()
        };
        assert_eq!(with(&["--mode", "swarm"], &present), Ok(true));
        assert_eq!(with(&["--mode", "swarm"], &missing), Ok(false));
        assert_eq!(with(&[], &present), Ok(false), "auto needs swarm mode");
        assert_eq!(with(&["--discovery", "docker"], &present), Ok(true));
        let err = with(&["--discovery", "docker"], &missing).unwrap_err();
        assert!(err.contains("/nonexistent/docker.sock"), "{err}");
        assert_eq!(
            with(&["--mode", "swarm", "--discovery", "none"], &present),
            Ok(false)
        );
    }

    #[test]
    fn listener_addresses_split_on_commas_and_the_token_file_conflicts_with_the_token() {
        let args = parse(&["--listener-address", "a,b:9000"]);
        assert_eq!(args.listener_address, ["a", "b:9000"]);
        assert!(
            Cli::try_parse_from(["flowproxy", "--api-token", "x", "--api-token-file", "/f"])
                .is_err()
        );
        let err = parse(&["--api-token-file", "/nonexistent/token"])
            .token()
            .unwrap_err();
        assert!(err.contains("/nonexistent/token"), "{err}");
        assert_eq!(parse(&["--api-token", "t"]).token(), Ok(Some("t".into())));
    }
}

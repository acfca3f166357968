//! Docker Flow Proxy's environment variables, checked at start. A DFP stack moved to
//! flowproxy keeps its environment; each variable is honoured (through the flag that reads
//! it), harmless (it tunes HAProxy; logged once), or refused: the start stops and says what
//! to do, because running without it would silently change what the proxy does.

mod secrets;
mod static_services;

pub use secrets::{secret_name, variables_from_secrets};
pub use static_services::{PREFIX as STATIC_SERVICE_PREFIX, StaticService, static_services};

/// What flowproxy does with a DFP variable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnvClass {
    /// Read by the flag named here.
    Honoured(&'static str),
    /// Honoured only with this value (what flowproxy always does); any other refuses.
    OnlyValue(&'static str, &'static str),
    /// Refused with this reason.
    Refused(&'static str),
    /// Accepted and ignored: it has no meaning here.
    Harmless(&'static str),
}

/// One DFP variable (a trailing `*` matches a prefix).
#[derive(Debug, Clone, Copy)]
pub struct EnvVar {
    /// The variable's name.
    pub name: &'static str,
    /// What flowproxy does with it.
    pub class: EnvClass,
}

const fn var(name: &'static str, class: EnvClass) -> EnvVar {
    EnvVar { name, class }
}

use EnvClass::{Harmless, Honoured, OnlyValue, Refused};

const HAPROXY: &str = "tunes HAProxy's reloads or logs, which flowproxy does not have";
const TLS_OPTS: &str =
    "flowproxy's TLS settings are fixed (TLS 1.2 and 1.3, rustls defaults); remove it";
const STATS: &str = "the HAProxy stats page does not exist here; use /metrics on the API port";

/// Every DFP variable, in the order of the README's table.
pub const DFP_ENV: &[EnvVar] = &[
    var("LISTENER_ADDRESS", Honoured("--listener-address")),
    var("SERVICE_NAME", Honoured("--service-name")),
    var("MODE", Honoured("--mode (default or swarm)")),
    var("PORT", Honoured("the API port when API_ADDR is not set")),
    var("IP", Honoured("the API address when API_ADDR is not set")),
    var(
        "HTTPS_ONLY",
        Honoured("--https-only (Go's ParseBool spellings)"),
    ),
    var("USERS", Honoured("--users (or the secret dfp_users)")),
    var("USERS_PASS_ENCRYPTED", Honoured("--users-pass-encrypted")),
    var("TIMEOUT_CLIENT", Honoured("--timeout-client")),
    var(
        "ENABLE_H2",
        OnlyValue("true", "HTTP/2 is always offered (ALPN h2)"),
    ),
    var(
        "DEFAULT_REQ_MODE",
        OnlyValue("http", "the default reqMode is http"),
    ),
    var("SEPARATOR", Honoured("--separator")),
    var(
        "FILTER_PROXY_INSTANCE_NAME",
        Honoured("--filter-proxy-instance-name"),
    ),
    var("PROXY_INSTANCE_NAME", Honoured("--proxy-instance-name")),
    var(
        "CONNECTION_MODE",
        Harmless("flowproxy keeps connections alive on both sides"),
    ),
    var("CFG_TEMPLATE_PATH", Harmless(HAPROXY)),
    var("RECONFIGURE_ATTEMPTS", Harmless(HAPROXY)),
    var("RELOAD_ATTEMPTS", Harmless(HAPROXY)),
    var("RELOAD_INTERVAL", Harmless(HAPROXY)),
    var("REPEAT_RELOAD", Harmless(HAPROXY)),
    var("TERMINATE_ON_RELOAD", Harmless(HAPROXY)),
    var("DISPLAY_CONFIG_ON_ERROR", Harmless(HAPROXY)),
    var("DNS_LOOKUP_PAUSE_MS", Harmless(HAPROXY)),
    var(
        "CHECK_RESOLVERS",
        Harmless("replicas are always re-resolved (--dns-refresh)"),
    ),
    var(
        "RESOLVERS",
        Harmless("replicas are looked up with --dns-server"),
    ),
    var(
        "DO_NOT_RESOLVE_ADDR",
        Harmless("an unresolvable service answers 503 on its own routes"),
    ),
    var(
        "SKIP_ADDRESS_VALIDATION",
        Harmless("services are never looked up before they are added"),
    ),
    var(
        "HEALTHCHECK",
        Harmless("the image's health check is flowproxy's own"),
    ),
    var(
        "DEBUG*",
        Harmless("request logs are the access log (RUST_LOG=access=info)"),
    ),
    var("TIMEOUT_QUEUE", Harmless("flowproxy has no request queue")),
    var("TIMEOUT_CONNECT", Honoured("--timeout-connect")),
    var("TIMEOUT_SERVER", Honoured("--timeout-server")),
    var("TIMEOUT_TUNNEL", Honoured("--timeout-tunnel")),
    var("TIMEOUT_HTTP_REQUEST", Honoured("--timeout-http-request")),
    var(
        "TIMEOUT_HTTP_KEEP_ALIVE",
        Honoured("--timeout-http-keep-alive"),
    ),
    var(
        "DEFAULT_PORTS",
        Refused("set the listeners with --http-addr and --https-addr"),
    ),
    var(
        "BIND_PORTS",
        Refused("extra HTTP listeners are not implemented yet; use --http-addr, or TCP mode"),
    ),
    var(
        "EXTRA_GLOBAL",
        Refused("raw HAProxy configuration cannot be applied; remove it"),
    ),
    var(
        "EXTRA_FRONTEND",
        Refused("raw HAProxy configuration cannot be applied; remove it"),
    ),
    var(
        "CAPTURE_REQUEST_HEADER",
        Refused("header capture is not implemented; the access log has the request line"),
    ),
    var("SERVICE_DOMAIN_ALGO", Honoured("--service-domain-algo")),
    var(
        "COMPRESSION_ALGO",
        Refused("compression is not implemented yet"),
    ),
    var(
        "COMPRESSION_TYPE",
        Refused("compression is not implemented yet"),
    ),
    var(
        "CA_FILE",
        Refused("client certificates are not implemented yet"),
    ),
    var(
        "CRT_LIST_PATH",
        Refused("certificates come from --certs-dir, cert-* secrets and PUT /cert"),
    ),
    var(
        "PREFERRED_CERTIFICATE",
        Refused("choose the certificate for unknown names with --default-cert"),
    ),
    var("SSL_BIND_OPTIONS", Refused(TLS_OPTS)),
    var("SSL_BIND_CIPHERS", Refused(TLS_OPTS)),
    var("STATS_*", Refused(STATS)),
    var(
        "DFP_SERVICE_*",
        Honoured("static services, read through the reconfigure parser at start"),
    ),
];

/// A DFP variable that is set but not honoured.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{name} is set but not supported: {reason}; unset it to start")]
pub struct EnvError {
    /// The variable.
    pub name: String,
    /// Why, and what to use instead.
    pub reason: String,
}

/// The catalog entry for `name`.
pub fn find(name: &str) -> Option<&'static EnvVar> {
    DFP_ENV.iter().find(|v| match v.name.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => v.name == name,
    })
}

/// Checks the variables `vars` holds; returns the harmless ones that are set (to log).
pub fn check<'a>(
    vars: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Result<Vec<String>, EnvError> {
    let mut harmless = Vec::new();
    let mut set: Vec<(&str, &str)> = vars.into_iter().collect();
    set.sort_unstable();
    for (name, value) in set {
        let Some(entry) = find(name) else { continue };
        match entry.class {
            Honoured(_) => {}
            OnlyValue(expected, _) if value.eq_ignore_ascii_case(expected) || value.is_empty() => {}
            OnlyValue(expected, why) => {
                return Err(EnvError {
                    name: name.to_owned(),
                    reason: format!("{why}; only {name}={expected} is accepted"),
                });
            }
            Refused(why) => {
                return Err(EnvError {
                    name: name.to_owned(),
                    reason: why.to_owned(),
                });
            }
            Harmless(why) => harmless.push(format!("{name} {why}")),
        }
    }
    Ok(harmless)
}

/// The API address DFP's `IP` and `PORT` name, when `API_ADDR` does not: `None` if neither
/// is set.
pub fn api_addr_from_ip_port(
    ip: Option<&str>,
    port: Option<&str>,
) -> Result<Option<std::net::SocketAddr>, EnvError> {
    if ip.is_none() && port.is_none() {
        return Ok(None);
    }
    let ip = ip.unwrap_or("0.0.0.0");
    let port = port.unwrap_or("8080");
    let text = if ip.contains(':') {
        format!("[{ip}]:{port}")
    } else {
        format!("{ip}:{port}")
    };
    text.parse().map(Some).map_err(|_| EnvError {
        name: "IP/PORT".to_owned(),
        reason: format!("{text} is not an address and port"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique() {
        for (i, v) in DFP_ENV.iter().enumerate() {
            assert!(
                DFP_ENV[i + 1..].iter().all(|w| w.name != v.name),
                "{}",
                v.name
            );
        }
    }

    /// The README's variable table lists every entry, with its class, and nothing else.
    #[test]
    fn the_readme_table_is_the_list() {
        let readme = include_str!("../../README.md");
        let table = readme
            .split("<!-- dfp-env -->")
            .nth(1)
            .and_then(|t| t.split("<!-- /dfp-env -->").next())
            .expect("README has the dfp-env table");
        let rows: Vec<(String, String)> = table
            .lines()
            .filter_map(|l| {
                let cells: Vec<&str> = l.split('|').map(str::trim).collect();
                let name = cells.get(1)?.strip_prefix('`')?.strip_suffix('`')?;
                let class = cells.get(2)?.split(' ').next()?;
                Some((name.to_owned(), class.to_owned()))
            })
            .collect();
        let expected: Vec<(String, String)> = DFP_ENV
            .iter()
            .map(|v| {
                let class = match v.class {
                    Honoured(_) | OnlyValue(..) => "honoured",
                    Refused(_) => "refused",
                    Harmless(_) => "harmless",
                };
                (v.name.to_owned(), class.to_owned())
            })
            .collect();
        assert_eq!(rows, expected);
    }

    #[test]
    fn refused_variables_stop_the_start_with_their_name() {
        let err = check([("PATH", "/bin"), ("BIND_PORTS", "8081")]).unwrap_err();
        assert_eq!(err.name, "BIND_PORTS");
        assert!(err.to_string().contains("--http-addr"), "{err}");
        let err = check([("STATS_USER", "admin")]).unwrap_err();
        assert!(err.to_string().contains("/metrics"), "{err}");
        let err = check([("ENABLE_H2", "false")]).unwrap_err();
        assert!(err.to_string().contains("ENABLE_H2=true"), "{err}");
    }

    #[test]
    fn harmless_and_honoured_variables_pass() {
        let harmless = check([
            ("RELOAD_INTERVAL", "5000"),
            ("DEBUG_ERRORS_ONLY", "true"),
            ("USERS", "a:b"),
            ("ENABLE_H2", "TRUE"),
            ("SEPARATOR", ","),
        ])
        .unwrap();
        assert_eq!(harmless.len(), 2, "{harmless:?}");
        assert!(harmless[0].starts_with("DEBUG_ERRORS_ONLY"));
    }

    #[test]
    fn ip_and_port_make_the_api_address() {
        assert_eq!(api_addr_from_ip_port(None, None), Ok(None));
        assert_eq!(
            api_addr_from_ip_port(None, Some("9090"))
                .unwrap()
                .unwrap()
                .to_string(),
            "0.0.0.0:9090"
        );
        assert_eq!(
            api_addr_from_ip_port(Some("127.0.0.1"), None)
                .unwrap()
                .unwrap()
                .to_string(),
            "127.0.0.1:8080"
        );
        assert!(api_addr_from_ip_port(Some("nope"), None).is_err());
    }
}

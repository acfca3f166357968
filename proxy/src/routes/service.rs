//! The service model: what one reconfigure request registers.
//!
//! A [`Service`] keeps the raw query parameters it was parsed from, because
//! those are what we persist and what `/config?type=json` echoes; the typed
//! fields are derived from them by [`super::params::parse_params`] and must
//! never drift from them.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use regex::Regex;

pub use super::conditions::Conditions;
pub use super::domain::DomainPattern;
use super::rules::HeaderRules;

/// Server timeout used when `timeoutServer` is not given (DFP's global default).
pub const DEFAULT_TIMEOUT_SERVER: Duration = Duration::from_secs(20);
/// Tunnel (websocket, tcp) timeout used when `timeoutTunnel` is not given.
pub const DEFAULT_TIMEOUT_TUNNEL: Duration = Duration::from_secs(3600);
/// The timeouts of services that set none: DFP's `TIMEOUT_SERVER` and `TIMEOUT_TUNNEL`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DefaultTimeouts {
    /// For `timeoutServer`.
    pub server: Duration,
    /// For `timeoutTunnel`.
    pub tunnel: Duration,
}

static DEFAULT_TIMEOUTS: std::sync::OnceLock<DefaultTimeouts> = std::sync::OnceLock::new();

/// Sets the defaults once, at start, before any service is parsed (a saved service without
/// its own timeouts takes the new defaults at the next start, as in DFP).
pub fn set_default_timeouts(timeouts: DefaultTimeouts) {
    let _ = DEFAULT_TIMEOUTS.set(timeouts);
}

/// The defaults: as set at start, else DFP's 20 s and 3600 s.
pub fn default_timeouts() -> DefaultTimeouts {
    DEFAULT_TIMEOUTS.get().copied().unwrap_or(DefaultTimeouts {
        server: DEFAULT_TIMEOUT_SERVER,
        tunnel: DEFAULT_TIMEOUT_TUNNEL,
    })
}

/// Redirect status used by `httpsOnly` when `httpsRedirectCode` is not given.
pub const DEFAULT_HTTPS_REDIRECT_CODE: u16 = 302;

/// One registered service with all its destinations.
#[derive(Clone, PartialEq)]
pub struct Service {
    /// `serviceName`: the Swarm service, also the default upstream host.
    pub name: String,
    /// `aclName`, defaulting to the service name; names ACLs and backends.
    pub acl_name: String,
    /// Destinations in index order (the unsuffixed one has index 0).
    pub destinations: Vec<Destination>,
    /// Basic-auth users from `users`; empty means the secret's users, else the global
    /// `USERS` (see `crate::credentials`).
    pub users: Vec<BasicUser>,
    /// `usersSecret`: users read from `/run/secrets/dfp_users_<name>`.
    pub users_secret: Option<String>,
    /// `usersPassEncrypted`: the passwords in `users` (and the secret) are crypt hashes.
    pub users_encrypted: bool,
    /// `sessionType=sticky-server`: the name of the cookie that pins a client to a replica
    /// (`sessionCookie`, default the service name).
    pub sticky_cookie: Option<String>,
    /// `isDefaultBackend`: requests no route takes go to this service.
    pub is_default_backend: bool,
    /// `redirectWhenHttpProto`: redirect when `X-Forwarded-Proto` is `http`.
    pub redirect_when_http_proto: bool,
    /// `redirectUnlessHttpsProto`: redirect unless `X-Forwarded-Proto` is `https`.
    pub redirect_unless_https_proto: bool,
    /// `addReqHeader`, `setReqHeader`, `delReqHeader` (and the `addHeader`/`setHeader` aliases).
    pub request_headers: HeaderRules,
    /// `addResHeader`, `setResHeader`, `delResHeader`.
    pub response_headers: HeaderRules,
    /// The raw query parameters, first value per key (as DFP takes them).
    pub params: BTreeMap<String, String>,
}

impl Service {
    /// Host to connect to for `dest`: `outboundHostname`, else the service
    /// name, which Swarm resolves to the service's virtual IP.
    pub fn upstream_host<'a>(&'a self, dest: &'a Destination) -> &'a str {
        dest.outbound_hostname.as_deref().unwrap_or(&self.name)
    }

    /// `replicas` as sent by the Swarm Listener; `None` for global services.
    ///
    /// Parsing already rejected non-numeric values, so `None` here means absent.
    pub fn replicas(&self) -> Option<u32> {
        self.params.get("replicas").and_then(|r| r.parse().ok())
    }
}

// Hand-written because `params["users"]` holds plain-text passwords.
impl fmt::Debug for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let params: BTreeMap<&str, &str> = self
            .params
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str(),
                    if k == "users" {
                        "<redacted>"
                    } else {
                        v.as_str()
                    },
                )
            })
            .collect();
        f.debug_struct("Service")
            .field("name", &self.name)
            .field("acl_name", &self.acl_name)
            .field("destinations", &self.destinations)
            .field("users", &self.users)
            .field("users_secret", &self.users_secret)
            .field("request_headers", &self.request_headers)
            .field("response_headers", &self.response_headers)
            .field("params", &params)
            .finish()
    }
}

/// One `(port, paths, domains)` destination of a service.
#[derive(Debug, Clone)]
pub struct Destination {
    /// DFP's `Index`: 0 for unsuffixed parameters, N for `param.N`.
    pub index: usize,
    /// `port`: the service's internal port.
    pub port: u16,
    /// `servicePath` items; `/` when only domains were given.
    pub paths: Vec<String>,
    /// How `paths` match the request path.
    pub path_type: PathType,
    /// `serviceDomain` items, lower-cased.
    pub domains: Vec<DomainPattern>,
    /// `reqMode`.
    pub req_mode: ReqMode,
    /// `srcPort`: the listening port for tcp destinations.
    pub src_port: Option<u16>,
    /// `reqPathSearchReplace` pairs, applied in order to the first match each.
    ///
    /// The replacement is already in `regex` syntax (`${1}`), converted from
    /// HAProxy's `\1`.
    pub path_rewrites: Vec<(Regex, String)>,
    /// `timeoutServer`.
    pub timeout_server: Duration,
    /// `timeoutTunnel`.
    pub timeout_tunnel: Duration,
    /// `timeoutClient`: how long an open request body may send nothing (else the global
    /// `--timeout-client`).
    pub timeout_client: Option<Duration>,
    /// `outboundHostname`: upstream host instead of the service name.
    pub outbound_hostname: Option<String>,
    /// `httpsOnly`: redirect plain-http requests to https.
    pub https_only: bool,
    /// `httpsRedirectCode`: status of that redirect.
    pub https_redirect_code: u16,
    /// `redirectFromDomain`: hosts routed here only to be redirected (301) to the first
    /// `serviceDomain`, keeping path and query.
    pub redirect_from: Vec<DomainPattern>,
    /// `servicePathExclude`: path prefixes this destination does not take (another route
    /// may).
    pub path_excludes: Vec<String>,
    /// Who may use this destination.
    pub access: Access,
    /// `serviceHeader` and `userAgent`: requests that do not meet them do not take it.
    pub conditions: Conditions,
}

/// A destination's access rules: `allowedMethods`, `deniedMethods`, `denyHttp`,
/// `ignoreAuthorization`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Access {
    /// Methods allowed (upper-case); empty allows every method not denied.
    pub allowed_methods: Vec<String>,
    /// Methods answered 403.
    pub denied_methods: Vec<String>,
    /// Plain HTTP answered 403; only TLS is served.
    pub deny_http: bool,
    /// No basic auth on this destination, whatever the service's or global users.
    pub ignore_authorization: bool,
}

impl Access {
    /// Whether `method` may be sent.
    pub fn admits(&self, method: &str) -> bool {
        super::rules::method_admitted(&self.allowed_methods, &self.denied_methods, method)
    }
}

// Regex has no PartialEq; two compiled regexes are equal when their patterns are.
impl PartialEq for Destination {
    fn eq(&self, other: &Self) -> bool {
        self.index == other.index
            && self.port == other.port
            && self.paths == other.paths
            && self.path_type == other.path_type
            && self.domains == other.domains
            && self.req_mode == other.req_mode
            && self.src_port == other.src_port
            && self.path_rewrites.len() == other.path_rewrites.len()
            && self
                .path_rewrites
                .iter()
                .zip(&other.path_rewrites)
                .all(|((a, ra), (b, rb))| a.as_str() == b.as_str() && ra == rb)
            && self.timeout_server == other.timeout_server
            && self.timeout_tunnel == other.timeout_tunnel
            && self.timeout_client == other.timeout_client
            && self.outbound_hostname == other.outbound_hostname
            && self.https_only == other.https_only
            && self.https_redirect_code == other.https_redirect_code
            && self.path_excludes == other.path_excludes
            && self.redirect_from == other.redirect_from
            && self.access == other.access
            && self.conditions == other.conditions
    }
}

impl Destination {
    /// DFP's ordering group (`Services.Less`): `/.well-known` routes first, `/`-only routes
    /// last, everything else between. Candidates for one route are tried in
    /// (group, `aclName`) order, and `/config` lists destinations in it.
    pub fn dfp_group(&self) -> u8 {
        if self.paths.iter().any(|p| p.starts_with("/.well-known")) {
            0
        } else if self.paths.iter().all(|p| p == "/") {
            2
        } else {
            1
        }
    }

    /// Whether `servicePathExclude` keeps `path` out of this destination.
    pub fn excludes(&self, path: &str) -> bool {
        self.path_excludes
            .iter()
            .any(|p| path.starts_with(p.as_str()))
    }

    /// Applies `path_rewrites` to `path`, returning `None` when nothing changed.
    ///
    /// Each rule replaces its first match only, like HAProxy's `regsub`
    /// without the `g` flag. A result that lost its leading `/` gets it back,
    /// because an upstream request line needs an absolute path.
    pub fn rewrite_path(&self, path: &str) -> Option<String> {
        if self.path_rewrites.is_empty() {
            return None;
        }
        let mut current = path.to_owned();
        for (re, repl) in &self.path_rewrites {
            current = re.replace(&current, repl.as_str()).into_owned();
        }
        if !current.starts_with('/') {
            current.insert(0, '/');
        }
        (current != path).then_some(current)
    }
}

/// How a destination's paths match (`pathType`).
#[derive(Debug, Clone, Default)]
pub enum PathType {
    /// `path_beg`: plain string prefix, as HAProxy does (`/demo` matches `/demoX`).
    #[default]
    Prefix,
    /// `path`: the whole path must be equal.
    Exact,
    /// `path_reg`: unanchored regex search, one compiled regex per path.
    Regex(Vec<Regex>),
}

impl PathType {
    /// The HAProxy fetch name DFP uses for this type.
    pub fn as_str(&self) -> &'static str {
        match self {
            PathType::Prefix => "path_beg",
            PathType::Exact => "path",
            PathType::Regex(_) => "path_reg",
        }
    }
}

impl PartialEq for PathType {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (PathType::Regex(a), PathType::Regex(b)) => {
                a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.as_str() == y.as_str())
            }
            (a, b) => std::mem::discriminant(a) == std::mem::discriminant(b),
        }
    }
}

/// `reqMode`: how the proxy talks to a destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReqMode {
    /// Layer-7 routing by host and path (the default).
    #[default]
    Http,
    /// Layer-4 forwarding from `srcPort` to `port`.
    Tcp,
}

impl ReqMode {
    /// The parameter value, as DFP spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            ReqMode::Http => "http",
            ReqMode::Tcp => "tcp",
        }
    }
}

/// A basic-auth user from `users=user:password`.
#[derive(Clone, PartialEq, Eq)]
pub struct BasicUser {
    /// User name.
    pub user: String,
    /// The password (a crypt hash with `usersPassEncrypted`); `None` for a user named
    /// without one, whose password comes from `usersSecret` or the global `USERS`.
    pub password: Option<String>,
}

// Hand-written so passwords never reach logs through `{:?}`.
impl fmt::Debug for BasicUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BasicUser")
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .finish()
    }
}

// Tests live in service/tests.rs to keep this file about the model.
#[cfg(test)]
mod tests;

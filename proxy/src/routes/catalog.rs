//! Every reconfigure parameter Docker Flow Proxy knows, and what flowproxy does with it.
//!
//! A parameter is honoured, refused with a reason, or harmless (it tunes HAProxy itself and
//! means nothing here). Nothing is accepted and silently ignored: a name that is in neither
//! DFP nor this table is refused too. A test checks that the README's migration table lists
//! every entry with its class, so the two cannot drift.

use std::collections::BTreeMap;

use super::error::RouteError;
use super::values::parse_go_bool;

/// Where a parameter applies: to the whole service, or to one destination (`.N`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Service-level: takes no `.N` index.
    Service,
    /// Destination-level: `name` or `name.N`.
    Destination,
}

/// What flowproxy does with a parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Honoured with DFP's meaning (or a documented, stricter one).
    Honoured,
    /// Refused with 400; the text says why and what to use instead.
    Refused(&'static str),
    /// Accepted, named in the reply's Message and logged: it tunes HAProxy (or another
    /// tool of DFP's ecosystem) and has no meaning here.
    Harmless(&'static str),
}

/// One parameter of the catalog.
#[derive(Debug, Clone, Copy)]
pub struct Param {
    /// The name as DFP spells it, without `.N`.
    pub name: &'static str,
    /// Service- or destination-level.
    pub level: Level,
    /// What flowproxy does with it.
    pub class: Class,
}

const fn honoured(name: &'static str, level: Level) -> Param {
    Param {
        name,
        level,
        class: Class::Honoured,
    }
}

const fn refused(name: &'static str, level: Level, why: &'static str) -> Param {
    Param {
        name,
        level,
        class: Class::Refused(why),
    }
}

const fn harmless(name: &'static str, level: Level, why: &'static str) -> Param {
    Param {
        name,
        level,
        class: Class::Harmless(why),
    }
}

use Level::{Destination as D, Service as S};

const HAPROXY_TUNING: &str = "tunes HAProxy itself; flowproxy has no equivalent setting";

/// Every parameter, in the order of the migration table.
pub const CATALOG: &[Param] = &[
    // Service-level.
    honoured("serviceName", S),
    honoured("aclName", S),
    honoured("distribute", S),
    honoured("replicas", S),
    honoured("users", S),
    honoured("usersSecret", S),
    honoured("usersPassEncrypted", S),
    honoured("reqPathSearch", S),
    honoured("reqPathReplace", S),
    honoured("redirectWhenHttpProto", S),
    honoured("addReqHeader", S),
    honoured("addHeader", S),
    honoured("setReqHeader", S),
    honoured("setHeader", S),
    honoured("delReqHeader", S),
    honoured("addResHeader", S),
    honoured("setResHeader", S),
    honoured("delResHeader", S),
    honoured("isDefaultBackend", S),
    honoured("serviceCert", S),
    honoured("sessionType", S),
    honoured("sessionCookie", S),
    honoured("proxyInstanceName", S),
    honoured("discoveredFrom", S),
    honoured("serviceDomainAlgo", S),
    honoured("serviceDomainMatchAll", S),
    refused(
        "backendExtra",
        S,
        "raw HAProxy configuration cannot be applied by flowproxy; remove it",
    ),
    refused(
        "templateFePath",
        S,
        "HAProxy templates cannot be applied by flowproxy; express the service with reconfigure parameters",
    ),
    refused(
        "templateBePath",
        S,
        "HAProxy templates cannot be applied by flowproxy; express the service with reconfigure parameters",
    ),
    refused(
        "compressionAlgo",
        S,
        "compression is not implemented by flowproxy yet; compress in the service",
    ),
    refused(
        "compressionType",
        S,
        "compression is not implemented by flowproxy yet; compress in the service",
    ),
    harmless("connectionMode", S, HAPROXY_TUNING),
    harmless("checkResolvers", S, HAPROXY_TUNING),
    harmless(
        "discoveryType",
        S,
        "flowproxy always balances over the replicas of tasks.<service>",
    ),
    // Destination-level.
    honoured("servicePath", D),
    honoured("port", D),
    honoured("serviceDomain", D),
    honoured("reqMode", D),
    honoured("srcPort", D),
    honoured("pathType", D),
    honoured("reqPathSearchReplace", D),
    honoured("httpsOnly", D),
    honoured("httpsRedirectCode", D),
    honoured("redirectUnlessHttpsProto", D),
    honoured("timeoutServer", D),
    honoured("timeoutTunnel", D),
    honoured("timeoutClient", D),
    honoured("outboundHostname", D),
    honoured("servicePathExclude", D),
    honoured("allowedMethods", D),
    honoured("deniedMethods", D),
    honoured("denyHttp", D),
    honoured("ignoreAuthorization", D),
    honoured("redirectFromDomain", D),
    honoured("serviceHeader", D),
    honoured("userAgent", D),
    refused(
        "httpsPort",
        D,
        "TLS to the replicas is not implemented by flowproxy yet; expose the service's plain port with port",
    ),
    refused(
        "srcHttpsPort",
        D,
        "extra HTTPS listeners are not implemented by flowproxy yet; use the HTTPS listener (--https-addr)",
    ),
    refused(
        "sslVerifyNone",
        D,
        "TLS to the replicas is not implemented by flowproxy yet; expose the service's plain port with port",
    ),
    refused(
        "verifyClientSsl",
        D,
        "client certificates are not implemented by flowproxy yet; remove it",
    ),
    refused(
        "serviceGroup",
        D,
        "TCP service groups are not implemented by flowproxy yet; give each TCP service its own srcPort",
    ),
    refused(
        "balanceGroup",
        D,
        "TCP service groups are not implemented by flowproxy yet; give each TCP service its own srcPort",
    ),
    harmless("checkTcp", D, HAPROXY_TUNING),
    harmless("clitcpka", D, HAPROXY_TUNING),
    harmless(
        "userDef",
        D,
        "is for custom HAProxy templates, which flowproxy does not use",
    ),
    // Labels of DFP's ecosystem that reach the proxy through the Swarm Listener.
    harmless(
        "nodeInfo",
        S,
        "is the Swarm Listener's node information, which flowproxy does not need",
    ),
    harmless(
        "shortName",
        S,
        "is read by the Swarm Listener, not the proxy",
    ),
    harmless("scrapePort", S, DFM),
    harmless("scrapeNetwork", S, DFM),
    harmless("scrapeInterval", S, DFM),
    harmless("alertName", D, DFM),
    harmless("alertIf", D, DFM),
    harmless("alertFor", D, DFM),
    harmless("alertLabels", D, DFM),
    harmless("alertAnnotations", D, DFM),
    harmless("alertPersistent", D, DFM),
];

const DFM: &str = "is a Docker Flow Monitor label, not a proxy setting";

/// The catalog entry of `name` (without `.N`).
pub fn find(name: &str) -> Option<&'static Param> {
    CATALOG.iter().find(|p| p.name == name)
}

/// Splits `servicePath.2` into (`servicePath`, `Some(2)`); a non-numeric suffix is part of
/// the name.
fn split_index(key: &str) -> (&str, Option<&str>) {
    match key.rsplit_once('.') {
        Some((base, n)) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => {
            (base, Some(n))
        }
        _ => (key, None),
    }
}

/// Checks every parameter against the catalog; returns the harmless ones given (names as
/// written), for the reply's Message.
///
/// Empty values are absent, as in DFP. A refused boolean set to false asks for nothing and
/// passes.
pub fn check(params: &BTreeMap<String, String>) -> Result<Vec<String>, RouteError> {
    let mut harmless = Vec::new();
    for (key, value) in params.iter().filter(|(_, v)| !v.is_empty()) {
        let (base, index) = split_index(key);
        let Some(param) = find(base) else {
            return Err(RouteError::UnknownParam { param: key.clone() });
        };
        if index.is_some() && param.level == Level::Service {
            return Err(RouteError::invalid(
                key,
                value,
                format!("{base} applies to the whole service; it takes no .N index"),
            ));
        }
        match param.class {
            Class::Honoured => {}
            Class::Refused(_) if parse_go_bool(value) == Some(false) => {}
            Class::Refused(why) => {
                return Err(RouteError::Refused {
                    param: key.clone(),
                    reason: why,
                });
            }
            Class::Harmless(_) => harmless.push(key.clone()),
        }
    }
    Ok(harmless)
}

/// The reply's Message for the harmless parameters of a change, or "" without any.
pub fn harmless_message(harmless: &[String]) -> String {
    if harmless.is_empty() {
        return String::new();
    }
    let why: Vec<String> = harmless
        .iter()
        .map(|key| {
            let reason = match find(split_index(key).0).map(|p| p.class) {
                Some(Class::Harmless(why)) => why,
                _ => "has no effect here",
            };
            format!("{key} {reason}")
        })
        .collect();
    format!("ignored (no meaning in flowproxy): {}", why.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn names_are_unique() {
        for (i, p) in CATALOG.iter().enumerate() {
            assert!(
                CATALOG[i + 1..].iter().all(|q| q.name != p.name),
                "{} twice",
                p.name
            );
        }
    }

    /// The README's migration table lists every entry, with its class, and nothing else.
    #[test]
    fn the_readme_table_is_the_catalog() {
        let readme = include_str!("../../../README.md");
        let table = readme
            .split("<!-- dfp-params -->")
            .nth(1)
            .and_then(|t| t.split("<!-- /dfp-params -->").next())
            .expect("README has the dfp-params table");
        let rows: Vec<(String, String)> = table
            .lines()
            .filter_map(|l| {
                let cells: Vec<&str> = l.split('|').map(str::trim).collect();
                let name = cells.get(1)?.strip_prefix('`')?.strip_suffix('`')?;
                Some((name.to_owned(), (*cells.get(3)?).to_owned()))
            })
            .collect();
        let expected: Vec<(String, String)> = CATALOG
            .iter()
            .map(|p| {
                let class = match p.class {
                    Class::Honoured => "honoured",
                    Class::Refused(_) => "refused",
                    Class::Harmless(_) => "harmless",
                };
                (p.name.to_owned(), class.to_owned())
            })
            .collect();
        assert_eq!(rows, expected);
    }

    #[test]
    fn honoured_parameters_pass_and_harmless_ones_are_named() {
        let ok = check(&params(&[
            ("serviceName", "a"),
            ("servicePath.1", "/a"),
            ("connectionMode", "http-server-close"),
            ("checkTcp.2", "true"),
        ]))
        .unwrap();
        assert_eq!(
            ok,
            vec!["checkTcp.2".to_owned(), "connectionMode".to_owned()]
        );
        let message = harmless_message(&ok);
        assert!(
            message.contains("connectionMode tunes HAProxy"),
            "{message}"
        );
    }

    #[test]
    fn unknown_and_refused_parameters_are_named() {
        let err = check(&params(&[("serviceName", "a"), ("servicepath", "/a")])).unwrap_err();
        assert_eq!(err.status(), 400);
        assert!(err.to_string().contains("servicepath"), "{err}");
        let err = check(&params(&[("compressionAlgo", "gzip")])).unwrap_err();
        assert!(err.to_string().starts_with("compressionAlgo "), "{err}");
        assert!(err.to_string().contains("compression"), "{err}");
        let err = check(&params(&[("aclName.2", "x")])).unwrap_err();
        assert!(err.to_string().contains("no .N index"), "{err}");
    }

    #[test]
    fn a_refused_flag_set_to_false_and_empty_values_pass() {
        assert!(check(&params(&[("sslVerifyNone", "false"), ("serviceCert", "")])).is_ok());
        assert!(check(&params(&[("sslVerifyNone", "true")])).is_err());
    }
}

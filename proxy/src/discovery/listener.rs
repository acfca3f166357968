//! `LISTENER_ADDRESS`, as in Docker Flow Proxy: at start, ask the Swarm Listener for every
//! service it knows (`/v1/docker-flow-swarm-listener/get-services`), retrying with backoff
//! until one listener answers, and configure each like a reconfigure call. (What the listener
//! sends later are plain reconfigure and remove calls.) `reload?fromListener=true` asks it to
//! send them all again.
use std::{collections::BTreeMap, net::SocketAddr, time::Duration};

use serde_json::Value;

use crate::{cluster::Cluster, routes::parse_params, wire::REQUEST_PARAMS};

/// The listener's endpoint listing its services.
pub const GET_SERVICES: &str = "/v1/docker-flow-swarm-listener/get-services";
/// The listener's endpoint that sends every service's reconfigure call again.
pub const NOTIFY_SERVICES: &str = "/v1/docker-flow-swarm-listener/notify-services";
/// The listener's port when an address gives none.
const DEFAULT_PORT: u16 = 8080;
/// First and longest pause between rounds of attempts.
const BACKOFF: (Duration, Duration) = (Duration::from_millis(500), Duration::from_secs(10));

/// A listener's address as `(host, port)`: `host`, `host:port` or `http://host[:port][/]`.
pub fn parse_address(address: &str) -> Option<(String, u16)> {
    let rest = address.trim();
    let rest = rest.strip_prefix("http://").unwrap_or(rest);
    let rest = rest.trim_end_matches('/');
    if rest.is_empty() || rest.contains('/') {
        return None;
    }
    match rest.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() => Some((host.to_owned(), port.parse().ok()?)),
        Some(_) => None,
        None => Some((rest.to_owned(), DEFAULT_PORT)),
    }
}

/// One service of the listener's answer as parameters; values that are not strings are
/// written as JSON (`3`, `true`), `distribute` and `token` are dropped.
pub fn service_params(entry: &Value) -> Option<BTreeMap<String, String>> {
    let object = entry.as_object()?;
    Some(
        object
            .iter()
            .filter(|(k, _)| !REQUEST_PARAMS.contains(&k.as_str()))
            .map(|(k, v)| {
                let value = match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                (k.clone(), value)
            })
            .collect(),
    )
}

/// The addresses of `LISTENER_ADDRESS` that parse; the others are logged once here.
fn parsed_addresses(addresses: &[String]) -> Vec<(String, u16)> {
    addresses
        .iter()
        .filter(|a| !a.trim().is_empty())
        .filter_map(|a| {
            let parsed = parse_address(a);
            if parsed.is_none() {
                tracing::error!(
                    address = a,
                    "LISTENER_ADDRESS entries are host, host:port or http://host:port; ignored"
                );
            }
            parsed
        })
        .collect()
}

/// Asks the listener to send every service's reconfigure call again
/// (`reload?fromListener=true`): the first address that answers 2xx is named in the result;
/// when none does, the error says what each answered.
pub async fn notify_services(cluster: &Cluster, addresses: &[String]) -> Result<String, String> {
    let addresses = parsed_addresses(addresses);
    if addresses.is_empty() {
        return Err(
            "no Swarm Listener is configured; set LISTENER_ADDRESS (--listener-address)".into(),
        );
    }
    let mut failures = Vec::new();
    for (host, port) in &addresses {
        let answer = match cluster.resolver.addresses(host).await {
            Ok(ips) => match ips.into_iter().next() {
                Some(ip) => cluster
                    .client
                    .get_foreign(SocketAddr::new(ip, *port), host, NOTIFY_SERVICES)
                    .await
                    .map_err(|e| e.to_string()),
                None => Err(format!("{host} has no address")),
            },
            Err(e) => Err(e.to_string()),
        };
        match answer {
            Ok(_) => return Ok(format!("{host}:{port}")),
            Err(e) => failures.push(format!("{host}:{port}: {e}")),
        }
    }
    Err(format!(
        "the Swarm Listener could not be asked to notify again: {}",
        failures.join("; ")
    ))
}

/// Fetches the listener's services (retrying until one address answers) and configures them.
pub async fn fetch_services(cluster: &Cluster, addresses: &[String]) {
    let addresses = parsed_addresses(addresses);
    if addresses.is_empty() {
        return;
    }
    let mut pause = BACKOFF.0;
    loop {
        for (host, port) in &addresses {
            match fetch(cluster, host, *port).await {
                Ok(services) => {
                    apply(cluster, host, services).await;
                    return;
                }
                Err(e) => tracing::info!(
                    listener = %format!("{host}:{port}"),
                    "the Swarm Listener did not answer yet: {e}; retrying"
                ),
            }
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(BACKOFF.1);
    }
}

async fn fetch(cluster: &Cluster, host: &str, port: u16) -> Result<Vec<Value>, String> {
    let ip = cluster
        .resolver
        .addresses(host)
        .await
        .map_err(|e| e.to_string())?
        .into_iter()
        .next()
        .ok_or_else(|| format!("{host} has no address"))?;
    cluster
        .client
        .get_foreign_json(SocketAddr::new(ip, port), host, GET_SERVICES)
        .await
        .map_err(|e| e.to_string())
}

async fn apply(cluster: &Cluster, listener: &str, services: Vec<Value>) {
    let (mut applied, mut refused) = (0, 0);
    for entry in &services {
        let Some(params) = service_params(entry) else {
            tracing::warn!(listener, "a get-services entry is not an object; skipped");
            refused += 1;
            continue;
        };
        let name = params.get("serviceName").cloned().unwrap_or_default();
        let result = match parse_params(params) {
            Ok(service) => cluster
                .local
                .changes
                .reconfigure(service)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        match result {
            Ok(()) => applied += 1,
            Err(e) => {
                refused += 1;
                tracing::warn!(
                    listener,
                    service = name,
                    "a listener's service was not configured: {e}"
                );
            }
        }
    }
    tracing::info!(
        listener,
        applied,
        refused,
        "services fetched from the Swarm Listener"
    );
    cluster.set_listener_fetched();
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn addresses_take_dfps_port_unless_given() {
        assert_eq!(
            parse_address("swarm-listener"),
            Some(("swarm-listener".into(), 8080))
        );
        assert_eq!(
            parse_address("listener:9000"),
            Some(("listener".into(), 9000))
        );
        assert_eq!(
            parse_address("http://10.0.0.2:8081/"),
            Some(("10.0.0.2".into(), 8081))
        );
        assert_eq!(parse_address(" "), None);
        assert_eq!(parse_address("host:notaport"), None);
        assert_eq!(parse_address("http://host/path"), None);
    }

    #[test]
    fn listener_entries_become_parameters_without_distribute() {
        let entry = json!({
            "serviceName": "go-demo",
            "servicePath": "/demo",
            "port": "8080",
            "replicas": 3,
            "distribute": "true"
        });
        let params = service_params(&entry).unwrap();
        assert_eq!(params["replicas"], "3");
        assert_eq!(params["servicePath"], "/demo");
        assert!(!params.contains_key("distribute"));
        assert!(parse_params(params).is_ok());
        assert!(service_params(&json!("go-demo")).is_none());
    }
}

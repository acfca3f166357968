//! Docker Flow Swarm Listener's contract, without the listener: a Swarm service labelled
//! `com.df.notify=true` is configured from its `com.df.*` labels, each label's name without
//! the prefix being a reconfigure parameter (`com.df.servicePath.1` → `servicePath.1`).
//! Pure: Swarm services in, the changes to make out.
use std::collections::{BTreeMap, BTreeSet};

use crate::routes::{RouteError, RouteTable, Service, parse_params};

/// Prefix of the labels that carry parameters.
pub const LABEL_PREFIX: &str = "com.df.";
/// Parameter marking a service configured from labels, so that it is removed with its Swarm
/// service (even after a restart) and never one configured through the API.
pub const DISCOVERED_PARAM: &str = "discoveredFrom";
/// The value of [`DISCOVERED_PARAM`].
pub const DISCOVERED_VALUE: &str = "docker";
/// The Swarm label naming a service's stack (for `com.df.shortName=true`).
const STACK_LABEL: &str = "com.docker.stack.namespace";
/// Labels that steer the listener's notifications, not the service.
const REQUEST_LABELS: [&str; 2] = ["distribute", "token"];

/// A Swarm service as discovery sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwarmService {
    /// The Swarm service's name.
    pub name: String,
    /// Its labels (`Spec.Labels`).
    pub labels: BTreeMap<String, String>,
    /// Its replica count; `None` for a global service.
    pub replicas: Option<u64>,
}

/// Labels that cannot be configured; nothing of that service is applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Swarm service {service}: {label}: {error}")]
pub struct LabelError {
    /// The Swarm service.
    pub service: String,
    /// The label(s) to fix, e.g. `label com.df.port`.
    pub label: String,
    /// What is wrong.
    pub error: RouteError,
}

impl LabelError {
    /// True when the service has no path or domain: Swarm Listener users label services for
    /// other tools too (`com.df.notify` with only scrape labels), which DFP answers with 409
    /// and the listener does not count as a failure.
    pub fn is_unrouted(&self) -> bool {
        self.error == RouteError::MissingPathOrDomain
    }
}

/// What discovery should change to match the Swarm services.
#[derive(Debug, Default)]
pub struct Plan {
    /// Services to add or replace (their labels changed, or they are new).
    pub apply: Vec<Service>,
    /// Label-made services whose Swarm service is gone (or no longer labelled).
    pub remove: Vec<String>,
    /// Services whose labels do not parse; their current configuration is kept.
    pub invalid: Vec<LabelError>,
}

/// The reconfigure parameters of `service`, or `None` if it is not labelled
/// `<notify_label>=true`.
pub fn params_for(service: &SwarmService, notify_label: &str) -> Option<BTreeMap<String, String>> {
    let notify = service.labels.get(notify_label)?;
    if !notify.trim().eq_ignore_ascii_case("true") {
        return None;
    }
    let mut params: BTreeMap<String, String> = service
        .labels
        .iter()
        .filter(|(k, _)| k.as_str() != notify_label)
        .filter_map(|(k, v)| Some((k.strip_prefix(LABEL_PREFIX)?.to_owned(), v.clone())))
        .filter(|(k, _)| !k.is_empty() && !REQUEST_LABELS.contains(&k.as_str()))
        .collect();
    let explicit = params.get("serviceName").filter(|n| !n.is_empty()).cloned();
    let name = explicit.unwrap_or_else(|| short_name(service, &params));
    params.insert("serviceName".into(), name);
    match service.replicas {
        Some(n) => params.insert("replicas".into(), n.to_string()),
        None => params.remove("replicas"),
    };
    params.insert(DISCOVERED_PARAM.into(), DISCOVERED_VALUE.into());
    Some(params)
}

/// The service's name, without its stack's prefix when labelled `com.df.shortName=true`.
fn short_name(service: &SwarmService, params: &BTreeMap<String, String>) -> String {
    let short = params
        .get("shortName")
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let stack = service.labels.get(STACK_LABEL);
    match (short, stack) {
        (true, Some(stack)) => service
            .name
            .strip_prefix(&format!("{stack}_"))
            .unwrap_or(&service.name)
            .to_owned(),
        _ => service.name.clone(),
    }
}

/// What to change so that the label-made services match `listed`.
pub fn plan(listed: &[SwarmService], notify_label: &str, current: &RouteTable) -> Plan {
    let mut plan = Plan::default();
    // Names the labels claim, valid or not: an invalid change keeps the old configuration.
    let mut claimed: BTreeMap<String, &str> = BTreeMap::new();
    for swarm in listed {
        let Some(params) = params_for(swarm, notify_label) else {
            continue;
        };
        let name = params["serviceName"].clone();
        if let Some(other) = claimed.insert(name.clone(), &swarm.name) {
            plan.invalid.push(LabelError {
                service: swarm.name.clone(),
                label: "label com.df.serviceName".into(),
                error: RouteError::InvalidValue {
                    param: "serviceName".into(),
                    value: name,
                    reason: format!(
                        "Swarm service {other} has the same serviceName; give each its own"
                    ),
                },
            });
            continue;
        }
        match parse_params(params) {
            Ok(service) => {
                let unchanged = current
                    .services()
                    .get(&service.name)
                    .is_some_and(|s| s.params == service.params);
                if !unchanged {
                    plan.apply.push(service);
                }
            }
            Err(error) => plan.invalid.push(LabelError {
                service: swarm.name.clone(),
                label: labels_to_fix(&error),
                error,
            }),
        }
    }
    let claimed: BTreeSet<&String> = claimed.keys().collect();
    plan.remove = current
        .services()
        .values()
        .filter(|s| s.params.get(DISCOVERED_PARAM).map(String::as_str) == Some(DISCOVERED_VALUE))
        .filter(|s| !claimed.contains(&s.name))
        .map(|s| s.name.clone())
        .collect();
    plan
}

/// The label(s) an error is about.
fn labels_to_fix(error: &RouteError) -> String {
    let label = |param: &str| format!("label {LABEL_PREFIX}{param}");
    match error {
        RouteError::MissingServiceName => label("serviceName"),
        RouteError::MissingPathOrDomain => {
            format!("{} or {LABEL_PREFIX}serviceDomain", label("servicePath"))
        }
        RouteError::MissingPort => label("port"),
        RouteError::TcpNeedsPorts => format!("{} and {LABEL_PREFIX}port", label("srcPort")),
        RouteError::InvalidValue { param, .. }
        | RouteError::TooLong { param }
        | RouteError::UnknownParam { param }
        | RouteError::Refused { param, .. }
        | RouteError::BadRegex { param, .. } => label(param),
        // HTTP routes may be shared; only a srcPort or the default backend can clash.
        RouteError::Conflict { .. } => {
            format!("labels {LABEL_PREFIX}srcPort/{LABEL_PREFIX}isDefaultBackend")
        }
    }
}

#[cfg(test)]
mod tests;

//! `flowproxy stats`: the data plane's counters as tables or JSON, read from the pinned maps
//! (no running proxy needed), plus per-replica request counts from the API. With no maps
//! pinned (a proxy without its data plane) the API's counts are all there is; whatever cannot
//! be read makes the command exit non-zero, saying what is missing.
use std::{collections::BTreeMap, io::Write as _, path::Path, time::Duration};

use anyhow::{Context as _, bail};

use crate::{
    cli::StatsArgs,
    dataplane::{self, DataPlaneError},
    local_api,
};

/// How long the API may take to send its metrics.
const API_TIMEOUT: Duration = Duration::from_secs(2);

/// Prints the counters pinned under `pin_dir`, or the API's when none are pinned.
pub fn run(pin_dir: &Path, args: &StatsArgs) -> anyhow::Result<()> {
    let metrics = fetch_metrics(&args.api_url);
    let interfaces = match dataplane::read_iface_stats(pin_dir) {
        Ok(interfaces) => interfaces,
        Err(not_pinned @ DataPlaneError::NotPinned { .. }) => {
            let metrics = metrics.map_err(|api| {
                anyhow::anyhow!("{not_pinned}; and the API cannot say either: {api}")
            })?;
            return print_from_api(&metrics, pin_dir, args.json);
        }
        Err(e) => return Err(e).context("reading the pinned interface counters"),
    };
    let backends =
        dataplane::read_backend_stats(pin_dir).context("reading the pinned replica counters")?;
    let l4 = dataplane::read_l4_stats(pin_dir).context("reading the pinned fast-path counters")?;
    let requests = metrics.as_deref().ok().map(backend_requests);
    let slow = metrics
        .as_deref()
        .ok()
        .map(l4_slow_connections)
        .unwrap_or_default();
    let names = metrics
        .as_deref()
        .ok()
        .map(l4_service_names)
        .unwrap_or_default();
    let requests_of = |service: &str, backend: &str| {
        requests.as_ref().map(|r| {
            r.get(&(service.to_owned(), backend.to_owned()))
                .copied()
                .unwrap_or(0)
        })
    };
    let mut out = std::io::stdout().lock();
    if args.json {
        let backends: Vec<serde_json::Value> = backends
            .iter()
            .map(|b| {
                let mut v = serde_json::to_value(b).unwrap_or_default();
                v["requests"] = requests_of(&b.service, &b.backend.to_string()).into();
                v
            })
            .collect();
        let l4_services: Vec<serde_json::Value> = l4
            .services
            .iter()
            .map(|s| {
                let mut v = serde_json::to_value(s).unwrap_or_default();
                let service = names.get(&s.port).cloned();
                let mut slow_flows = slow.get(&s.port).map(|(_, n)| *n);
                if metrics.is_ok() {
                    // The API answered: no sample means no flow relayed yet.
                    slow_flows.get_or_insert(0);
                }
                v["service"] = service.into();
                v["slow_flows"] = slow_flows.into();
                v["slow_not_attached"] = slow_flows.map(|n| not_attached(n, &s.counters)).into();
                v
            })
            .collect();
        let doc = serde_json::json!({
            "source": "maps",
            "backends": backends,
            "interfaces": interfaces,
            "l4": {
                "flows": l4.flows,
                "flow_limit": l4.flow_limit,
                "services": l4_services,
                "global": l4.global,
            },
        });
        writeln!(out, "{}", serde_json::to_string_pretty(&doc)?)?;
        return missing_requests(metrics.err());
    }
    writeln!(
        out,
        "{:<20} {:<22} {:>9} {:>10} {:>12} {:>10} {:>12} {:>7} {:>7}",
        "SERVICE",
        "REPLICA",
        "REQUESTS",
        "PKTS_IN",
        "BYTES_IN",
        "PKTS_OUT",
        "BYTES_OUT",
        "CONNS",
        "RESETS"
    )?;
    for b in &backends {
        let c = &b.counters;
        let backend = b.backend.to_string();
        let reqs = requests_of(&b.service, &backend).map_or("-".to_owned(), |n| n.to_string());
        writeln!(
            out,
            "{:<20} {:<22} {:>9} {:>10} {:>12} {:>10} {:>12} {:>7} {:>7}",
            b.service,
            backend,
            reqs,
            c.packets_in,
            c.bytes_in,
            c.packets_out,
            c.bytes_out,
            c.connections,
            c.resets
        )?;
    }
    writeln!(out)?;
    writeln!(
        out,
        "{:<16} {:>8} {:>6} {:>14} {:>16}",
        "INTERFACE", "IFINDEX", "HOOK", "PACKETS_IN", "BYTES_IN"
    )?;
    for s in &interfaces {
        let name = s.interface.as_deref().unwrap_or("(gone)");
        writeln!(
            out,
            "{name:<16} {:>8} {:>6} {:>14} {:>16}",
            s.ifindex,
            s.hook.unwrap_or("-"),
            s.packets,
            s.bytes
        )?;
    }
    writeln!(out)?;
    writeln!(
        out,
        "TCP-MODE FAST PATH: {} flows held, limit {}",
        l4.flows, l4.flow_limit
    )?;
    writeln!(
        out,
        "{:<20} {:>6} {:>6} {:>10} {:>10} {:>10} {:>9} {:>9} {:>11} {:>12} {:>12} {:>12} {:>12}",
        "SERVICE",
        "PORT",
        "RING",
        "FAST",
        "SLOW",
        "CT_FULL",
        "NO_PORT",
        "NO_ROUTE",
        "NO_REPLICA",
        "NO_NEIGHBOUR",
        "RETURN_PATH",
        "OTHER_FAMILY",
        "NOT_ATTACHED"
    )?;
    for s in &l4.services {
        let c = &s.counters;
        let service = names.get(&s.port).map_or("-", String::as_str);
        let (slow_flows, unseen) = match (slow.get(&s.port), metrics.is_ok()) {
            (Some((_, n)), _) => (n.to_string(), not_attached(*n, c).to_string()),
            // The API answered without a sample: nothing relayed yet.
            (None, true) => ("0".to_owned(), "0".to_owned()),
            (None, false) => ("-".to_owned(), "-".to_owned()),
        };
        writeln!(
            out,
            "{service:<20} {:>6} {:>6} {:>10} {slow_flows:>10} {:>10} {:>9} {:>9} {:>11} {:>12} {:>12} {:>12} {unseen:>12}",
            s.port,
            s.ring_size,
            c.fast_flows,
            c.slow_conntrack_full,
            c.slow_no_port,
            c.slow_no_route,
            c.slow_no_replica,
            c.slow_no_neighbour,
            c.slow_return_path,
            c.slow_other_family
        )?;
    }
    missing_requests(metrics.err())
}

/// The maps were read; an API that did not answer still fails the command, since a proxy
/// killed with its pins kept leaves counters that look alive.
fn missing_requests(api: Option<String>) -> anyhow::Result<()> {
    match api {
        None => Ok(()),
        Some(api) => bail!(
            "{api}: the counters above are the pinned maps' (they outlive a proxy that is \
             not running), the request counts are missing; is the proxy running, with this --api-url?"
        ),
    }
}

/// The API's counts alone, when no maps are pinned.
fn print_from_api(metrics: &str, pin_dir: &Path, json: bool) -> anyhow::Result<()> {
    let requests = backend_requests(metrics);
    let slow = l4_slow_connections(metrics);
    let mut out = std::io::stdout().lock();
    if json {
        let backends: Vec<serde_json::Value> = requests
            .iter()
            .map(|((service, backend), n)| {
                serde_json::json!({"service": service, "backend": backend, "requests": n})
            })
            .collect();
        let l4: Vec<serde_json::Value> = slow
            .iter()
            .map(|(port, (service, n))| {
                serde_json::json!({"service": service, "port": port, "slow_flows": n})
            })
            .collect();
        let doc = serde_json::json!({
            "source": "api",
            "backends": backends,
            "l4": {"services": l4},
        });
        writeln!(out, "{}", serde_json::to_string_pretty(&doc)?)?;
        return Ok(());
    }
    writeln!(
        out,
        "no maps are pinned under {}: request counts from the API only (packet and byte \
         counters need the data plane)",
        pin_dir.display()
    )?;
    writeln!(out, "{:<20} {:<22} {:>9}", "SERVICE", "REPLICA", "REQUESTS")?;
    for ((service, backend), n) in &requests {
        writeln!(out, "{service:<20} {backend:<22} {n:>9}")?;
    }
    writeln!(out)?;
    writeln!(out, "{:<20} {:>6} {:>10}", "SERVICE", "PORT", "SLOW")?;
    for (port, (service, n)) in &slow {
        writeln!(out, "{service:<20} {port:>6} {n:>10}")?;
    }
    Ok(())
}

/// Slow flows whose SYN the fast path never saw: the relay accepted them (`slow`, counted on
/// the socket side), but no program counted a reason, so the SYN arrived on an interface
/// without the program (or the fast path is off).
fn not_attached(slow: u64, c: &proxy_common::fastpath::ServiceCounters) -> u64 {
    slow.saturating_sub(c.slow_with_reason())
}

/// The service that owns each fast-path port, from `flowproxy_l4_fast_flows_total` (one sample
/// per programmed port, even before any flow), so a service all of whose flows went fast is
/// still named.
fn l4_service_names(metrics: &str) -> BTreeMap<u16, String> {
    metrics
        .lines()
        .filter(|l| l.starts_with("flowproxy_l4_fast_flows_total{"))
        .filter_map(|line| Some((label(line, "port")?.parse().ok()?, label(line, "service")?)))
        .filter(|(_, service)| service != "-")
        .collect()
}

/// `flowproxy_l4_service_connections_total` samples: port → (service, connections relayed
/// by the slow path).
fn l4_slow_connections(metrics: &str) -> BTreeMap<u16, (String, u64)> {
    metrics
        .lines()
        .filter(|l| l.starts_with("flowproxy_l4_service_connections_total{"))
        .filter_map(|line| {
            let service = label(line, "service")?;
            let port = label(line, "port")?.parse().ok()?;
            let value = line.rsplit(' ').next()?.parse().ok()?;
            Some((port, (service, value)))
        })
        .collect()
}

fn label(line: &str, name: &str) -> Option<String> {
    let start = line.find(&format!("{name}=\""))? + name.len() + 2;
    let end = line[start..].find('"')? + start;
    Some(line[start..end].to_owned())
}

/// The API's `/metrics` text, or why it could not be had.
fn fetch_metrics(api_url: &str) -> Result<String, String> {
    let answer = local_api::get(api_url, "/metrics", API_TIMEOUT).map_err(|e| e.to_string())?;
    if answer.status != hyper::StatusCode::OK {
        return Err(format!(
            "{}/metrics answered {}: {}",
            api_url.trim_end_matches('/'),
            answer.status.as_u16(),
            answer.message()
        ));
    }
    Ok(answer.body)
}

/// `flowproxy_backend_requests_total` samples by (service, backend).
fn backend_requests(metrics: &str) -> BTreeMap<(String, String), u64> {
    metrics
        .lines()
        .filter(|l| l.starts_with("flowproxy_backend_requests_total{"))
        .filter_map(|l| {
            let value = l.rsplit(' ').next()?.parse().ok()?;
            Some(((label(l, "service")?, label(l, "backend")?), value))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_counts_are_read_per_replica() {
        let text = "# TYPE flowproxy_backend_requests counter\n\
            flowproxy_backend_requests_total{service=\"go-demo\",backend=\"198.18.0.2:8080\"} 12\n\
            flowproxy_service_requests_total{service=\"go-demo\",code=\"200\",method=\"GET\"} 12\n";
        let counts = backend_requests(text);
        assert_eq!(counts.len(), 1);
        assert_eq!(
            counts[&("go-demo".to_owned(), "198.18.0.2:8080".to_owned())],
            12
        );
    }

    #[test]
    fn a_port_all_of_whose_flows_went_fast_is_still_named() {
        let text = "flowproxy_l4_fast_flows_total{service=\"db\",port=\"15432\"} 50\n\
            flowproxy_l4_fast_flows_total{service=\"-\",port=\"15433\"} 3\n\
            flowproxy_l4_service_connections_total{service=\"other\",port=\"16000\"} 2\n";
        let names = l4_service_names(text);
        assert_eq!(names.len(), 1, "{names:?}");
        assert_eq!(names[&15432], "db");
        assert!(!l4_slow_connections(text).contains_key(&15432));
    }
}

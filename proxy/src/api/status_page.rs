//! `GET /` on the API port: a read-only HTML page of what this replica is doing (services,
//! their routes and replicas with health and the fast/slow split of TCP-mode flows, peers and
//! their sync state, discovery, certificates with expiry, recent refused changes). One
//! server-rendered page, inline CSS, no script and no external asset, so it works from a
//! node with no internet access. It needs the API token when one is set (`?token=`).
use std::{collections::BTreeMap, fmt::Write as _, net::SocketAddr};

use hyper::{Response, header};
use serde_json::Value;

use super::{ApiContext, cluster::peer_states, refusals::Refused};
use crate::{
    dataplane::read_l4_stats,
    discovery::DockerState,
    http_body::{Body, text_body},
    routes::ReqMode,
    tls::CertInfo,
};

/// The page, rendered now.
pub async fn page(ctx: &ApiContext) -> Response<Body> {
    let view = gather(ctx).await;
    Response::builder()
        .header(header::CONTENT_TYPE, "text/html; charset=utf-8")
        .header(header::CACHE_CONTROL, "no-store")
        .body(text_body(render(&view)))
        .expect("static headers are valid")
}

/// Everything the page shows, gathered first so that rendering is a pure function.
struct View {
    now: i64,
    ready: bool,
    discovery: String,
    docker: Option<DockerState>,
    listener: Option<bool>,
    services: Vec<ServiceRow>,
    peers: Value,
    certs: Vec<CertInfo>,
    refused: Vec<Refused>,
}

struct ServiceRow {
    name: String,
    routes: Vec<RouteRow>,
}

struct RouteRow {
    tcp: bool,
    route: String,
    port: u16,
    replicas: Vec<(SocketAddr, bool)>,
    last_error: Option<String>,
    /// TCP mode with the fast path on: flows it took and SYNs it passed on with a reason.
    flows: Option<(u64, u64)>,
}

async fn gather(ctx: &ApiContext) -> View {
    let snapshot = ctx.changes.control.snapshot_full();
    let l4: BTreeMap<u16, (u64, u64)> = ctx
        .pin_dir
        .as_deref()
        .and_then(|dir| read_l4_stats(dir).ok())
        .map(|stats| {
            stats
                .services
                .iter()
                .map(|s| {
                    (
                        s.port,
                        (s.counters.fast_flows, s.counters.slow_with_reason()),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let services = snapshot
        .routes
        .services()
        .values()
        .map(|service| ServiceRow {
            name: service.name.clone(),
            routes: service
                .destinations
                .iter()
                .map(|dest| {
                    let set = snapshot.upstream(service, dest);
                    let tcp = dest.req_mode == ReqMode::Tcp;
                    let route = if tcp {
                        format!(":{}", dest.src_port.unwrap_or(0))
                    } else {
                        let domains: Vec<String> =
                            dest.domains.iter().map(ToString::to_string).collect();
                        let paths = dest.paths.join(", ");
                        if domains.is_empty() {
                            paths
                        } else {
                            format!("{} {paths}", domains.join(", "))
                        }
                    };
                    RouteRow {
                        tcp,
                        route,
                        port: dest.port,
                        replicas: set.map(|s| s.health()).unwrap_or_default(),
                        last_error: set.and_then(|s| s.last_error()),
                        flows: dest.src_port.and_then(|p| l4.get(&p).copied()),
                    }
                })
                .collect(),
        })
        .collect();
    View {
        now: crate::tls::unix_now(),
        ready: ctx.cluster.is_ready(),
        discovery: ctx.discovery.clone(),
        docker: ctx.discovery_status.docker(),
        listener: ctx
            .cluster
            .listener_expected()
            .then(|| ctx.cluster.listener_fetched()),
        services,
        peers: peer_states(ctx).await,
        certs: ctx.certs.list(),
        refused: ctx.refusals.newest_first(),
    }
}

const STYLE: &str = "body{font:14px system-ui,sans-serif;margin:1.5em;color:#222}\
h1{font-size:1.4em}h2{font-size:1.1em;margin-top:1.6em}\
table{border-collapse:collapse;margin:.4em 0}td,th{border:1px solid #ccc;padding:.25em .6em;\
text-align:left;vertical-align:top}th{background:#f2f2f2}.up{color:#176117}.down{color:#a11}\
.muted{color:#777}code{font-size:.95em}";

fn render(v: &View) -> String {
    let mut h = String::with_capacity(8192);
    let _ = write!(
        h,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>flowproxy</title>\
         <style>{STYLE}</style></head><body><h1>flowproxy {}</h1><p>This replica is \
         <b id=\"ready\">{}</b>. Discovery: {}. Swarm Listener: {}.</p>",
        env!("CARGO_PKG_VERSION"),
        if v.ready { "ready" } else { "starting" },
        esc(&v.discovery),
        match v.listener {
            None => "not configured",
            Some(true) => "its services are applied",
            Some(false) => "waiting for its services",
        }
    );
    if let Some(docker) = &v.docker {
        render_docker(&mut h, docker, v.now);
    }
    render_services(&mut h, &v.services);
    render_peers(&mut h, &v.peers);
    render_certs(&mut h, &v.certs, v.now);
    render_refused(&mut h, &v.refused, &v.peers);
    h.push_str("</body></html>\n");
    h
}

fn render_services(h: &mut String, services: &[ServiceRow]) {
    let _ = write!(h, "<h2>Services ({})</h2>", services.len());
    if services.is_empty() {
        h.push_str("<p class=\"muted\">No service is configured yet.</p>");
        return;
    }
    h.push_str(
        "<table id=\"services\"><tr><th>service</th><th>mode</th><th>route</th><th>port</th>\
         <th>replicas</th><th>fast / slow flows</th></tr>",
    );
    for s in services {
        for r in &s.routes {
            let replicas = if r.replicas.is_empty() {
                let why = r.last_error.as_deref().unwrap_or("none found yet");
                format!("<span class=\"down\">none: {}</span>", esc(why))
            } else {
                r.replicas
                    .iter()
                    .map(|(addr, up)| {
                        let (class, word) = if *up {
                            ("up", "up")
                        } else {
                            ("down", "ejected")
                        };
                        format!("<span class=\"{class}\">{addr} {word}</span>")
                    })
                    .collect::<Vec<_>>()
                    .join("<br>")
            };
            let flows = match (r.tcp, r.flows) {
                (true, Some((fast, slow))) => format!("{fast} / {slow}"),
                (true, None) => "<span class=\"muted\">fast path off</span>".to_owned(),
                (false, _) => String::new(),
            };
            let _ = write!(
                h,
                "<tr><td class=\"service\">{}</td><td>{}</td><td><code>{}</code></td><td>{}</td>\
                 <td>{replicas}</td><td>{flows}</td></tr>",
                esc(&s.name),
                if r.tcp { "tcp" } else { "http" },
                esc(&r.route),
                r.port
            );
        }
    }
    h.push_str("</table>");
}

/// Docker label discovery as it runs now: the last read, or what stops it and since when.
fn render_docker(h: &mut String, docker: &DockerState, now: i64) {
    let state = match (&docker.problem, docker.last_read) {
        (Some((since, problem)), _) => format!(
            "<span class=\"down\">failing for {} s: {}</span>",
            (now - since).max(0),
            esc(problem)
        ),
        (None, Some(at)) => format!(
            "<span class=\"up\">read {} s ago</span>, {} labelled service{}",
            (now - at).max(0),
            docker.labelled,
            if docker.labelled == 1 { "" } else { "s" }
        ),
        (None, None) => "<span class=\"muted\">not read yet</span>".to_owned(),
    };
    let _ = write!(
        h,
        "<p>Docker label discovery: <span id=\"docker-discovery\">{state}</span>.</p>"
    );
}

fn render_peers(h: &mut String, peers: &Value) {
    let rows = peers["Peers"].as_array().cloned().unwrap_or_default();
    let _ = write!(
        h,
        "<h2>Peers ({})</h2><p class=\"muted\">Looked up as <code>{}</code>. {}</p>",
        rows.len(),
        esc(peers["Tasks"].as_str().unwrap_or("-")),
        esc(peers["Message"].as_str().unwrap_or(""))
    );
    if rows.is_empty() {
        return;
    }
    h.push_str("<table id=\"peers\"><tr><th>peer</th><th>state</th></tr>");
    for p in rows {
        let state = match (p["Error"].as_str(), p["InSync"].as_bool()) {
            (Some(e), _) => format!("<span class=\"down\">unreachable: {}</span>", esc(e)),
            (None, Some(true)) => "<span class=\"up\">in sync</span>".to_owned(),
            (None, _) => "<span class=\"down\">differs (merging)</span>".to_owned(),
        };
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{state}</td></tr>",
            esc(p["Address"].as_str().unwrap_or("?"))
        );
    }
    h.push_str("</table>");
}

fn render_certs(h: &mut String, certs: &[CertInfo], now: i64) {
    let _ = write!(h, "<h2>Certificates ({})</h2>", certs.len());
    if certs.is_empty() {
        return;
    }
    h.push_str(
        "<table id=\"certs\"><tr><th>name</th><th>serves</th><th>source</th><th>expires</th></tr>",
    );
    for c in certs {
        let days = (c.not_after - now).div_euclid(86_400);
        let expiry = if days < 0 {
            "<span class=\"down\">expired</span>".to_owned()
        } else if days < 14 {
            format!("<span class=\"down\">in {days} days</span>")
        } else {
            format!("in {days} days")
        };
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{expiry}</td></tr>",
            esc(&c.name),
            esc(&c.sans.join(", ")),
            esc(&c.source)
        );
    }
    h.push_str("</table>");
}

fn render_refused(h: &mut String, refused: &[Refused], peers: &Value) {
    let from_peers = peers["Refused"].as_array().cloned().unwrap_or_default();
    let _ = write!(
        h,
        "<h2>Refused changes ({})</h2>",
        refused.len() + from_peers.len()
    );
    if refused.is_empty() && from_peers.is_empty() {
        h.push_str("<p class=\"muted\">None lately.</p>");
        return;
    }
    h.push_str(
        "<table id=\"refused\"><tr><th>from</th><th>change</th><th>status</th><th>reason</th></tr>",
    );
    for r in refused {
        let _ = write!(
            h,
            "<tr><td>{}</td><td><code>{}</code> {}</td><td>{}</td><td>{}</td></tr>",
            r.client,
            esc(&r.path),
            esc(r.service.as_deref().unwrap_or("")),
            r.status,
            esc(&r.reason)
        );
    }
    for p in from_peers {
        let _ = write!(
            h,
            "<tr><td>peer {}</td><td>{} {}</td><td>-</td><td>{}</td></tr>",
            esc(p["Peer"].as_str().unwrap_or("?")),
            esc(p["Kind"].as_str().unwrap_or("")),
            esc(p["Name"].as_str().unwrap_or("")),
            esc(p["Error"].as_str().unwrap_or(""))
        );
    }
    h.push_str("</table>");
}

/// Text made safe for HTML element content and attribute values.
fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests;

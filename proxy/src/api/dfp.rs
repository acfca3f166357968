//! The Docker Flow Proxy endpoints. Parameter names, status codes and messages follow DFP.
use bytes::Bytes;
use hyper::{Method, Response, header};
use serde_json::{Map, Value};

use super::{
    ApiContext, certs,
    envelope::{self, Reply},
};

use crate::{
    changes::{Applied, Changes},
    control::ControlPlane,
    http_body::{Body, text_body},
    routes::{Service, catalog, parse_go_bool, parse_reconfigure, render_haproxy},
};

type Query = [(String, String)];

use crate::{versioning::Version, wire::REQUEST_PARAMS};

/// The first value of `name`, as DFP (Go's `url.Values.Get`) takes it.
fn param<'a>(query: &'a Query, name: &str) -> Option<&'a str> {
    query
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .filter(|v| !v.is_empty())
}

/// `reconfigure`: add or replace a service. A rejected request changes nothing.
///
/// `changes` carries the version a distributing peer gave the change (`version`), which a
/// `serviceCert` keeps too.
pub async fn reconfigure(
    ctx: &ApiContext,
    changes: &Changes,
    query: &Query,
    version: Option<Version>,
) -> Reply {
    let name = param(query, "serviceName");
    let cert = param(query, "serviceCert").map(str::to_owned);
    let params: Vec<(String, String)> = query
        .iter()
        .filter(|(k, _)| !REQUEST_PARAMS.contains(&k.as_str()) && k != "serviceCert")
        .cloned()
        .collect();
    let service = match parse_reconfigure(&params) {
        Ok(service) => service,
        Err(e) => {
            changes.control.change_counters().rejected.inc();
            return envelope::error(e.status(), &e.to_string(), name);
        }
    };
    // A service for another proxy instance changes nothing here, its certificate included.
    if let Some(why) = changes.filtered_out(&service) {
        tracing::info!(service = %service.name, "{why}");
        return ok_named(&why, &service.name);
    }
    if let Some(pem) = cert {
        let reply = store_service_cert(ctx, &service, &pem, version).await;
        if !reply.is_success() {
            return reply;
        }
    }
    // Harmless parameters are named, so nobody believes they did something.
    let harmless = catalog::check(&service.params).unwrap_or_default();
    let message = catalog::harmless_message(&harmless);
    if !harmless.is_empty() {
        tracing::warn!(service = %service.name, "{message}");
    }
    match changes.reconfigure(service.clone()).await {
        Ok(Applied::Configured) => {
            tracing::info!(service = %service.name, "service configured");
            envelope::ok(&message, Some(&service))
        }
        Ok(Applied::Removed(removed)) => {
            tracing::info!(service = %service.name, removed, "replicas=0: service removed");
            let what = if removed {
                "replicas=0: the service was removed"
            } else {
                "replicas=0: the service is not configured; nothing was removed"
            };
            ok_named(what, &service.name)
        }
        Ok(Applied::Filtered(why)) => ok_named(&why, &service.name),
        Err(e) => {
            tracing::info!(service = %service.name, "reconfigure refused: {e}");
            envelope::error(e.status(), &e.to_string(), name)
        }
    }
}

/// `serviceCert`: the PEM (DFP's clients write its newlines as a literal `\n`), stored and
/// served like a `PUT /cert`, named after the service's first domain, else the service.
async fn store_service_cert(
    ctx: &ApiContext,
    service: &Service,
    pem: &str,
    version: Option<Version>,
) -> Reply {
    let domain = service
        .destinations
        .first()
        .and_then(|d| d.domains.first())
        .map(ToString::to_string)
        .filter(|d| !d.starts_with('*'));
    let name = domain.unwrap_or_else(|| service.name.clone());
    let body = Bytes::from(pem.replace("\\n", "\n"));
    let mut reply = certs::put(ctx, Some(&name), &Method::PUT, body, version).await;
    if !reply.is_success() {
        let message = reply
            .body
            .get("Message")
            .and_then(|m| m.as_str())
            .unwrap_or_default()
            .to_owned();
        reply.body.insert(
            "Message".into(),
            format!("serviceCert is refused: {message}").into(),
        );
        reply
            .body
            .insert("ServiceName".into(), service.name.clone().into());
    }
    reply
}

/// `remove`: drop a service's routes.
pub async fn remove(changes: &Changes, query: &Query) -> Reply {
    let Some(name) = param(query, "serviceName") else {
        return envelope::error(400, "The serviceName query is mandatory", None);
    };
    match changes.remove(name).await {
        Ok(true) => {
            tracing::info!(service = %name, "service removed");
            ok_named("", name)
        }
        Ok(false) => ok_named(
            &format!("service {name} is not configured; nothing was removed"),
            name,
        ),
        Err(e) => envelope::error(e.status(), &e.to_string(), Some(name)),
    }
}

fn ok_named(message: &str, name: &str) -> Reply {
    let mut reply = envelope::ok(message, None);
    reply.body.insert("ServiceName".into(), name.into());
    reply
}

/// `config`: the routes as HAProxy-style text, or `type=json` for a map of services.
pub fn config(control: &ControlPlane, query: &Query) -> Response<Body> {
    let snapshot = control.snapshot();
    if param(query, "type").is_some_and(|t| t.eq_ignore_ascii_case("json")) {
        let services: Map<String, Value> = snapshot
            .routes
            .services()
            .iter()
            .map(|(name, s)| {
                (
                    name.clone(),
                    serde_json::to_value(&**s).unwrap_or(Value::Null),
                )
            })
            .collect();
        return envelope::json_response(200, &Value::Object(services));
    }
    Response::builder()
        .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(text_body(render_haproxy(&snapshot.routes)))
        .expect("static headers are valid")
}

/// `reload`: re-resolve every service's replicas now; with `fromListener=true`, ask the Swarm
/// Listener to send every service again instead (500 when no listener could be asked).
/// `recreate` regenerates HAProxy's file in DFP: harmless here, and named in the Message.
/// With `distribute=true` every replica reloads (the caller sends it on).
pub async fn reload(ctx: &ApiContext, query: &Query) -> Reply {
    let mut from_listener = false;
    let mut notes = Vec::new();
    for (name, value) in query {
        match name.as_str() {
            "fromListener" => match parse_go_bool(value) {
                Some(b) => from_listener = b,
                None => {
                    let message = format!("fromListener={value} must be true or false");
                    return envelope::error(400, &message, None);
                }
            },
            "recreate" => notes.push(
                "recreate is ignored: flowproxy has no configuration file to regenerate".to_owned(),
            ),
            other if REQUEST_PARAMS.contains(&other) => {}
            other => {
                let message = format!(
                    "{other} is not a parameter of reload (it takes fromListener and recreate)"
                );
                return envelope::error(400, &message, None);
            }
        }
    }
    if from_listener {
        let cluster = &ctx.cluster;
        return match crate::discovery::notify_services(cluster, cluster.listener_addresses()).await
        {
            Ok(listener) => {
                tracing::info!(%listener, "the Swarm Listener was asked to notify its services");
                notes.push(format!(
                    "the Swarm Listener at {listener} was asked to send every service again"
                ));
                envelope::ok(&notes.join("; "), None)
            }
            Err(e) => {
                tracing::warn!("reload?fromListener=true: {e}");
                envelope::error(500, &e, None)
            }
        };
    }
    ctx.changes.control.refresh_all().await;
    envelope::ok(&notes.join("; "), None)
}

//! The Docker Flow Proxy endpoints. Parameter names, status codes and messages follow DFP.
use hyper::{Response, header};
use serde_json::{Map, Value};

use super::envelope;
use std::sync::Arc;

use crate::{
    control::ControlPlane,
    l4::L4Listeners,
    l7::Body,
    routes::{ReqMode, distribute_requested, parse_reconfigure, render_haproxy},
};

type Query = [(String, String)];

fn param<'a>(query: &'a Query, name: &str) -> Option<&'a str> {
    query
        .iter()
        .rev()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .filter(|v| !v.is_empty())
}

/// `reconfigure`: add or replace a service. A rejected request changes nothing.
pub async fn reconfigure(
    control: &ControlPlane,
    l4: &Arc<L4Listeners>,
    query: &Query,
) -> Response<Body> {
    note_local_only(query);
    let name = param(query, "serviceName");
    let service = match parse_reconfigure(query) {
        Ok(service) => service,
        Err(e) => return envelope::error(e.status(), &e.to_string(), name),
    };
    // A TCP-mode service needs its port: a taken one refuses the change before it is applied.
    for port in service
        .destinations
        .iter()
        .filter(|d| d.req_mode == ReqMode::Tcp)
        .filter_map(|d| d.src_port)
    {
        if let Err(e) = l4.reserve(port) {
            return envelope::error(409, &e.to_string(), name);
        }
    }
    let result = control.reconfigure(service.clone()).await;
    l4.sync();
    match result {
        Ok(()) => {
            tracing::info!(service = %service.name, "service configured");
            envelope::ok("", Some(&service))
        }
        Err(e) => envelope::error(e.status(), &e.to_string(), name),
    }
}

/// `remove`: drop a service's routes.
pub async fn remove(
    control: &ControlPlane,
    l4: &Arc<L4Listeners>,
    query: &Query,
) -> Response<Body> {
    note_local_only(query);
    let Some(name) = param(query, "serviceName") else {
        return envelope::error(400, "The serviceName query is mandatory", None);
    };
    let result = control.remove(name).await;
    l4.sync();
    match result {
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

/// Peers are not known yet, so `distribute=true` (which the Swarm Listener always sends) is
/// applied to this replica only.
fn note_local_only(query: &Query) {
    if distribute_requested(query) {
        tracing::debug!("distribute=true: applied to this replica only (no peers are known)");
    }
}

fn ok_named(message: &str, name: &str) -> Response<Body> {
    let mut object = Map::new();
    object.insert("Status".into(), "OK".into());
    object.insert("Message".into(), message.into());
    object.insert("ServiceName".into(), name.into());
    envelope::json_response(200, &Value::Object(object))
}

/// `config`: the routes as HAProxy-style text, or `type=json` for a map of services.
pub fn config(control: &ControlPlane, query: &Query) -> Response<Body> {
    let snapshot = control.snapshot();
    if param(query, "type") == Some("json") {
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
        .body(crate::l7::text_body(render_haproxy(&snapshot.routes)))
        .expect("static headers are valid")
}

/// `reload`: re-resolve every service's replicas now.
pub async fn reload(control: &ControlPlane) -> Response<Body> {
    control.refresh_all().await;
    envelope::ok("", None)
}

/// `ping`: liveness.
pub fn ping() -> Response<Body> {
    envelope::ok("", None)
}

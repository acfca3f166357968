//! The Docker Flow Proxy endpoints. Parameter names, status codes and messages follow DFP.
use hyper::{Response, header};
use serde_json::{Map, Value};

use super::envelope::{self, Reply};

use crate::{
    changes::{Applied, Changes},
    control::ControlPlane,
    l7::Body,
    routes::{catalog, parse_reconfigure, render_haproxy},
};

type Query = [(String, String)];

use crate::wire::REQUEST_PARAMS;

/// The first value of `name`, as DFP (Go's `url.Values.Get`) takes it.
fn param<'a>(query: &'a Query, name: &str) -> Option<&'a str> {
    query
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .filter(|v| !v.is_empty())
}

/// `reconfigure`: add or replace a service. A rejected request changes nothing.
pub async fn reconfigure(changes: &Changes, query: &Query) -> Reply {
    let name = param(query, "serviceName");
    let params: Vec<(String, String)> = query
        .iter()
        .filter(|(k, _)| !REQUEST_PARAMS.contains(&k.as_str()))
        .cloned()
        .collect();
    let service = match parse_reconfigure(&params) {
        Ok(service) => service,
        Err(e) => return envelope::error(e.status(), &e.to_string(), name),
    };
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
        Err(e) => {
            tracing::info!(service = %service.name, "reconfigure refused: {e}");
            envelope::error(e.status(), &e.to_string(), name)
        }
    }
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
        .body(crate::l7::text_body(render_haproxy(&snapshot.routes)))
        .expect("static headers are valid")
}

/// `reload`: re-resolve every service's replicas now.
pub async fn reload(control: &ControlPlane) -> Response<Body> {
    control.refresh_all().await;
    envelope::ok("", None).into_response()
}

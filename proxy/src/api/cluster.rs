//! flowproxy's own endpoints for replicas (under `/v1/flowproxy/`), and the readiness DFP's
//! health checks see:
//! - `GET /v1/flowproxy/config`: every entry (services as reconfigure parameters, API
//!   certificates with their keys, tombstones as `null`) with its version; what a peer merges;
//! - `GET /v1/flowproxy/config/version`: the digest alone, for the periodic comparison;
//! - `GET /v1/flowproxy/peers`: the other replicas and their digests, and the peers' entries
//!   this replica refused, for operators;
//! - `POST /v1/flowproxy/sync`: compare with the peers now (and merge where digests differ);
//! - `/v1/docker-flow-proxy/ping`: 503 until the start-up bootstrap is over;
//! - `/v1/docker-flow-proxy/successfulinitreload`: 200 once the Swarm Listener's services are
//!   applied (always, without LISTENER_ADDRESS), else 500, as in DFP.
use futures_util::future::join_all;
use hyper::Response;
use serde_json::{Value, json};

use super::{ApiContext, envelope};
use crate::{
    cluster::{VERSION_PATH, VersionAnswer, converge_once},
    http_body::Body,
};

/// `GET /v1/flowproxy/config`.
pub fn config(ctx: &ApiContext) -> Response<Body> {
    let config = ctx.cluster.local.export();
    let mut body = serde_json::to_value(&config).unwrap_or(Value::Null);
    if let Value::Object(fields) = &mut body {
        fields.insert("Status".into(), "OK".into());
    }
    envelope::json_response(200, &body)
}

/// `GET /v1/flowproxy/config/version`.
pub fn version(ctx: &ApiContext) -> Response<Body> {
    envelope::json_response(
        200,
        &json!({
            "Status": "OK",
            "Version": ctx.cluster.local.digest(),
            "Ready": ctx.cluster.is_ready(),
        }),
    )
}

/// `GET /v1/flowproxy/peers`: asks every peer for its digest now.
pub async fn peers(ctx: &ApiContext) -> Response<Body> {
    envelope::json_response(200, &peer_states(ctx).await)
}

/// The other replicas as seen now (each one's digest against ours) and the peers' entries
/// this replica refused: the body of `GET /v1/flowproxy/peers`, also shown on the status page.
pub async fn peer_states(ctx: &ApiContext) -> Value {
    let cluster = &ctx.cluster;
    let own = cluster.local.digest();
    let refused = cluster.local.refusals();
    let tasks = cluster.peers.tasks_name();
    let peers = match cluster.peers.lookup().await {
        Ok(peers) => peers,
        Err(e) => {
            return json!({"Status": "OK", "Message": e.to_string(), "Tasks": tasks,
                          "Version": own, "Peers": [], "Refused": refused});
        }
    };
    let rows = join_all(peers.iter().map(|addr| async {
        match cluster
            .client
            .get_json::<VersionAnswer>(*addr, VERSION_PATH)
            .await
        {
            Ok(a) => json!({
                "Address": addr.to_string(),
                "InSync": a.version.digest == own.digest,
                "Version": a.version,
                "Ready": a.ready,
            }),
            Err(e) => json!({"Address": addr.to_string(), "Error": e.to_string()}),
        }
    }))
    .await;
    json!({"Status": "OK", "Message": "", "Tasks": tasks, "Version": own, "Peers": rows,
           "Refused": refused})
}

/// `/v1/flowproxy/sync`: one comparison with the peers now.
pub async fn sync(ctx: &ApiContext) -> Response<Body> {
    let merged = converge_once(&ctx.cluster).await;
    let message = if merged.is_empty() {
        "every peer has the same entries".to_owned()
    } else {
        merged
            .iter()
            .map(|(peer, r)| {
                format!(
                    "merged from {peer}: {} applied, {} refused",
                    r.applied, r.refused
                )
            })
            .collect::<Vec<_>>()
            .join("; ")
    };
    envelope::json_response(
        200,
        &json!({
            "Status": "OK",
            "Message": message,
            "Version": ctx.cluster.local.digest(),
        }),
    )
}

/// `ping`: 200 once ready, 503 while the peers' entries are still being merged.
pub fn ping(ctx: &ApiContext) -> Response<Body> {
    if ctx.cluster.is_ready() {
        envelope::ok("", None).into_response()
    } else {
        envelope::error(
            503,
            "starting: merging the configuration of peer replicas",
            None,
        )
        .into_response()
    }
}

/// `successfulinitreload`: 200 once the Swarm Listener's services are applied, else 500.
pub fn successful_init_reload(ctx: &ApiContext) -> Response<Body> {
    if ctx.cluster.is_ready() && ctx.cluster.listener_fetched() {
        envelope::ok("", None).into_response()
    } else {
        envelope::error(
            500,
            "the Swarm Listener's services are not applied yet",
            None,
        )
        .into_response()
    }
}

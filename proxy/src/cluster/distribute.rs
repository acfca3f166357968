//! `distribute=true`: a change applied here is sent, as it came (token kept, `distribute=false`
//! so it goes no further), to every other replica at once. The reply lists each peer's
//! result; if any peer failed (or the replicas could not be listed) it is a 500 `NOK`, as in
//! Docker Flow Proxy, and the change stays applied wherever it succeeded: callers such as the
//! Swarm Listener retry, and a reconfigure is idempotent.
use std::net::SocketAddr;

use bytes::Bytes;
use futures_util::future::join_all;
use hyper::Method;
use serde_json::{Value, json};

use super::{Cluster, Mode, PeerLookupError};
use crate::{
    versioning::Version,
    wire::{Reply, VERSION_HEADER},
};

/// A request to repeat on every peer.
#[derive(Debug, Clone)]
pub struct Call {
    /// Its method.
    pub method: Method,
    /// Its path.
    pub path: String,
    /// Its query (without `token`).
    pub query: Vec<(String, String)>,
    /// Its body.
    pub body: Bytes,
    /// The version the change got here, sent along so that every peer gives it the same.
    pub version: Option<Version>,
}

impl Call {
    /// The path and query to send to peers: `distribute=false`, no `token` (it travels in the
    /// Authorization header).
    pub fn peer_path_and_query(&self) -> String {
        let mut query = form_urlencoded::Serializer::new(String::new());
        for (k, v) in &self.query {
            if k != "distribute" && k != "token" {
                query.append_pair(k, v);
            }
        }
        query.append_pair("distribute", "false");
        format!("{}?{}", self.path, query.finish())
    }
}

/// What one peer did with the call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerResult {
    /// The peer's API address.
    pub addr: SocketAddr,
    /// `Ok` or why it failed.
    pub outcome: Result<(), String>,
}

/// Sends `call` to every peer and adds their results to `local` (this replica's reply). A
/// refused local change is not distributed.
pub async fn distribute(cluster: &Cluster, call: &Call, local: Reply) -> Reply {
    if !local.is_success() {
        return local;
    }
    let peers = match cluster.peers.lookup().await {
        Ok(peers) => peers,
        // Outside Swarm there may well be no other replica: the change is simply local.
        Err(e @ PeerLookupError::NoSuchService { .. }) if cluster.mode == Mode::Default => {
            tracing::debug!("distribute=true: {e}; applied to this replica only");
            Vec::new()
        }
        Err(e) => return lookup_failed(local, &e),
    };
    let path = call.peer_path_and_query();
    let results = join_all(peers.into_iter().map(|addr| {
        let path = &path;
        async move {
            let outcome = match cluster
                .client
                .send_with(
                    call.method.clone(),
                    addr,
                    path,
                    call.body.clone(),
                    call.version.map(|v| (VERSION_HEADER, v.to_string())),
                )
                .await
            {
                Ok(answer) if (200..300).contains(&answer.status) => Ok(()),
                Ok(answer) => Err(format!("answered {}: {}", answer.status, answer.message())),
                Err(e) => Err(e.to_string()),
            };
            PeerResult { addr, outcome }
        }
    }))
    .await;
    for result in &results {
        if let Err(e) = &result.outcome {
            tracing::warn!(peer = %result.addr, path = call.path, "distributing failed: {e}");
        }
    }
    merge(local, &results)
}

/// This replica's reply with the peers' results: `Peers`, and DFP's messages.
pub fn merge(mut local: Reply, results: &[PeerResult]) -> Reply {
    let peers: Vec<Value> = results
        .iter()
        .map(|r| match &r.outcome {
            Ok(()) => json!({"Address": r.addr.to_string(), "Status": "OK"}),
            Err(e) => json!({"Address": r.addr.to_string(), "Status": "NOK", "Message": e}),
        })
        .collect();
    local.body.insert("Peers".into(), Value::Array(peers));
    let failed: Vec<String> = results
        .iter()
        .filter_map(|r| Some(format!("{} ({})", r.addr, r.outcome.as_ref().err()?)))
        .collect();
    if failed.is_empty() {
        local
            .body
            .insert("Message".into(), "Distributed to all instances".into());
        return local;
    }
    let reached = results.len() - failed.len();
    local.status = 500;
    local.body.insert("Status".into(), "NOK".into());
    local.body.insert(
        "Message".into(),
        format!(
            "Could not send distribute request to the following addresses: [{}]; the change is applied on this replica and on {reached} of {} other(s)",
            failed.join(" "),
            results.len()
        )
        .into(),
    );
    local
}

fn lookup_failed(mut local: Reply, error: &PeerLookupError) -> Reply {
    tracing::warn!("distribute=true: {error}");
    local.status = 500;
    local.body.insert("Status".into(), "NOK".into());
    local.body.insert("Peers".into(), Value::Array(Vec::new()));
    local.body.insert(
        "Message".into(),
        format!("the change is applied on this replica only: {error}").into(),
    );
    local
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope_ok() -> Reply {
        Reply {
            status: 200,
            body: serde_json::Map::from_iter([
                ("Status".to_owned(), json!("OK")),
                ("Message".to_owned(), json!("")),
            ]),
        }
    }

    fn addr(last: u8) -> SocketAddr {
        SocketAddr::from(([198, 18, 0, last], 8080))
    }

    fn peer(last: u8, outcome: Result<(), &str>) -> PeerResult {
        PeerResult {
            addr: addr(last),
            outcome: outcome.map_err(str::to_owned),
        }
    }

    #[test]
    fn peers_get_the_same_query_without_the_token_and_never_distribute_further() {
        let call = Call {
            method: Method::GET,
            path: "/v1/docker-flow-proxy/reconfigure".into(),
            query: vec![
                ("serviceName".into(), "go-demo".into()),
                ("servicePath".into(), "/demo path".into()),
                ("distribute".into(), "true".into()),
                ("token".into(), "s3cret".into()),
            ],
            body: Bytes::new(),
            version: None,
        };
        assert_eq!(
            call.peer_path_and_query(),
            "/v1/docker-flow-proxy/reconfigure?serviceName=go-demo&servicePath=%2Fdemo+path&distribute=false"
        );
    }

    #[test]
    fn all_peers_reached_is_dfps_ok_with_each_peer_listed() {
        let reply = merge(envelope_ok(), &[peer(1, Ok(())), peer(2, Ok(()))]);
        assert_eq!(reply.status, 200);
        assert_eq!(reply.body["Status"], "OK");
        assert_eq!(reply.body["Message"], "Distributed to all instances");
        assert_eq!(reply.body["Peers"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn a_failed_peer_makes_a_500_naming_it() {
        let reply = merge(
            envelope_ok(),
            &[peer(1, Ok(())), peer(2, Err("connection refused"))],
        );
        assert_eq!(reply.status, 500);
        assert_eq!(reply.body["Status"], "NOK");
        let message = reply.body["Message"].as_str().unwrap();
        assert!(
            message.contains("198.18.0.2:8080 (connection refused)"),
            "{message}"
        );
        assert!(message.contains("1 of 2"), "{message}");
        assert_eq!(reply.body["Peers"][1]["Status"], "NOK");
        assert_eq!(reply.body["Peers"][0]["Status"], "OK");
    }

    #[test]
    fn no_peers_is_a_plain_ok() {
        let reply = merge(envelope_ok(), &[]);
        assert_eq!(reply.status, 200);
        assert_eq!(reply.body["Peers"], json!([]));
    }
}

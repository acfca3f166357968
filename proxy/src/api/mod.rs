//! The API on `--api-addr`: Docker Flow Proxy's endpoints under `/v1/docker-flow-proxy/`,
//! flowproxy's replica endpoints under `/v1/flowproxy/`, `/metrics`, and the status page at `/`. With an API token,
//! everything but health checks and metrics needs it (`token.rs`).
mod certs;
mod cluster;
mod dfp;
mod log;
mod refusals;
mod status_page;

use std::{net::IpAddr, path::PathBuf, sync::Arc};

pub use refusals::RecentRefusals;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Limited};
use hyper::{Method, Request, Response, body::Incoming, header};
use rustls::crypto::CryptoProvider;

use crate::{
    changes::Changes,
    cluster::{Call, Cluster, distribute},
    http_body::{Body, text_body},
    metrics::{Format, Metrics},
    routes::distribute_requested,
    tls::CertStore,
    versioning::{Kind, Version},
    wire::VERSION_HEADER,
};

// The envelope and the token live in `wire` (replication speaks them too); the endpoints
// here keep naming the envelope `super::envelope`.
pub use crate::wire::ApiToken;
use crate::wire::{Reply, envelope};

/// Endpoints that change the configuration: refused until the start-up bootstrap is over.
const CHANGES: [&str; 3] = [
    "/v1/docker-flow-proxy/reconfigure",
    "/v1/docker-flow-proxy/remove",
    "/v1/docker-flow-proxy/cert",
];

/// What the API works on.
pub struct ApiContext {
    /// Changes to the routes.
    pub changes: Arc<Changes>,
    /// The metrics registry.
    pub metrics: Arc<Metrics>,
    /// The served certificates.
    pub certs: Arc<CertStore>,
    /// The crypto provider certificates are parsed with.
    pub provider: Arc<CryptoProvider>,
    /// Where certificates added through the API are kept.
    pub api_certs_dir: PathBuf,
    /// The other replicas.
    pub cluster: Arc<Cluster>,
    /// The token the API requires, if any.
    pub token: Option<ApiToken>,
    /// Where the data plane's maps are pinned, when it runs (the status page's fast/slow split).
    pub pin_dir: Option<PathBuf>,
    /// How replicas and services are discovered, in words (the status page).
    pub discovery: String,
    /// What Docker label discovery last did (the status page).
    pub discovery_status: Arc<crate::discovery::DiscoveryStatus>,
    /// The changes refused lately.
    pub refusals: Arc<RecentRefusals>,
}

/// Answers one API request from `client`, and logs it (`log.rs`).
pub async fn handle(
    ctx: Arc<ApiContext>,
    req: Request<Incoming>,
    client: IpAddr,
) -> Response<Body> {
    let asked = log::Asked::new(&req, client).keeping_refusals(Arc::clone(&ctx.refusals));
    asked.answered(route(ctx, req).await).await
}

/// Routes one API request to its endpoint.
async fn route(ctx: Arc<ApiContext>, req: Request<Incoming>) -> Response<Body> {
    if let Some(param) = non_utf8_param(req.uri().query()) {
        return envelope::error(
            400,
            &format!("{param} is not valid UTF-8 once percent-decoded; encode the value as UTF-8"),
            None,
        )
        .into_response();
    }
    let mut query = parse_query(req.uri().query());
    let path = req.uri().path().trim_end_matches('/').to_owned();
    let method = req.method().clone();
    if let Some(token) = &ctx.token
        && let Err(denied) = token.check(&path, req.headers(), &query)
    {
        let mut response = envelope::error(401, &denied.to_string(), None).into_response();
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Bearer realm=\"flowproxy\""),
        );
        return response;
    }
    // The token is a credential, never a parameter.
    query.retain(|(k, _)| k != "token");
    // A change distributed by a peer keeps the version it got there.
    let version = match peer_version(&ctx, req.headers()) {
        Ok(version) => version,
        Err(refused) => return refused.into_response(),
    };
    let stamped = version.map(|v| ctx.changes.at(v));
    let changes = stamped.as_ref().unwrap_or(&ctx.changes);
    if CHANGES.contains(&path.as_str()) && !ctx.cluster.is_ready() {
        // A change made now would be merged with the peers' entries anyway, but the operator
        // would see a replica without them; callers (the Swarm Listener, a peer) retry.
        return envelope::error(
            503,
            "this replica is starting and taking the configuration from its peers; retry in a moment",
            None,
        )
        .into_response();
    }
    let control = &ctx.changes.control;
    match path.as_str() {
        "/v1/docker-flow-proxy/cert" => {
            let body = match Limited::new(req.into_body(), certs::MAX_BODY)
                .collect()
                .await
            {
                Ok(body) => body.to_bytes(),
                Err(e) => {
                    return envelope::error(
                        400,
                        &format!("reading the certificate body failed: {e}"),
                        None,
                    )
                    .into_response();
                }
            };
            let name = query
                .iter()
                .find(|(k, _)| k == "certName")
                .map(|(_, v)| v.clone());
            let name = name.as_deref().filter(|n| !n.is_empty());
            let reply = certs::put(&ctx, name, &method, body.clone(), version).await;
            distributed(&ctx, method.clone(), path.clone(), query, body, reply).await
        }
        "/v1/docker-flow-proxy/certs" => certs::list(&ctx),
        "/v1/docker-flow-proxy/reconfigure" | "/v1/docker-flow-proxy/remove" => {
            let reply = if path.ends_with("/reconfigure") {
                dfp::reconfigure(&ctx, changes, &query, version).await
            } else {
                dfp::remove(changes, &query).await
            };
            let (method, path) = (method.clone(), path.clone());
            distributed(&ctx, method, path, query, Bytes::new(), reply).await
        }
        "/v1/docker-flow-proxy/config" => dfp::config(control, &query),
        "/v1/docker-flow-proxy/reload" => {
            let reply = dfp::reload(&ctx, &query).await;
            let (method, path) = (method.clone(), path.clone());
            distributed(&ctx, method, path, query, Bytes::new(), reply).await
        }
        "/v1/docker-flow-proxy/ping" | "/ping" => cluster::ping(&ctx),
        // DFP's own smoke tests of the API.
        "/v1/test" => envelope::ok("Test v1", None).into_response(),
        "/v2/test" => envelope::ok("Test v2", None).into_response(),
        "/v1/docker-flow-proxy/successfulinitreload" => cluster::successful_init_reload(&ctx),
        "/v1/flowproxy/config" => cluster::config(&ctx),
        "/v1/flowproxy/config/version" => cluster::version(&ctx),
        "/v1/flowproxy/peers" => cluster::peers(&ctx).await,
        "/v1/flowproxy/sync" => cluster::sync(&ctx).await,
        "/metrics" => metrics(&ctx, req.headers()),
        // `GET /`, trimmed of its slash: the status page.
        "" => status_page::page(&ctx).await,
        _ => envelope::error(404, &format!("no API endpoint at {path}"), None).into_response(),
    }
}

/// Every metric, in the format the request's `Accept` header prefers (OpenMetrics unless it
/// asks for `text/plain`, the Prometheus 0.0.4 format).
fn metrics(ctx: &ApiContext, headers: &hyper::HeaderMap) -> Response<Body> {
    // Several Accept fields are one list (RFC 9110, 5.3).
    let accept: Vec<&str> = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    let format = Format::negotiate((!accept.is_empty()).then(|| accept.join(",")).as_deref());
    Response::builder()
        .header(header::CONTENT_TYPE, format.content_type())
        .header(header::VARY, "Accept")
        .body(text_body(ctx.metrics.encode(format)))
        .expect("static headers are valid")
}

/// `reply`, sent on to every peer first when the request asks for `distribute=true`.
async fn distributed(
    ctx: &ApiContext,
    method: Method,
    path: String,
    query: Vec<(String, String)>,
    body: Bytes,
    reply: Reply,
) -> Response<Body> {
    if !distribute_requested(&query) {
        return reply.into_response();
    }
    // The version the change got here, which the peers give it too.
    let (kind, name_param) = if path.ends_with("/cert") {
        (Kind::Cert, "certName")
    } else {
        (Kind::Service, "serviceName")
    };
    let version = query
        .iter()
        .find(|(k, v)| k == name_param && !v.is_empty())
        .and_then(|(_, name)| ctx.changes.control.snapshot().versions.get(kind, name))
        .map(|stamp| stamp.version);
    let call = Call {
        method,
        path,
        query,
        body,
        version,
    };
    distribute(&ctx.cluster, &call, reply).await.into_response()
}

/// The version a distributing peer sent (`x-flowproxy-version`), if any; one that does not
/// parse, or is more than a day ahead of this replica's clock, is a 400.
fn peer_version(ctx: &ApiContext, headers: &hyper::HeaderMap) -> Result<Option<Version>, Reply> {
    let Some(value) = headers.get(VERSION_HEADER) else {
        return Ok(None);
    };
    match value.to_str().map(str::parse::<Version>) {
        Ok(Ok(version)) if ctx.changes.control.clock().plausible(version) => Ok(Some(version)),
        _ => Err(envelope::error(
            400,
            &format!(
                "the {VERSION_HEADER} header is not a version (MS.COUNTER@REPLICA) within a day \
                 of this replica's clock"
            ),
            None,
        )),
    }
}

/// Query parameters in order, percent-decoded.
fn parse_query(query: Option<&str>) -> Vec<(String, String)> {
    query
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default()
}

/// The first parameter whose name or value is not UTF-8 after percent-decoding (decoding
/// would silently turn it into U+FFFD), unless the query spells U+FFFD itself.
fn non_utf8_param(query: Option<&str>) -> Option<String> {
    let query = query?;
    if query.to_ascii_uppercase().contains("%EF%BF%BD") {
        return None;
    }
    form_urlencoded::parse(query.as_bytes())
        .find(|(k, v)| k.contains('\u{FFFD}') || v.contains('\u{FFFD}'))
        .map(|(k, _)| k.replace('\u{FFFD}', "?"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_query_that_is_not_utf8_is_named() {
        assert_eq!(
            non_utf8_param(Some("serviceName=a&users=u:%FF")).as_deref(),
            Some("users")
        );
        assert_eq!(non_utf8_param(Some("%C3%28=x")).as_deref(), Some("?("));
        assert_eq!(non_utf8_param(Some("servicePath=/caf%C3%A9")), None);
        assert_eq!(non_utf8_param(Some("x=%EF%BF%BD")), None);
        assert_eq!(non_utf8_param(None), None);
    }

    #[test]
    fn queries_are_decoded_in_order() {
        let q = parse_query(Some("serviceName=go-demo&servicePath=%2Fdemo&port=8080"));
        assert_eq!(q[1], ("servicePath".to_owned(), "/demo".to_owned()));
        assert_eq!(q.len(), 3);
        assert!(parse_query(None).is_empty());
    }
}

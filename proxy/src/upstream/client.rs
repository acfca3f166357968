//! The pooled upstream HTTP client: keep-alive connections per replica, reused across requests.
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};

/// The client every request to a replica goes through.
pub type UpstreamClient = Client<HttpConnector, BoxBody<Bytes, hyper::Error>>;

/// How long a TCP connect to a replica may take (DFP's TIMEOUT_CONNECT).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Builds the shared pooled client.
pub fn new_client() -> UpstreamClient {
    let mut connector = HttpConnector::new();
    connector.set_connect_timeout(Some(CONNECT_TIMEOUT));
    connector.set_nodelay(true);
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(60))
        .pool_max_idle_per_host(256)
        .build(connector)
}

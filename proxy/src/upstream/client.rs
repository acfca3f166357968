//! The pooled upstream HTTP client: keep-alive connections per replica, reused across requests.
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use hyper_util::{client::legacy::Client, rt::TokioExecutor};

use super::connector::CountingConnector;
use crate::metrics::BackendBytes;

/// Any error a request body may fail with.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The body of a request to a replica: the client's, which may fail for reasons of the proxy's
/// own (an upload gone idle), hence the boxed error.
pub type UpstreamBody = BoxBody<Bytes, BoxError>;

/// The client every request to a replica goes through.
pub type UpstreamClient = Client<CountingConnector<BackendBytes>, UpstreamBody>;

/// Builds the shared pooled client, counting bytes per backend into `bytes`; a TCP connect to
/// a replica may take `connect_timeout` (DFP's `TIMEOUT_CONNECT`).
pub fn new_client(bytes: BackendBytes, connect_timeout: Duration) -> UpstreamClient {
    let connector = CountingConnector::new(bytes, connect_timeout);
    Client::builder(TokioExecutor::new())
        // Shorter than common backend keep-alives (Node: 5 s), so we rarely reuse a connection
        // the replica is closing.
        .pool_idle_timeout(Duration::from_secs(4))
        .pool_max_idle_per_host(256)
        .build(connector)
}

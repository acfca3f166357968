//! The API on `--api-addr`: Docker Flow Proxy's endpoints under `/v1/docker-flow-proxy/`.
mod certs;
mod dfp;
mod envelope;

use std::sync::Arc;

use hyper::{Request, Response, body::Incoming};

use std::path::PathBuf;

use rustls::crypto::CryptoProvider;

use crate::{control::ControlPlane, l4::L4Listeners, l7::Body, metrics::Metrics, tls::CertStore};

pub use certs::unix_now;

/// What the API works on.
pub struct ApiContext {
    /// The routes.
    pub control: Arc<ControlPlane>,
    /// The metrics registry.
    pub metrics: Arc<Metrics>,
    /// The served certificates.
    pub certs: Arc<CertStore>,
    /// The crypto provider certificates are parsed with.
    pub provider: Arc<CryptoProvider>,
    /// Where certificates added through the API are kept.
    pub api_certs_dir: PathBuf,
    /// The TCP-mode listeners, started and stopped with their services.
    pub l4: Arc<L4Listeners>,
}

/// Routes one API request to its endpoint.
pub async fn handle(ctx: Arc<ApiContext>, req: Request<Incoming>) -> Response<Body> {
    let query = parse_query(req.uri().query());
    let path = req.uri().path().trim_end_matches('/').to_owned();
    let method = req.method().clone();
    let (control, metrics) = (&ctx.control, &ctx.metrics);
    let response = match path.as_str() {
        "/v1/docker-flow-proxy/cert" => {
            let name = query
                .iter()
                .rev()
                .find(|(k, _)| k == "certName")
                .map(|(_, v)| v.clone());
            certs::put(&ctx, name.as_deref().filter(|n| !n.is_empty()), req).await
        }
        "/v1/docker-flow-proxy/certs" => certs::list(&ctx),
        "/v1/docker-flow-proxy/reconfigure" => dfp::reconfigure(control, &ctx.l4, &query).await,
        "/v1/docker-flow-proxy/remove" => dfp::remove(control, &ctx.l4, &query).await,
        "/v1/docker-flow-proxy/config" => dfp::config(control, &query),
        "/v1/docker-flow-proxy/reload" => dfp::reload(control).await,
        "/v1/docker-flow-proxy/ping" | "/ping" => dfp::ping(),
        "/metrics" => Response::builder()
            .header(
                hyper::header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )
            .body(crate::l7::text_body(metrics.encode()))
            .expect("static headers are valid"),
        _ => envelope::error(404, &format!("no API endpoint at {path}"), None),
    };
    tracing::info!(target: "api", %method, path, status = response.status().as_u16());
    response
}

/// Query parameters in order, percent-decoded.
fn parse_query(query: Option<&str>) -> Vec<(String, String)> {
    query
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_are_decoded_in_order() {
        let q = parse_query(Some("serviceName=go-demo&servicePath=%2Fdemo&port=8080"));
        assert_eq!(q[1], ("servicePath".to_owned(), "/demo".to_owned()));
        assert_eq!(q.len(), 3);
        assert!(parse_query(None).is_empty());
    }
}

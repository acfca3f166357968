//! The API on `--api-addr`: Docker Flow Proxy's endpoints under `/v1/docker-flow-proxy/`.
mod dfp;
mod envelope;

use std::sync::Arc;

use hyper::{Method, Request, Response, body::Incoming};

use crate::{control::ControlPlane, l7::Body, metrics::Metrics};

/// Routes one API request to its endpoint.
pub async fn handle(
    control: Arc<ControlPlane>,
    metrics: Arc<Metrics>,
    req: Request<Incoming>,
) -> Response<Body> {
    let query = parse_query(req.uri().query());
    let path = req.uri().path().trim_end_matches('/').to_owned();
    let response = match path.as_str() {
        "/v1/docker-flow-proxy/reconfigure" => dfp::reconfigure(&control, &query).await,
        "/v1/docker-flow-proxy/remove" => dfp::remove(&control, &query).await,
        "/v1/docker-flow-proxy/config" => dfp::config(&control, &query),
        "/v1/docker-flow-proxy/reload" => dfp::reload(&control).await,
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
    tracing::info!(target: "api", method = %req.method(), path, status = response.status().as_u16());
    if req.method() == Method::HEAD {
        let (parts, _) = response.into_parts();
        return Response::from_parts(parts, crate::l7::Body::default());
    }
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

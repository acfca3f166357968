//! The demo service's routes: which path answers what, and the pure rendering behind them.
use std::{convert::Infallible, sync::Arc, time::Duration};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, StreamBody, combinators::BoxBody};
use hyper::{
    HeaderMap, Request, Response, StatusCode, Uri,
    body::Incoming,
    header::{CONTENT_TYPE, HeaderValue},
};

use crate::ws;

/// The body every response of the demo service carries.
pub type Body = BoxBody<Bytes, Infallible>;

/// What a request is asking for, decided from its path alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// `/demo/hello`: the article's greeting.
    Hello,
    /// `/demo/who`: which replica answered.
    Who,
    /// `/demo/headers`: the request as the backend received it.
    Headers,
    /// `/demo/slow?ms=N`: answers after N milliseconds.
    Slow,
    /// `/demo/drip?ms=N`: a chunked body in two parts, N milliseconds apart.
    Drip,
    /// `/demo/echo`: the request body, sent back.
    Echo,
    /// `/demo/ws`: a WebSocket echo.
    WebSocket,
    /// Anything else.
    NotFound,
}

impl Route {
    /// The route for a request path (the query is not part of it).
    pub fn for_path(path: &str) -> Self {
        match path {
            "/demo/hello" => Self::Hello,
            "/demo/who" => Self::Who,
            "/demo/headers" => Self::Headers,
            "/demo/slow" => Self::Slow,
            "/demo/drip" => Self::Drip,
            "/demo/echo" => Self::Echo,
            "/demo/ws" => Self::WebSocket,
            _ => Self::NotFound,
        }
    }
}

/// The replica's identity, shared by every connection.
#[derive(Debug)]
pub struct Replica {
    /// The name `/demo/who` answers and every log line starts with.
    pub name: String,
}

/// Answers one request and writes its log line: `<name> <method> <path> <status>`.
pub async fn handle(
    replica: Arc<Replica>,
    req: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let response = respond(&replica, req).await;
    // One println per request: stdout is line-buffered, so each line reaches the log whole.
    println!(
        "{} {method} {path} {}",
        replica.name,
        response.status().as_u16()
    );
    Ok(response)
}

async fn respond(replica: &Replica, req: Request<Incoming>) -> Response<Body> {
    match Route::for_path(req.uri().path()) {
        Route::Hello => text(StatusCode::OK, "hello, world!\n"),
        Route::Who => text(StatusCode::OK, format!("{}\n", replica.name)),
        Route::Headers => text(StatusCode::OK, render_headers(req.uri(), req.headers())),
        Route::Slow => match slow_ms(req.uri().query()) {
            Some(ms) => {
                tokio::time::sleep(Duration::from_millis(ms)).await;
                text(StatusCode::OK, "slow\n")
            }
            None => text(StatusCode::BAD_REQUEST, "expected ?ms=<milliseconds>\n"),
        },
        Route::Drip => match slow_ms(req.uri().query()) {
            Some(ms) => drip(Duration::from_millis(ms)),
            None => text(StatusCode::BAD_REQUEST, "expected ?ms=<milliseconds>\n"),
        },
        Route::Echo => match req.into_body().collect().await {
            Ok(body) => Response::new(Full::new(body.to_bytes()).boxed()),
            Err(e) => text(StatusCode::BAD_REQUEST, format!("reading the body: {e}\n")),
        },
        Route::WebSocket => ws::accept(req),
        Route::NotFound => text(StatusCode::NOT_FOUND, "not found\n"),
    }
}

/// `drip\n`, then after `pause` `drop\n`, as a chunked body: a response that is still being
/// sent long after its head.
fn drip(pause: Duration) -> Response<Body> {
    let parts = futures_util::stream::unfold(0u8, move |sent| async move {
        let part = match sent {
            0 => "drip\n",
            1 => {
                tokio::time::sleep(pause).await;
                "drop\n"
            }
            _ => return None,
        };
        Some((
            Ok(hyper::body::Frame::data(Bytes::from_static(
                part.as_bytes(),
            ))),
            sent + 1,
        ))
    });
    Response::new(StreamBody::new(parts).boxed())
}

/// A plain-text response.
pub fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<Body> {
    let mut response = Response::new(Full::new(body.into()).boxed());
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// The `/demo/headers` body: the path and query on the first line, then `:authority: ...` when
/// the request carried one in its URI (HTTP/2, or an absolute-form HTTP/1.1 request), then every
/// header as `name: value` in the order received. Names are lowercase (hyper normalises them);
/// values that are not UTF-8 are shown lossily.
pub fn render_headers(uri: &Uri, headers: &HeaderMap) -> String {
    let target = uri.path_and_query().map_or("/", |pq| pq.as_str());
    let mut out = format!("{target}\n");
    if let Some(authority) = uri.authority() {
        out.push_str(&format!(":authority: {authority}\n"));
    }
    for (name, value) in headers {
        out.push_str(&format!(
            "{name}: {}\n",
            String::from_utf8_lossy(value.as_bytes())
        ));
    }
    out
}

/// The `ms` parameter of `/demo/slow`, if it is a whole number.
pub fn slow_ms(query: Option<&str>) -> Option<u64> {
    query?
        .split('&')
        .find_map(|pair| pair.strip_prefix("ms="))
        .and_then(|ms| ms.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_are_chosen_by_exact_path() {
        assert_eq!(Route::for_path("/demo/hello"), Route::Hello);
        assert_eq!(Route::for_path("/demo/ws"), Route::WebSocket);
        assert_eq!(Route::for_path("/demo/hello/"), Route::NotFound);
        assert_eq!(Route::for_path("/"), Route::NotFound);
    }

    #[test]
    fn headers_are_rendered_one_per_line_after_the_target() {
        let uri: Uri = "/demo/headers?a=1".parse().unwrap();
        let mut headers = HeaderMap::new();
        headers.insert("Host", HeaderValue::from_static("go-demo.example"));
        headers.append("X-Forwarded-For", HeaderValue::from_static("10.0.0.1"));
        headers.append("x-forwarded-for", HeaderValue::from_static("10.0.0.2"));
        assert_eq!(
            render_headers(&uri, &headers),
            "/demo/headers?a=1\nhost: go-demo.example\n\
             x-forwarded-for: 10.0.0.1\nx-forwarded-for: 10.0.0.2\n"
        );
    }

    #[test]
    fn an_authority_in_the_uri_is_shown_as_a_pseudo_header() {
        let uri: Uri = "http://go-demo:8080/demo/headers".parse().unwrap();
        assert_eq!(
            render_headers(&uri, &HeaderMap::new()),
            "/demo/headers\n:authority: go-demo:8080\n"
        );
    }

    #[test]
    fn slow_reads_ms_among_other_parameters() {
        assert_eq!(slow_ms(Some("ms=250")), Some(250));
        assert_eq!(slow_ms(Some("x=1&ms=7")), Some(7));
        assert_eq!(slow_ms(Some("ms=soon")), None);
        assert_eq!(slow_ms(None), None);
    }
}

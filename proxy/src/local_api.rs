//! One GET to the running proxy's API, for the commands that ask it (`healthcheck`, `stats`):
//! a status and a body within a deadline, or a reason an operator can act on.
use std::time::Duration;

use http_body_util::{BodyExt as _, Empty};
use hyper::StatusCode;
use hyper_util::{client::legacy::Client, rt::TokioExecutor};

/// Why the API gave no answer.
#[derive(Debug, thiserror::Error)]
pub enum ApiCallError {
    /// The URL does not parse as an `http://` URL.
    #[error("{url} is not an http:// URL: {reason}")]
    BadUrl {
        /// The URL.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Nothing accepted the connection, or the connection broke.
    #[error("nothing answers at {url} ({reason})")]
    Unreachable {
        /// The URL.
        url: String,
        /// The innermost OS or protocol error.
        reason: String,
    },
    /// No complete answer arrived in time.
    #[error("no answer from {url} within {timeout:?}")]
    Timeout {
        /// The URL.
        url: String,
        /// The deadline.
        timeout: Duration,
    },
    /// The runtime for the call could not be started.
    #[error("starting the HTTP client failed: {0}")]
    Runtime(std::io::Error),
}

/// What the API answered.
#[derive(Debug)]
pub struct ApiAnswer {
    /// The status.
    pub status: StatusCode,
    /// The body, lossily decoded.
    pub body: String,
}

impl ApiAnswer {
    /// The `Message` of DFP's JSON envelope, else the body's first line.
    pub fn message(&self) -> String {
        serde_json::from_str::<serde_json::Value>(&self.body)
            .ok()
            .and_then(|v| v["Message"].as_str().map(str::to_owned))
            .unwrap_or_else(|| self.body.lines().next().unwrap_or_default().to_owned())
    }
}

/// `GET <base><path>`, the whole answer read within `timeout`.
pub fn get(base: &str, path: &str, timeout: Duration) -> Result<ApiAnswer, ApiCallError> {
    let url = format!("{}{path}", base.trim_end_matches('/'));
    let bad = |reason: String| ApiCallError::BadUrl {
        url: url.clone(),
        reason,
    };
    let uri: hyper::Uri = url
        .parse()
        .map_err(|e: hyper::http::uri::InvalidUri| bad(e.to_string()))?;
    if uri.scheme_str() != Some("http") || uri.host().is_none() {
        return Err(bad("write it as http://HOST:PORT".to_owned()));
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(ApiCallError::Runtime)?;
    runtime.block_on(async {
        let client = Client::builder(TokioExecutor::new()).build_http::<Empty<bytes::Bytes>>();
        let call = async {
            let response = client.get(uri).await.map_err(|e| innermost(&e))?;
            let status = response.status();
            let body = response
                .into_body()
                .collect()
                .await
                .map_err(|e| innermost(&e))?
                .to_bytes();
            Ok::<_, String>(ApiAnswer {
                status,
                body: String::from_utf8_lossy(&body).into_owned(),
            })
        };
        match tokio::time::timeout(timeout, call).await {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(reason)) => Err(ApiCallError::Unreachable {
                url: url.clone(),
                reason,
            }),
            Err(_) => Err(ApiCallError::Timeout {
                url: url.clone(),
                timeout,
            }),
        }
    })
}

/// The deepest source of `error`: hyper-util's own wording ("client error (Connect)") says
/// less than the OS error under it ("Connection refused (os error 111)").
fn innermost(error: &(dyn std::error::Error + 'static)) -> String {
    let mut deepest = error;
    while let Some(source) = deepest.source() {
        deepest = source;
    }
    deepest.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_http_urls_are_called() {
        for url in ["https://127.0.0.1:8080", "127.0.0.1:8080", "http://"] {
            let err = get(url, "/ping", Duration::from_secs(1)).unwrap_err();
            assert!(matches!(err, ApiCallError::BadUrl { .. }), "{url}: {err}");
        }
    }

    #[test]
    fn the_envelopes_message_is_the_reason() {
        let answer = ApiAnswer {
            status: StatusCode::SERVICE_UNAVAILABLE,
            body: r#"{"Status":"NOK","Message":"starting"}"#.to_owned(),
        };
        assert_eq!(answer.message(), "starting");
        let plain = ApiAnswer {
            status: StatusCode::NOT_FOUND,
            body: "not here\nmore".to_owned(),
        };
        assert_eq!(plain.message(), "not here");
    }

    #[test]
    fn a_refused_connection_names_the_url_and_the_os_error() {
        // A port that was just free: nothing listens on it.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let base = format!("http://127.0.0.1:{port}");
        let err = get(&base, "/ping", Duration::from_secs(2)).unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, ApiCallError::Unreachable { .. }), "{text}");
        assert!(text.contains(&base) && text.contains("refused"), "{text}");
    }

    #[test]
    fn a_silent_server_times_out() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let started = std::time::Instant::now();
        let err = get(&base, "/ping", Duration::from_millis(300)).unwrap_err();
        assert!(matches!(err, ApiCallError::Timeout { .. }), "{err}");
        assert!(started.elapsed() < Duration::from_secs(2));
        drop(listener);
    }
}

//! Calls to peer replicas and to the Swarm Listener: plain HTTP through hyper-util's pooled
//! client, each bounded by one timeout, the API token sent as a bearer header to peers.
use std::{net::SocketAddr, time::Duration};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::{Method, Request, Uri, header};
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};
use serde::de::DeserializeOwned;

use crate::wire::ApiToken;

/// Largest reply read from a peer: a whole configuration with its certificates.
const MAX_REPLY: usize = 64 << 20;

/// Why a call got no usable answer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CallError {
    /// Nothing within the timeout.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The connection or the exchange failed.
    #[error("{0}")]
    Http(String),
    /// An answer other than 2xx; `message` is its envelope's `Message` (or its text).
    #[error("answered {status}: {message}")]
    Status {
        /// The status code.
        status: u16,
        /// What the peer said.
        message: String,
    },
    /// A 2xx answer that is not the JSON expected.
    #[error("unreadable answer: {0}")]
    Decode(String),
}

/// An answer.
#[derive(Debug, Clone)]
pub struct Answer {
    /// The status code.
    pub status: u16,
    /// The body.
    pub body: Bytes,
}

impl Answer {
    /// The envelope's `Message`, else the body as text (shortened).
    pub fn message(&self) -> String {
        let text = String::from_utf8_lossy(&self.body);
        serde_json::from_slice::<serde_json::Value>(&self.body)
            .ok()
            .and_then(|v| v.get("Message")?.as_str().map(str::to_owned))
            .unwrap_or_else(|| text.trim().chars().take(200).collect())
    }
}

/// The client for calls between replicas.
#[derive(Clone)]
pub struct PeerClient {
    client: Client<HttpConnector, Full<Bytes>>,
    token: Option<ApiToken>,
    timeout: Duration,
}

impl PeerClient {
    /// A client whose calls take at most `timeout` and carry `token` to peers.
    pub fn new(token: Option<ApiToken>, timeout: Duration) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(timeout));
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        Self {
            client,
            token,
            timeout,
        }
    }

    /// Sends `method path_and_query` with `body` to the peer at `addr`, with the token.
    pub async fn send(
        &self,
        method: Method,
        addr: SocketAddr,
        path_and_query: &str,
        body: Bytes,
    ) -> Result<Answer, CallError> {
        let uri: Uri = format!("http://{addr}{path_and_query}")
            .parse()
            .map_err(|e| CallError::Http(format!("bad peer URL: {e}")))?;
        self.call(method, uri, None, body, true, None).await
    }

    /// [`PeerClient::send`] with one more header.
    pub async fn send_with(
        &self,
        method: Method,
        addr: SocketAddr,
        path_and_query: &str,
        body: Bytes,
        header: Option<(&str, String)>,
    ) -> Result<Answer, CallError> {
        let uri: Uri = format!("http://{addr}{path_and_query}")
            .parse()
            .map_err(|e| CallError::Http(format!("bad peer URL: {e}")))?;
        self.call(method, uri, None, body, true, header).await
    }

    /// GETs JSON from the peer at `addr`; anything but 2xx is an error.
    pub async fn get_json<T: DeserializeOwned>(
        &self,
        addr: SocketAddr,
        path: &str,
    ) -> Result<T, CallError> {
        let answer = self.send(Method::GET, addr, path, Bytes::new()).await?;
        decode(answer)
    }

    /// GETs JSON from `addr` with `host` as the Host header, without the token (for a
    /// service that is not a peer, such as the Swarm Listener).
    pub async fn get_foreign_json<T: DeserializeOwned>(
        &self,
        addr: SocketAddr,
        host: &str,
        path: &str,
    ) -> Result<T, CallError> {
        decode(self.get_foreign(addr, host, path).await?)
    }

    /// GETs `path` from `addr` with `host` as the Host header, without the token; anything
    /// but 2xx is an error.
    pub async fn get_foreign(
        &self,
        addr: SocketAddr,
        host: &str,
        path: &str,
    ) -> Result<Answer, CallError> {
        let uri: Uri = format!("http://{addr}{path}")
            .parse()
            .map_err(|e| CallError::Http(format!("bad URL: {e}")))?;
        let answer = self
            .call(Method::GET, uri, Some(host), Bytes::new(), false, None)
            .await?;
        if !(200..300).contains(&answer.status) {
            return Err(CallError::Status {
                status: answer.status,
                message: answer.message(),
            });
        }
        Ok(answer)
    }

    async fn call(
        &self,
        method: Method,
        uri: Uri,
        host: Option<&str>,
        body: Bytes,
        with_token: bool,
        extra: Option<(&str, String)>,
    ) -> Result<Answer, CallError> {
        let mut request = Request::builder().method(method).uri(uri);
        if let Some((name, value)) = extra {
            request = request.header(name, value);
        }
        if let Some(host) = host {
            request = request.header(header::HOST, host);
        }
        if let (true, Some(token)) = (with_token, &self.token) {
            request = request.header(header::AUTHORIZATION, format!("Bearer {}", token.value()));
        }
        let request = request
            .body(Full::new(body))
            .map_err(|e| CallError::Http(e.to_string()))?;
        let exchange = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| CallError::Http(error_chain(&e)))?;
            let status = response.status().as_u16();
            let body = Limited::new(response.into_body(), MAX_REPLY)
                .collect()
                .await
                .map_err(|e| CallError::Http(format!("reading the answer: {e}")))?
                .to_bytes();
            Ok(Answer { status, body })
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| CallError::Timeout(self.timeout))?
    }
}

fn decode<T: DeserializeOwned>(answer: Answer) -> Result<T, CallError> {
    if !(200..300).contains(&answer.status) {
        return Err(CallError::Status {
            status: answer.status,
            message: answer.message(),
        });
    }
    serde_json::from_slice(&answer.body).map_err(|e| CallError::Decode(e.to_string()))
}

/// An error with its sources ("client error (Connect): tcp connect error: Connection refused").
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        text.push_str(": ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    text
}

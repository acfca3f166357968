//! Clients a user would point at the proxy: the real `curl`, a keep-alive HTTP/1.1 client for
//! load, and a WebSocket echo check.
use std::{process::Command, time::Duration};

use anyhow::{Context as _, bail};
use bytes::Bytes;
use futures_util::{SinkExt as _, StreamExt as _};
use http_body_util::{BodyExt as _, Empty};
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};
use tokio::runtime::Runtime;
use tokio_tungstenite::tungstenite::Message;

use crate::{Host, cmd::run_cmd};

/// How long one request of [`HttpClient`] or [`ws_echo`] may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// What `curl -i` showed of the final response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CurlResponse {
    /// The status line without its line end: `HTTP/1.1 200 OK`, `HTTP/2 200`.
    pub status_line: String,
    /// The status code.
    pub status: u16,
    /// The headers in the order received, names as sent (HTTP/2 names are lowercase).
    pub headers: Vec<(String, String)>,
    /// The body, decoded lossily as UTF-8.
    pub body: String,
}

impl CurlResponse {
    /// The first value of a header, matched case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Runs `curl -sS -i ARGS` from the root namespace; a curl failure (no connection, timeout) is an
/// error carrying what curl printed.
pub fn curl(args: &[&str]) -> anyhow::Result<CurlResponse> {
    let out = run_cmd(Command::new("curl").args(["-sS", "-i"]).args(args))?;
    parse_curl_output(&out)
}

/// Runs `curl -sS -i ARGS` inside the network namespace `ns` (through `nsenter`).
pub fn curl_in_netns(ns: &str, args: &[&str]) -> anyhow::Result<CurlResponse> {
    let out = run_cmd(
        Command::new("nsenter")
            .arg(format!("--net=/run/netns/{ns}"))
            .args(["curl", "-sS", "-i"])
            .args(args),
    )?;
    parse_curl_output(&out)
}

/// Runs `curl -sS -i ARGS` inside `host`, as a client on that host would.
pub fn curl_on(host: &Host, args: &[&str]) -> anyhow::Result<CurlResponse> {
    let out = run_cmd(host.command("curl").args(["-sS", "-i"]).args(args))?;
    parse_curl_output(&out)
}

/// Splits `curl -i` output into the final response: interim (1xx) responses and, with `-L`,
/// redirects before it are skipped.
fn parse_curl_output(out: &str) -> anyhow::Result<CurlResponse> {
    let mut rest = out;
    loop {
        let (head, body) = rest
            .split_once("\r\n\r\n")
            .or_else(|| rest.split_once("\n\n"))
            .unwrap_or((rest, ""));
        let mut lines = head.lines().map(|l| l.trim_end_matches('\r'));
        let status_line = lines.next().unwrap_or_default();
        let status = parse_status_line(status_line)
            .with_context(|| format!("curl printed no status line:\n{out}"))?;
        let another_follows = body.starts_with("HTTP/");
        if another_follows && ((100..200).contains(&status) || (300..400).contains(&status)) {
            rest = body;
            continue;
        }
        let headers = lines
            .filter_map(|line| line.split_once(':'))
            .map(|(name, value)| (name.trim().to_owned(), value.trim().to_owned()))
            .collect();
        return Ok(CurlResponse {
            status_line: status_line.trim_end().to_owned(),
            status,
            headers,
            body: body.to_owned(),
        });
    }
}

/// The code of `HTTP/1.1 200 OK` or `HTTP/2 200`.
fn parse_status_line(line: &str) -> anyhow::Result<u16> {
    let mut parts = line.split_whitespace();
    match (parts.next(), parts.next()) {
        (Some(version), Some(code)) if version.starts_with("HTTP/") => Ok(code.parse()?),
        _ => bail!("not a status line: {line:?}"),
    }
}

/// A keep-alive HTTP/1.1 client with a connection pool, for sending many requests; it drives
/// its own single-threaded runtime, so its methods block.
#[derive(Debug)]
pub struct HttpClient {
    runtime: Runtime,
    client: Client<HttpConnector, Empty<Bytes>>,
}

impl HttpClient {
    /// A client with an empty pool.
    pub fn new() -> anyhow::Result<Self> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let client = {
            let _context = runtime.enter();
            Client::builder(TokioExecutor::new()).build_http()
        };
        Ok(Self { runtime, client })
    }

    /// GETs `url` (reusing a pooled connection when there is one) and returns the status and
    /// body; fails after 10 s.
    pub fn get(&self, url: &str) -> anyhow::Result<(u16, String)> {
        let uri: hyper::Uri = url.parse().with_context(|| format!("bad URL {url}"))?;
        self.runtime.block_on(async {
            let exchange = async {
                let response = self.client.get(uri).await?;
                let status = response.status().as_u16();
                let body = response.into_body().collect().await?.to_bytes();
                anyhow::Ok((status, String::from_utf8_lossy(&body).into_owned()))
            };
            tokio::time::timeout(REQUEST_TIMEOUT, exchange)
                .await
                .with_context(|| format!("GET {url} took longer than {REQUEST_TIMEOUT:?}"))?
                .with_context(|| format!("GET {url}"))
        })
    }
}

/// Opens a WebSocket to `url` (`ws://...`), sends `message` as text and returns the text that
/// comes back; fails after 10 s.
pub fn ws_echo(url: &str, message: &str) -> anyhow::Result<String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let exchange = async {
            let (mut socket, _) = tokio_tungstenite::connect_async(url).await?;
            socket.send(Message::text(message)).await?;
            while let Some(reply) = socket.next().await {
                match reply? {
                    Message::Text(text) => {
                        let _ = socket.close(None).await;
                        return Ok(text.to_string());
                    }
                    Message::Close(frame) => bail!("closed before echoing: {frame:?}"),
                    _ => continue,
                }
            }
            bail!("the connection ended before an echo")
        };
        tokio::time::timeout(REQUEST_TIMEOUT, exchange)
            .await
            .with_context(|| format!("WebSocket {url} took longer than {REQUEST_TIMEOUT:?}"))?
            .with_context(|| format!("WebSocket echo at {url}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_http1_response_is_split_into_status_headers_and_body() {
        let out = "HTTP/1.1 200 OK\r\ncontent-type: text/plain; charset=utf-8\r\n\
                   content-length: 14\r\n\r\nhello, world!\n";
        let response = parse_curl_output(out).unwrap();
        assert_eq!(response.status_line, "HTTP/1.1 200 OK");
        assert_eq!(response.status, 200);
        assert_eq!(
            response.header("Content-Type"),
            Some("text/plain; charset=utf-8")
        );
        assert_eq!(response.headers.len(), 2);
        assert_eq!(response.body, "hello, world!\n");
    }

    #[test]
    fn an_http2_status_line_has_no_reason() {
        let response = parse_curl_output("HTTP/2 503 \r\nserver: x\r\n\r\n").unwrap();
        assert_eq!(response.status_line, "HTTP/2 503");
        assert_eq!(response.status, 503);
        assert_eq!(response.header("server"), Some("x"));
        assert_eq!(response.body, "");
    }

    #[test]
    fn interim_responses_and_followed_redirects_are_skipped() {
        let out = "HTTP/1.1 100 Continue\r\n\r\n\
                   HTTP/1.1 301 Moved Permanently\r\nlocation: /b\r\n\r\n\
                   HTTP/1.1 404 Not Found\r\n\r\nnot found\n";
        let response = parse_curl_output(out).unwrap();
        assert_eq!(response.status, 404);
        assert!(response.headers.is_empty());
        assert_eq!(response.body, "not found\n");
    }

    #[test]
    fn a_body_with_blank_lines_is_kept_whole() {
        let out = "HTTP/1.1 200 OK\r\n\r\na\r\n\r\nb";
        assert_eq!(parse_curl_output(out).unwrap().body, "a\r\n\r\nb");
    }

    #[test]
    fn output_without_a_status_line_is_an_error() {
        assert!(parse_curl_output("").is_err());
        assert!(parse_curl_output("hello").is_err());
    }
}

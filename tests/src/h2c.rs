//! One HTTP/2 request with prior knowledge (h2c), written with hyper's low-level client so a
//! test controls what curl would not let it: a stream whose body stops half-way, a Host
//! header that disagrees with `:authority`.
use std::{net::SocketAddr, time::Duration};

use anyhow::Context as _;
use bytes::Bytes;
use futures_util::StreamExt as _;
use http_body_util::{BodyExt as _, StreamBody};
use hyper::{Request, body::Frame};
use hyper_util::rt::{TokioExecutor, TokioIo};

/// What the request's body does after its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyEnd {
    /// The stream ends with them.
    Complete,
    /// The stream stays open and sends nothing more.
    Stall,
}

/// Sends `method uri` with `headers` and `body` over a fresh h2c connection to `addr`;
/// returns the status and body, failing after `within`.
pub fn h2c_request(
    addr: SocketAddr,
    method: &str,
    uri: &str,
    headers: &[(&str, &str)],
    body: &'static [u8],
    end: BodyEnd,
    within: Duration,
) -> anyhow::Result<(u16, String)> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let exchange = async {
            let tcp = tokio::net::TcpStream::connect(addr).await?;
            let (mut sender, conn) =
                hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
                    .await?;
            tokio::spawn(conn);
            let first = futures_util::stream::iter([Ok::<_, std::convert::Infallible>(
                Frame::data(Bytes::from_static(body)),
            )]);
            let frames = match end {
                BodyEnd::Complete => first.boxed(),
                BodyEnd::Stall => first.chain(futures_util::stream::pending()).boxed(),
            };
            let mut request = Request::builder().method(method).uri(uri);
            for (name, value) in headers {
                request = request.header(*name, *value);
            }
            let response = sender
                .send_request(request.body(StreamBody::new(frames))?)
                .await?;
            let status = response.status().as_u16();
            let body = response.into_body().collect().await?.to_bytes();
            anyhow::Ok((status, String::from_utf8_lossy(&body).into_owned()))
        };
        tokio::time::timeout(within, exchange)
            .await
            .with_context(|| format!("{method} {uri} over h2c took longer than {within:?}"))?
    })
}

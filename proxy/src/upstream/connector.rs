//! Connecting to replicas, counting every byte user space writes to and reads from each one,
//! so the kernel's per-backend counters can be checked against ours.
use std::{
    future::Future,
    io,
    net::SocketAddr,
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use hyper::Uri;
use hyper_util::{
    client::legacy::connect::{Connected, Connection},
    rt::TokioIo,
};
use prometheus_client::metrics::counter::Counter;
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::TcpStream,
};

/// Per-backend byte counters: `(read from the backend, written to it)`.
pub trait ByteCounters: Clone + Send + Sync + 'static {
    /// The counters of `backend`.
    fn for_backend(&self, backend: SocketAddr) -> (Counter, Counter);
}

/// Connects to `ip:port` URIs (the pipeline always addresses replicas by address).
#[derive(Clone)]
pub struct CountingConnector<C> {
    counters: C,
    timeout: Duration,
}

impl<C: ByteCounters> CountingConnector<C> {
    /// A connector with a connect timeout, counting into `counters`.
    pub fn new(counters: C, timeout: Duration) -> Self {
        Self { counters, timeout }
    }
}

impl<C: ByteCounters> tower_service::Service<Uri> for CountingConnector<C> {
    type Response = TokioIo<CountedStream>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<Self::Response>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let (counters, timeout) = (self.counters.clone(), self.timeout);
        Box::pin(async move {
            let addr: SocketAddr = uri
                .authority()
                .and_then(|a| a.as_str().parse().ok())
                .ok_or_else(|| io::Error::other(format!("{uri} does not name an address")))?;
            let stream = tokio::time::timeout(timeout, TcpStream::connect(addr))
                .await
                .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))??;
            stream.set_nodelay(true)?;
            let (read, written) = counters.for_backend(addr);
            Ok(TokioIo::new(CountedStream {
                inner: stream,
                read,
                written,
            }))
        })
    }
}

/// A TCP stream that counts the bytes through it.
pub struct CountedStream {
    inner: TcpStream,
    read: Counter,
    written: Counter,
}

impl AsyncRead for CountedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.inner).poll_read(cx, buf);
        self.read.inc_by((buf.filled().len() - before) as u64);
        result
    }
}

impl AsyncWrite for CountedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write(cx, data);
        if let Poll::Ready(Ok(n)) = &result {
            self.written.inc_by(*n as u64);
        }
        result
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl Connection for CountedStream {
    fn connected(&self) -> Connected {
        self.inner.connected()
    }
}

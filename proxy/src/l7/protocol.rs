//! Telling HTTP/1 from h2c (prior knowledge) by the connection's first bytes, so each
//! connection is served by hyper's HTTP/1 or HTTP/2 connection alone.
//!
//! hyper-util's `auto` builder does this too, but it reads the first 24 bytes on their own
//! (one more read per connection than needed), and every connection's task then carries the
//! space of both protocols' connection state. Here the first read takes what the client sent,
//! up to `FIRST_READ`, and hands those bytes to hyper in front of the stream.
use std::{
    io,
    pin::Pin,
    task::{Context, Poll},
};

use bytes::{Buf as _, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, ReadBuf};

/// The HTTP/2 connection preface (RFC 9113, section 3.4).
pub(super) const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// How much the first read may take: a typical request head, whole.
const FIRST_READ: usize = 2048;

/// The protocol a client speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// HTTP/1.0 or 1.1 (also an empty or closed connection: hyper's HTTP/1 answers it).
    Http1,
    /// HTTP/2 with prior knowledge.
    Http2,
}

/// Reads until the protocol is known: the whole preface, a byte that differs from it, or
/// the end of the stream. Returns the protocol and the stream with the bytes read put back
/// in front. Timeouts are the stream's own (`ClientIo`'s first-byte deadline).
pub async fn detect<S: AsyncRead + Unpin>(mut io: S) -> io::Result<(Protocol, Prefixed<S>)> {
    let mut read = BytesMut::with_capacity(FIRST_READ);
    let protocol = loop {
        if io.read_buf(&mut read).await? == 0 {
            break Protocol::Http1;
        }
        match classify(&read) {
            Some(protocol) => break protocol,
            // A strict prefix of the preface so far (rare: a split first segment).
            None => continue,
        }
    };
    Ok((protocol, Prefixed::new(read.freeze(), io)))
}

/// The protocol `first` shows, or `None` while it is a strict prefix of the preface.
fn classify(first: &[u8]) -> Option<Protocol> {
    let n = first.len().min(H2_PREFACE.len());
    if first[..n] != H2_PREFACE[..n] {
        Some(Protocol::Http1)
    } else if n == H2_PREFACE.len() {
        Some(Protocol::Http2)
    } else {
        None
    }
}

/// A stream whose first reads return bytes already taken from it.
pub struct Prefixed<S> {
    prefix: Bytes,
    inner: S,
}

impl<S> Prefixed<S> {
    /// `inner`, with `prefix` read before anything else from it.
    pub fn new(prefix: Bytes, inner: S) -> Self {
        Self { prefix, inner }
    }

    /// The stream itself.
    pub fn inner_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The stream itself.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The bytes not read yet from the prefix, and the stream.
    pub fn into_parts(self) -> (Bytes, S) {
        (self.prefix, self.inner)
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Prefixed<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.prefix.is_empty() {
            return Pin::new(&mut self.inner).poll_read(cx, buf);
        }
        let n = self.prefix.len().min(buf.remaining());
        buf.put_slice(&self.prefix[..n]);
        self.prefix.advance(n);
        if self.prefix.is_empty() {
            // Give the memory back now rather than with the connection.
            self.prefix = Bytes::new();
        }
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Prefixed<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, data)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    use super::*;

    #[test]
    fn the_protocol_is_known_at_the_first_differing_byte_or_the_whole_preface() {
        assert_eq!(classify(b"GET / HTTP/1.1\r\n"), Some(Protocol::Http1));
        assert_eq!(classify(b"PRI * HT"), None);
        assert_eq!(classify(b"PRI * HTX"), Some(Protocol::Http1));
        assert_eq!(classify(H2_PREFACE), Some(Protocol::Http2));
        let mut more = H2_PREFACE.to_vec();
        more.extend_from_slice(b"\0\0\x12\x04");
        assert_eq!(classify(&more), Some(Protocol::Http2));
    }

    #[tokio::test]
    async fn bytes_read_to_detect_come_first_then_the_stream() {
        let (mut client, server) = tokio::io::duplex(64);
        client.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
        let (protocol, mut io) = detect(server).await.unwrap();
        assert_eq!(protocol, Protocol::Http1);
        client.write_all(b"Host: a\r\n\r\n").await.unwrap();
        drop(client);
        let mut all = Vec::new();
        io.read_to_end(&mut all).await.unwrap();
        assert_eq!(all, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    }

    #[tokio::test]
    async fn a_preface_split_over_writes_is_still_http2() {
        let (mut client, server) = tokio::io::duplex(64);
        let detecting = tokio::spawn(detect(server));
        client.write_all(&H2_PREFACE[..5]).await.unwrap();
        tokio::task::yield_now().await;
        client.write_all(&H2_PREFACE[5..]).await.unwrap();
        let (protocol, mut io) = detecting.await.unwrap().unwrap();
        assert_eq!(protocol, Protocol::Http2);
        let mut preface = [0u8; 24];
        io.read_exact(&mut preface).await.unwrap();
        assert_eq!(&preface[..], H2_PREFACE);
    }

    #[tokio::test]
    async fn a_closed_connection_goes_to_http1_with_what_it_sent() {
        let (mut client, server) = tokio::io::duplex(64);
        client.write_all(b"PRI").await.unwrap();
        drop(client);
        let (protocol, mut io) = detect(server).await.unwrap();
        assert_eq!(protocol, Protocol::Http1);
        let mut rest = Vec::new();
        io.read_to_end(&mut rest).await.unwrap();
        assert_eq!(rest, b"PRI");
    }

    #[tokio::test]
    async fn writes_pass_through() {
        let (mut client, server) = tokio::io::duplex(64);
        let mut io = Prefixed::new(Bytes::from_static(b"x"), server);
        io.write_all(b"HTTP/1.1 200 OK\r\n").await.unwrap();
        let mut got = [0u8; 17];
        client.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"HTTP/1.1 200 OK\r\n");
    }
}

//! Telling HTTP/1 from h2c (prior knowledge) by the connection's first bytes, so each
//! connection is served by hyper's HTTP/1 or HTTP/2 connection alone.
//!
//! hyper-util's `auto` builder does this too, but it reads the first 24 bytes on their own
//! (one more read per connection than needed), and every connection's task then carries the
//! space of both protocols' connection state. Here the first read takes what the client sent,
//! up to `FIRST_READ`, and those bytes go back in front of the stream for hyper.
use std::io;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt as _};

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
/// the end of the stream. Returns the protocol and the bytes read, which the caller puts back
/// in front of the stream (`ClientIo::put_back`). Timeouts are the stream's own (`ClientIo`'s
/// first-byte deadline).
pub async fn detect<S: AsyncRead + Unpin>(io: &mut S) -> io::Result<(Protocol, Bytes)> {
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
    Ok((protocol, read.freeze()))
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

#[cfg(test)]
mod tests {
    use tokio::io::AsyncWriteExt as _;

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
    async fn the_bytes_read_to_detect_are_returned() {
        let (mut client, mut server) = tokio::io::duplex(64);
        client.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
        let (protocol, read) = detect(&mut server).await.unwrap();
        assert_eq!(protocol, Protocol::Http1);
        assert_eq!(&read[..], b"GET / HTTP/1.1\r\n");
    }

    #[tokio::test]
    async fn a_preface_split_over_writes_is_still_http2() {
        let (mut client, mut server) = tokio::io::duplex(64);
        let detecting = tokio::spawn(async move { detect(&mut server).await });
        client.write_all(&H2_PREFACE[..5]).await.unwrap();
        tokio::task::yield_now().await;
        client.write_all(&H2_PREFACE[5..]).await.unwrap();
        let (protocol, read) = detecting.await.unwrap().unwrap();
        assert_eq!(protocol, Protocol::Http2);
        assert_eq!(&read[..], H2_PREFACE);
    }

    #[tokio::test]
    async fn a_closed_connection_goes_to_http1_with_what_it_sent() {
        let (mut client, mut server) = tokio::io::duplex(64);
        client.write_all(b"PRI").await.unwrap();
        drop(client);
        let (protocol, read) = detect(&mut server).await.unwrap();
        assert_eq!(protocol, Protocol::Http1);
        assert_eq!(&read[..], b"PRI");
    }
}

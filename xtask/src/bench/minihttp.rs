//! A minimal blocking HTTP/1.1 client on one keep-alive connection: the reconfigure API calls
//! of scenarios 5 and 7, and the idle connections of scenario 6. No process per call (curl
//! would cost more than the call it measures) and no runtime to hold 10,000 sockets.
use std::{
    io::{Read as _, Write as _},
    net::{SocketAddr, TcpStream},
    time::Duration,
};

use anyhow::{Context as _, bail};

/// How long one response may take.
const READ_TIMEOUT: Duration = Duration::from_secs(30);

/// One keep-alive connection.
#[derive(Debug)]
pub struct Conn {
    stream: TcpStream,
    addr: SocketAddr,
    buf: Vec<u8>,
}

/// A response's status and body.
#[derive(Debug, PartialEq, Eq)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The body, as text.
    pub body: String,
}

impl Conn {
    /// Connects to `addr`.
    pub fn connect(addr: SocketAddr) -> anyhow::Result<Self> {
        let stream = TcpStream::connect(addr).with_context(|| format!("connecting to {addr}"))?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(READ_TIMEOUT))?;
        Ok(Self {
            stream,
            addr,
            buf: Vec::new(),
        })
    }

    /// `GET path_and_query` on this connection, waiting for the whole response.
    pub fn get(&mut self, path_and_query: &str) -> anyhow::Result<Response> {
        let request = format!(
            "GET {path_and_query} HTTP/1.1\r\nHost: {}\r\nUser-Agent: flowproxy-bench\r\n\r\n",
            self.addr
        );
        self.stream
            .write_all(request.as_bytes())
            .with_context(|| format!("sending to {}", self.addr))?;
        self.read_response()
            .with_context(|| format!("GET {path_and_query} on {}", self.addr))
    }

    /// The socket's file descriptor.
    pub fn as_raw_fd(&self) -> std::os::fd::RawFd {
        use std::os::fd::AsRawFd as _;
        self.stream.as_raw_fd()
    }

    fn read_response(&mut self) -> anyhow::Result<Response> {
        let mut chunk = [0u8; 4096];
        loop {
            if let Some(head) = parse_head(&self.buf)? {
                let end = head.len + head.content_length;
                if self.buf.len() >= end {
                    let body = String::from_utf8_lossy(&self.buf[head.len..end]).into_owned();
                    self.buf.drain(..end);
                    return Ok(Response {
                        status: head.status,
                        body,
                    });
                }
            }
            let n = self.stream.read(&mut chunk)?;
            if n == 0 {
                bail!("the server closed the connection");
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}

/// A parsed response head.
#[derive(Debug, PartialEq, Eq)]
struct Head {
    /// Bytes up to and including the blank line.
    len: usize,
    status: u16,
    content_length: usize,
}

/// The response head at the start of `buf`, or `None` if it is not complete yet.
fn parse_head(buf: &[u8]) -> anyhow::Result<Option<Head>> {
    let Some(pos) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Ok(None);
    };
    let text = std::str::from_utf8(&buf[..pos]).context("response head is not UTF-8")?;
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("bad status line {status_line:?}"))?;
    let mut content_length = 0;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        if name.eq_ignore_ascii_case("content-length") {
            content_length = value.trim().parse().context("bad content-length")?;
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            bail!("chunked responses are not supported by the bench client");
        }
    }
    Ok(Some(Head {
        len: pos + 4,
        status,
        content_length,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_are_parsed_once_complete() {
        assert_eq!(parse_head(b"HTTP/1.1 200 OK\r\nContent-Le").unwrap(), None);
        let head = parse_head(b"HTTP/1.1 409 Conflict\r\ncontent-length: 5\r\n\r\nhello").unwrap();
        assert_eq!(
            head,
            Some(Head {
                len: 44,
                status: 409,
                content_length: 5
            })
        );
        assert!(parse_head(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n").is_err());
    }
}

//! A client that writes bytes by hand: for requests no well-behaved client library would
//! send (silent sockets, half a preface, stalled bodies, duplicate Host headers, bad chunks).
use std::{
    io::{ErrorKind, Read as _, Write as _},
    net::{SocketAddr, TcpStream},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};

/// One TCP connection to the proxy.
#[derive(Debug)]
pub struct RawClient {
    stream: TcpStream,
    opened: Instant,
    buffered: Vec<u8>,
}

/// A response as read off the wire.
#[derive(Debug, Clone)]
pub struct RawResponse {
    /// `HTTP/1.1 431 Request Header Fields Too Large`.
    pub status_line: String,
    /// The status code.
    pub status: u16,
    /// The header lines, lowercase names.
    pub headers: Vec<(String, String)>,
    /// The body (chunked, by Content-Length, else until the connection closed).
    pub body: String,
}

impl RawClient {
    /// Connects to `addr`.
    pub fn connect(addr: SocketAddr) -> anyhow::Result<Self> {
        let stream = TcpStream::connect(addr).with_context(|| format!("connecting to {addr}"))?;
        stream.set_nodelay(true)?;
        Ok(Self {
            stream,
            opened: Instant::now(),
            buffered: Vec::new(),
        })
    }

    /// Writes `bytes` as they are.
    pub fn send(&mut self, bytes: &[u8]) -> anyhow::Result<()> {
        self.stream.write_all(bytes)?;
        Ok(())
    }

    /// Reads one response, failing if none is complete within `within`.
    pub fn response(&mut self, within: Duration) -> anyhow::Result<RawResponse> {
        let deadline = Instant::now() + within;
        let head_end = loop {
            if let Some(i) = find(&self.buffered, b"\r\n\r\n") {
                break i;
            }
            if !self.fill(deadline)? {
                bail!(
                    "connection closed before a response head; got {:?}",
                    String::from_utf8_lossy(&self.buffered)
                );
            }
        };
        let head = String::from_utf8_lossy(&self.buffered[..head_end]).into_owned();
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or_default().to_owned();
        let status = status_line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .with_context(|| format!("bad status line {status_line:?}"))?;
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        let length = headers
            .iter()
            .find(|(n, _)| n == "content-length")
            .and_then(|(_, v)| v.parse::<usize>().ok());
        let body_start = head_end + 4;
        let chunked = headers
            .iter()
            .any(|(n, v)| n == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
        if chunked {
            let (body, end) = self.chunked_body(body_start, deadline)?;
            self.buffered.drain(..end);
            return Ok(RawResponse {
                status_line,
                status,
                headers,
                body: String::from_utf8_lossy(&body).into_owned(),
            });
        }
        match length {
            Some(n) => {
                while self.buffered.len() < body_start + n {
                    if !self.fill(deadline)? {
                        bail!("connection closed inside the body");
                    }
                }
            }
            None => while self.fill(deadline)? {},
        }
        let end = length.map_or(self.buffered.len(), |n| body_start + n);
        let body = String::from_utf8_lossy(&self.buffered[body_start..end]).into_owned();
        self.buffered.drain(..end);
        Ok(RawResponse {
            status_line,
            status,
            headers,
            body,
        })
    }

    /// A chunked body from `start` in the buffer (no trailers): the data, and where the
    /// message ends.
    fn chunked_body(
        &mut self,
        start: usize,
        deadline: Instant,
    ) -> anyhow::Result<(Vec<u8>, usize)> {
        let mut body = Vec::new();
        let mut at = start;
        loop {
            match httparse::parse_chunk_size(&self.buffered[at..]) {
                Ok(httparse::Status::Complete((line, size))) => {
                    let size = usize::try_from(size)?;
                    let data = at + line;
                    // The data, then its CRLF (after the last, empty chunk: the message's).
                    let end = data + size + 2;
                    while self.buffered.len() < end {
                        if !self.fill(deadline)? {
                            bail!("connection closed inside a chunk");
                        }
                    }
                    body.extend_from_slice(&self.buffered[data..data + size]);
                    at = end;
                    if size == 0 {
                        return Ok((body, at));
                    }
                }
                Ok(httparse::Status::Partial) => {
                    if !self.fill(deadline)? {
                        bail!("connection closed inside a chunk size line");
                    }
                }
                Err(e) => bail!("bad chunk size line: {e:?}"),
            }
        }
    }

    /// Waits until the proxy closes the connection (end of stream or reset), at most
    /// `within`; returns how long after connecting that was. Bytes read meanwhile are kept.
    pub fn closed_within(&mut self, within: Duration) -> anyhow::Result<Duration> {
        let deadline = Instant::now() + within;
        while self.fill(deadline)? {}
        Ok(self.opened.elapsed())
    }

    /// Reads more; false at end of stream (or a reset). Fails at `deadline`.
    fn fill(&mut self, deadline: Instant) -> anyhow::Result<bool> {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            bail!(
                "still open after the deadline; read so far: {:?}",
                String::from_utf8_lossy(&self.buffered)
            );
        }
        self.stream.set_read_timeout(Some(left))?;
        let mut chunk = [0u8; 16 * 1024];
        match self.stream.read(&mut chunk) {
            Ok(0) => Ok(false),
            Ok(n) => {
                self.buffered.extend_from_slice(&chunk[..n]);
                Ok(true)
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => bail!(
                "still open after the deadline; read so far: {:?}",
                String::from_utf8_lossy(&self.buffered)
            ),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => Ok(false),
            Err(e) => Err(e.into()),
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The value of counter `name` with `labels` (e.g. `reason="bad_host"`) in a Prometheus
/// text scrape; 0 when the series is absent.
pub fn counter_value(scrape: &str, name: &str, labels: &str) -> u64 {
    let prefix = format!("{name}{{{labels}}} ");
    scrape
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_read_by_name_and_labels() {
        let scrape = "# HELP x y\nflowproxy_client_errors_total{reason=\"bad_host\"} 3\n\
                      flowproxy_client_errors_total{reason=\"bad_framing\"} 0\n";
        let name = "flowproxy_client_errors_total";
        assert_eq!(counter_value(scrape, name, "reason=\"bad_host\""), 3);
        assert_eq!(counter_value(scrape, name, "reason=\"bad_framing\""), 0);
        assert_eq!(counter_value(scrape, name, "reason=\"nope\""), 0);
    }
}

//! The client's stream as the HTTP server reads it. Two things hyper cannot do for us:
//! - Protocol detection (`protocol.rs`) has no timeout of its own, and hyper's header timeout
//!   starts only after it, so a silent socket (or one that sent half a preface) would hold a
//!   connection slot forever. Until the server calls `protocol_known`, reads here fail with
//!   `TimedOut` once `--client-first-byte-timeout` has passed.
//! - hyper's header timeout also ends idle keep-alive connections, which is no client error;
//!   whether bytes arrived since the last response was written tells the two apart.
//! - hyper has one timer for the wait between requests and for the head itself, while DFP
//!   has two (`TIMEOUT_HTTP_KEEP_ALIVE`, `TIMEOUT_HTTP_REQUEST`). hyper's is the keep-alive
//!   one; when the head's limit is shorter, it runs here, from the first byte of a request
//!   until hyper hands its head over (or the first response byte is written).
use std::{
    future::Future as _,
    io,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU32, Ordering},
    },
    task::{Context, Poll},
    time::Duration,
};

use bytes::{Buf as _, Bytes, BytesMut};

use super::protocol::Protocol;
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    time::{Instant, Sleep},
};

/// What the server learns about a connection once hyper is done with it.
#[derive(Debug, Default)]
pub struct Activity {
    /// The first bytes did not arrive in time.
    timed_out: AtomicBool,
    /// Bytes arrived after the last write: the client was sending a request.
    mid_request: AtomicBool,
    /// The head of the request being read was handed to the handler.
    head_read: AtomicBool,
    /// A head took longer than the head timeout.
    head_timed_out: AtomicBool,
    /// Reads that returned bytes plus writes: a count that stands still while the connection
    /// idles (`park.rs` compares it over time).
    io_events: AtomicU32,
    /// The connection is being taken back from hyper to be parked: its shutdown must leave
    /// the stream open.
    parking: AtomicBool,
    /// Requests handed to the service whose responses are not done yet (`service::InFlight`).
    requests: AtomicU32,
    /// A request or response said the connection ends after it (`Connection: close`, or
    /// HTTP/1.0): hyper closes it, and it is never parked.
    closing: AtomicBool,
}

impl Activity {
    /// True when the first-byte deadline passed.
    pub fn timed_out(&self) -> bool {
        self.timed_out.load(Ordering::Relaxed)
    }

    /// True when the client had sent bytes that no response followed yet.
    pub fn mid_request(&self) -> bool {
        self.mid_request.load(Ordering::Relaxed)
    }

    /// True when a request's head did not arrive within the head timeout.
    pub fn head_timed_out(&self) -> bool {
        self.head_timed_out.load(Ordering::Relaxed)
    }

    /// Called for each request hyper parsed: its head is complete.
    pub fn head_complete(&self) {
        self.head_read.store(true, Ordering::Relaxed);
    }

    /// A request was handed to the service.
    pub fn request_started(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
    }

    /// A request's response is done or dropped.
    pub fn request_done(&self) {
        self.requests.fetch_sub(1, Ordering::Relaxed);
    }

    /// A request or response ends the connection after it.
    pub fn connection_closes(&self) {
        self.closing.store(true, Ordering::Relaxed);
    }

    /// Whether the connection ends after its current exchange.
    pub fn closing(&self) -> bool {
        self.closing.load(Ordering::Relaxed)
    }

    /// Whether any request's response is still being produced or sent.
    pub fn requests_in_flight(&self) -> bool {
        self.requests.load(Ordering::Relaxed) > 0
    }

    /// How many reads with bytes and writes the stream has seen (wrapping).
    pub fn io_events(&self) -> u32 {
        self.io_events.load(Ordering::Relaxed)
    }

    /// Whether a shutdown by hyper is to leave the stream open.
    pub fn parking(&self) -> bool {
        self.parking.load(Ordering::Relaxed)
    }

    /// Makes hyper's shutdown of the stream leave it open (`true`), or close it again.
    pub fn set_parking(&self, parking: bool) {
        self.parking.store(parking, Ordering::Relaxed);
    }

    /// One more read or write: only the stream's one owner counts, so no atomic add is needed.
    fn count_io(&self) {
        let n = self.io_events.load(Ordering::Relaxed);
        self.io_events.store(n.wrapping_add(1), Ordering::Relaxed);
    }
}

/// A client stream with a deadline on its first bytes, and on each request's head.
pub struct ClientIo<S> {
    inner: S,
    /// Bytes taken from `inner` and put back (`put_back`), read before `inner` again.
    pending: Bytes,
    sniff: Option<Sniff>,
    head: Option<HeadTimer>,
    activity: Arc<Activity>,
}

/// The limit on an HTTP/1 request's head, from its first byte.
struct HeadTimer {
    timeout: Duration,
    /// When the head being read must be complete; `None` between requests.
    due: Option<Instant>,
    /// Made the first time a read of a head has to wait (most heads arrive in one read).
    sleep: Option<Pin<Box<Sleep>>>,
}

/// The protocol is not known yet: the deadline for knowing it.
struct Sniff {
    deadline: Pin<Box<Sleep>>,
    timeout: Duration,
}

impl<S> ClientIo<S> {
    /// Wraps `inner`; its first bytes must arrive within `first_byte_timeout` from now, and
    /// with `head_timeout`, each HTTP/1 request's head within that of its first byte.
    pub fn new(
        inner: S,
        first_byte_timeout: Duration,
        head_timeout: Option<Duration>,
    ) -> (Self, Arc<Activity>) {
        let activity = Arc::new(Activity::default());
        let io = Self {
            inner,
            pending: Bytes::new(),
            sniff: Some(Sniff {
                deadline: Box::pin(tokio::time::sleep(first_byte_timeout)),
                timeout: first_byte_timeout,
            }),
            head: head_timeout.map(|timeout| HeadTimer {
                timeout,
                due: None,
                sleep: None,
            }),
            activity: Arc::clone(&activity),
        };
        (io, activity)
    }
}

impl HeadTimer {
    /// Whether the head being read is overdue; registers `cx` for its deadline otherwise.
    fn overdue(&mut self, cx: &mut Context<'_>, activity: &Activity) -> bool {
        let Some(due) = self.due else {
            return false;
        };
        if activity.head_read.load(Ordering::Relaxed) {
            self.due = None;
            return false;
        }
        let sleep = self
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(due)));
        if sleep.deadline() != due {
            sleep.as_mut().reset(due);
        }
        sleep.as_mut().poll(cx).is_ready()
    }
}

impl<S> ClientIo<S> {
    /// The stream itself.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The stream itself, to change.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Puts `bytes` back in front of what is still to be read. They count as read again:
    /// a request they start is timed and shows as in progress.
    pub fn put_back(&mut self, bytes: Bytes) {
        if bytes.is_empty() {
            // Dropped, not kept: an empty `Bytes` can still hold a whole buffer it was cut
            // from (hyper's 8 KiB read buffer, handed back by a park).
            return;
        }
        self.pending = join(bytes, std::mem::take(&mut self.pending));
    }

    /// The first bytes told the protocol: the first-byte deadline is over. HTTP/2 has no
    /// heads to time here (its streams are hyper's).
    pub fn protocol_known(&mut self, protocol: Protocol) {
        self.sniff = None;
        if protocol == Protocol::Http2 {
            self.head = None;
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for ClientIo<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let this = &mut *self;
        let poll = if this.pending.is_empty() {
            Pin::new(&mut this.inner).poll_read(cx, buf)
        } else {
            let n = this.pending.len().min(buf.remaining());
            buf.put_slice(&this.pending[..n]);
            this.pending.advance(n);
            if this.pending.is_empty() {
                // Give the memory back now rather than with the connection.
                this.pending = Bytes::new();
            }
            Poll::Ready(Ok(()))
        };
        match &poll {
            Poll::Ready(Ok(())) => {
                let new = &buf.filled()[before..];
                if !new.is_empty() {
                    this.activity.count_io();
                }
                // The first bytes since the last response start a request: its head is due.
                if !new.is_empty()
                    && !this.activity.mid_request.swap(true, Ordering::Relaxed)
                    && let Some(head) = &mut this.head
                {
                    this.activity.head_read.store(false, Ordering::Relaxed);
                    head.due = Some(Instant::now() + head.timeout);
                }
            }
            Poll::Pending => {
                if let Some(head) = &mut this.head
                    && head.overdue(cx, &this.activity)
                {
                    let timeout = head.timeout;
                    head.due = None;
                    this.activity.head_timed_out.store(true, Ordering::Relaxed);
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!(
                            "request head not complete within {timeout:?} (--timeout-http-request)"
                        ),
                    )));
                }
                if let Some(sniff) = &mut this.sniff
                    && sniff.deadline.as_mut().poll(cx).is_ready()
                {
                    let timeout = sniff.timeout;
                    this.sniff = None;
                    this.activity.timed_out.store(true, Ordering::Relaxed);
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("no request within {timeout:?} (--client-first-byte-timeout)"),
                    )));
                }
            }
            Poll::Ready(Err(_)) => {}
        }
        poll
    }
}

/// `first`, then `then`.
fn join(first: Bytes, then: Bytes) -> Bytes {
    match (first.is_empty(), then.is_empty()) {
        (_, true) => first,
        (true, false) => then,
        (false, false) => {
            let mut both = BytesMut::with_capacity(first.len() + then.len());
            both.extend_from_slice(&first);
            both.extend_from_slice(&then);
            both.freeze()
        }
    }
}

impl<S> ClientIo<S> {
    /// A response is being written: whatever the client sent was a whole request.
    fn answered(&mut self) {
        self.activity.count_io();
        self.activity.mid_request.store(false, Ordering::Relaxed);
        if let Some(head) = &mut self.head {
            head.due = None;
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for ClientIo<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.answered();
        Pin::new(&mut self.inner).poll_write(cx, data)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.answered();
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.activity.parking() {
            // hyper ends a connection we take back by shutting its stream down: keep it open.
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    use super::*;

    #[test]
    fn bytes_put_back_come_before_those_put_back_earlier() {
        let read = Bytes::from_static(b"GET / HT");
        let unread = Bytes::from_static(b"TP/1.1\r\n");
        assert_eq!(
            &join(read.clone(), unread.clone())[..],
            b"GET / HTTP/1.1\r\n"
        );
        assert_eq!(join(read.clone(), Bytes::new()), read);
        assert_eq!(join(Bytes::new(), unread.clone()), unread);
        assert!(join(Bytes::new(), Bytes::new()).is_empty());
    }

    #[tokio::test]
    async fn bytes_put_back_are_read_first_and_start_a_request() {
        let (mut client, server) = tokio::io::duplex(64);
        let (mut io, activity) = ClientIo::new(server, Duration::from_secs(5), None);
        io.protocol_known(Protocol::Http1);
        io.put_back(Bytes::from_static(b"GET / HTTP/1.1\r\n"));
        assert!(!activity.mid_request());
        client.write_all(b"Host: a\r\n\r\n").await.unwrap();
        drop(client);
        let mut all = Vec::new();
        io.read_to_end(&mut all).await.unwrap();
        assert_eq!(all, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
        assert!(activity.mid_request(), "bytes put back start a request");
    }

    #[tokio::test]
    async fn half_a_preface_times_out_and_a_request_does_not() {
        let (mut client, server) = tokio::io::duplex(64);
        let (mut io, activity) = ClientIo::new(server, Duration::from_millis(100), None);
        client.write_all(b"PRI * HT").await.unwrap();
        let mut buf = [0u8; 24];
        let n = io.read(&mut buf).await.unwrap();
        assert_eq!(n, 8);
        let err = io.read(&mut buf[8..]).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(activity.timed_out());

        let (mut client, server) = tokio::io::duplex(64);
        let (mut io, activity) = ClientIo::new(server, Duration::from_millis(100), None);
        client.write_all(b"GET").await.unwrap();
        assert_eq!(io.read(&mut buf).await.unwrap(), 3);
        assert!(activity.mid_request());
        io.protocol_known(Protocol::Http1);
        // The protocol is known: later silence is hyper's header timeout's business.
        let later = tokio::time::timeout(Duration::from_millis(300), io.read(&mut buf)).await;
        assert!(
            later.is_err(),
            "a read after sniffing must not time out here"
        );
        assert!(!activity.timed_out());
        io.write_all(b"HTTP/1.1 400").await.unwrap();
        assert!(!activity.mid_request());
    }

    #[tokio::test]
    async fn a_head_is_due_from_its_first_byte_until_it_is_handed_over() {
        let limit = Duration::from_millis(150);
        let (mut client, server) = tokio::io::duplex(256);
        let (mut io, activity) = ClientIo::new(server, Duration::from_secs(5), Some(limit));
        let mut buf = [0u8; 64];
        // A whole head, handed over: the wait for its body is not the head's.
        client.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
        assert_eq!(io.read(&mut buf).await.unwrap(), 18);
        io.protocol_known(Protocol::Http1);
        activity.head_complete();
        let quiet = tokio::time::timeout(limit * 3, io.read(&mut buf)).await;
        assert!(quiet.is_err(), "no timeout once the head was handed over");
        io.write_all(b"HTTP/1.1 200 OK\r\n\r\n").await.unwrap();
        // Idle after the response: not the head timer's business either.
        let idle = tokio::time::timeout(limit * 3, io.read(&mut buf)).await;
        assert!(idle.is_err(), "an idle connection is not a slow head");
        // Half a head that stalls is cut at the limit.
        client.write_all(b"GET /slow HT").await.unwrap();
        let started = Instant::now();
        assert_eq!(io.read(&mut buf).await.unwrap(), 12);
        let err = io.read(&mut buf).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(started.elapsed() >= limit, "{:?}", started.elapsed());
        assert!(activity.head_timed_out());
    }
}

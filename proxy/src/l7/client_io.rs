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
        let poll = Pin::new(&mut this.inner).poll_read(cx, buf);
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

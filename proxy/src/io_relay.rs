//! Relaying bytes both ways until either side closes or nothing moves for a while: HAProxy's
//! `timeout tunnel` is an inactivity timeout, so an active WebSocket or database connection
//! is never cut just for being old.
use std::{
    io,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    task::{Context, Poll},
    time::{Duration, Instant},
};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Copies between `a` and `b` through a buffer of `buffer` bytes each way, until both
/// directions close; fails with `TimedOut` after `idle` without a byte in either direction.
/// Returns the bytes copied `(a to b, b to a)`.
pub async fn copy_bidirectional_idle<A, B>(
    a: A,
    b: B,
    idle: Duration,
    buffer: usize,
) -> io::Result<(u64, u64)>
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    let start = Instant::now();
    let last = Arc::new(AtomicU64::new(0));
    let mut a = Activity {
        inner: a,
        last: Arc::clone(&last),
        start,
    };
    let mut b = Activity {
        inner: b,
        last: Arc::clone(&last),
        start,
    };
    let watch = async {
        loop {
            let quiet_since = Duration::from_millis(last.load(Ordering::Relaxed));
            let deadline = quiet_since + idle;
            let now = start.elapsed();
            if now >= deadline {
                return;
            }
            tokio::time::sleep(deadline - now).await;
        }
    };
    tokio::select! {
        copied = tokio::io::copy_bidirectional_with_sizes(&mut a, &mut b, buffer, buffer) => copied,
        () = watch => Err(io::Error::new(io::ErrorKind::TimedOut, format!("idle for {idle:?}"))),
    }
}

/// A stream that records when bytes last moved through it.
struct Activity<T> {
    inner: T,
    last: Arc<AtomicU64>,
    start: Instant,
}

impl<T> Activity<T> {
    fn touch(&self) {
        self.last
            .store(self.start.elapsed().as_millis() as u64, Ordering::Relaxed);
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Activity<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let poll = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.touch();
        }
        poll
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Activity<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write(cx, data);
        if matches!(poll, Poll::Ready(Ok(n)) if n > 0) {
            self.touch();
        }
        poll
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

    #[tokio::test]
    async fn an_active_tunnel_outlives_the_idle_timeout_and_a_quiet_one_does_not() {
        let (client, proxy_a) = tokio::io::duplex(64);
        let (proxy_b, server) = tokio::io::duplex(64);
        let idle = Duration::from_millis(200);
        let relay = tokio::spawn(copy_bidirectional_idle(proxy_a, proxy_b, idle, 64));
        let (mut client, mut server) = (client, server);
        // Traffic every 100 ms for 600 ms: three idle periods' worth, never idle.
        for _ in 0..6 {
            client.write_all(b"x").await.unwrap();
            let mut byte = [0u8; 1];
            server.read_exact(&mut byte).await.unwrap();
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(!relay.is_finished(), "an active tunnel was cut");
        let result = tokio::time::timeout(Duration::from_secs(2), relay)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(result.unwrap_err().kind(), io::ErrorKind::TimedOut);
    }
}

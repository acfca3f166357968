//! The client's request body on its way to the replica. It says when it was sent whole (so
//! `timeoutServer` measures the replica's time to answer, not the client's upload), gives up
//! once the client has sent nothing for `--timeout-client` (HAProxy's `timeout client`), and
//! records a failure as the client's, so a broken upload is never blamed on the replica. It
//! also counts the bytes it relayed, for the access log.
use std::{
    future::Future as _,
    pin::Pin,
    sync::{
        Arc, OnceLock,
        atomic::{AtomicU64, Ordering},
    },
    task::{Context, Poll},
    time::Duration,
};

use bytes::Bytes;
use http_body_util::BodyExt as _;
use hyper::body::{Body as HttpBody, Frame, SizeHint};
use tokio::{sync::oneshot, time::Sleep};

use crate::upstream::UpstreamBody;

/// Why the client's body did not arrive whole.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyFailure {
    /// Nothing arrived for this long while the replica waited for more.
    #[error(
        "the client sent nothing of the request body for {0:?} (--timeout-client, or the service's timeoutClient)"
    )]
    Idle(Duration),
    /// The body's framing did not parse (a bad chunk size, say) or the client went away.
    #[error("the request body is malformed or cut short: {0}")]
    Client(String),
}

/// What the wrapped body and the request path share (one allocation for both).
#[derive(Default)]
struct Shared {
    failure: OnceLock<BodyFailure>,
    relayed: AtomicU64,
}

/// What the request path learns about the body while it is forwarded.
pub struct BodyWatch {
    /// Completes once the body has been read to its end (errs if it is dropped first).
    pub sent: oneshot::Receiver<()>,
    shared: Arc<Shared>,
}

impl BodyWatch {
    /// Why the body failed, once it has.
    pub fn failure(&self) -> Option<&BodyFailure> {
        self.shared.failure.get()
    }

    /// The count of the body's bytes passed on to the replica, which goes on as it is read.
    pub fn relayed(&self) -> RelayedBytes {
        RelayedBytes(Arc::clone(&self.shared))
    }
}

/// How many bytes of the client's body went on to the replica so far.
pub struct RelayedBytes(Arc<Shared>);

impl RelayedBytes {
    /// The count now.
    pub fn get(&self) -> u64 {
        self.0.relayed.load(Ordering::Relaxed)
    }
}

/// Wraps the client's `body` for the upstream request.
pub fn watch<B>(body: B, idle: Duration) -> (UpstreamBody, BodyWatch)
where
    B: HttpBody<Data = Bytes> + Send + Sync + Unpin + 'static,
    B::Error: std::fmt::Display,
{
    let (tx, rx) = oneshot::channel();
    let shared = Arc::new(Shared::default());
    let wrapped = Watched {
        inner: body,
        done: Some(tx),
        idle,
        timer: None,
        shared: Arc::clone(&shared),
    };
    (wrapped.boxed(), BodyWatch { sent: rx, shared })
}

struct Watched<B> {
    inner: B,
    done: Option<oneshot::Sender<()>>,
    idle: Duration,
    /// Armed while the replica waits for the client; `None` until the first wait.
    timer: Option<(Pin<Box<Sleep>>, bool)>,
    shared: Arc<Shared>,
}

impl<B> Watched<B> {
    fn finish(&mut self) {
        if let Some(tx) = self.done.take() {
            let _ = tx.send(());
        }
    }

    fn fail(&mut self, failure: BodyFailure) -> crate::upstream::BoxError {
        let _ = self.shared.failure.set(failure.clone());
        Box::new(failure)
    }

    /// Called when the client had nothing: arms the idle timer (counting from the first
    /// wait, not from the last frame, so time the replica spent not reading is not the
    /// client's) and tells whether it ran out.
    fn idle_expired(&mut self, cx: &mut Context<'_>) -> bool {
        let deadline = tokio::time::Instant::now() + self.idle;
        let (sleep, armed) = self
            .timer
            .get_or_insert_with(|| (Box::pin(tokio::time::sleep_until(deadline)), true));
        if !*armed {
            sleep.as_mut().reset(deadline);
            *armed = true;
        }
        sleep.as_mut().poll(cx).is_ready()
    }

    fn disarm(&mut self) {
        if let Some((_, armed)) = &mut self.timer {
            *armed = false;
        }
    }
}

impl<B> HttpBody for Watched<B>
where
    B: HttpBody<Data = Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    type Data = Bytes;
    type Error = crate::upstream::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Pending => {
                if this.idle_expired(cx) {
                    let idle = this.idle;
                    return Poll::Ready(Some(Err(this.fail(BodyFailure::Idle(idle)))));
                }
                Poll::Pending
            }
            Poll::Ready(None) => {
                this.finish();
                Poll::Ready(None)
            }
            Poll::Ready(Some(Ok(frame))) => {
                this.disarm();
                if let Some(data) = frame.data_ref() {
                    let len = data.len() as u64;
                    this.shared.relayed.fetch_add(len, Ordering::Relaxed);
                }
                // hyper may stop polling once a sized body is complete, so the end is also
                // the frame after which the body reports itself finished.
                if this.inner.is_end_stream() {
                    this.finish();
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                let failure = BodyFailure::Client(e.to_string());
                Poll::Ready(Some(Err(this.fail(failure))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use http_body_util::{Full, StreamBody};

    use super::*;

    /// A body the test feeds frame by frame.
    fn fed() -> (
        tokio::sync::mpsc::Sender<Bytes>,
        impl HttpBody<Data = Bytes, Error = Infallible> + Send + Sync + Unpin + 'static,
    ) {
        let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(4);
        let stream = futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv()
                .await
                .map(|b| (Ok::<_, Infallible>(Frame::data(b)), rx))
        });
        (tx, StreamBody::new(Box::pin(stream)))
    }

    #[tokio::test]
    async fn the_signal_fires_when_the_body_is_read() {
        let body = Full::new(Bytes::from_static(b"upload"));
        let (body, mut watch) = watch(body, Duration::from_secs(5));
        assert!(watch.sent.try_recv().is_err(), "nothing read yet");
        let bytes = body.collect().await.unwrap().to_bytes();
        assert_eq!(&bytes[..], b"upload");
        assert!(watch.sent.try_recv().is_ok());
        assert_eq!(watch.failure(), None);
        assert_eq!(watch.relayed().get(), 6);
    }

    #[tokio::test]
    async fn a_body_that_stops_fails_after_the_idle_time_and_a_steady_one_does_not() {
        let idle = Duration::from_millis(150);
        let (tx, inner) = fed();
        let (mut body, watch) = watch(inner, idle);
        let relayed = watch.relayed();
        // A frame every 50 ms for 450 ms: never idle for 150 ms.
        for _ in 0..9 {
            tx.send(Bytes::from_static(b"x")).await.unwrap();
            let frame = body.frame().await.unwrap().unwrap();
            assert_eq!(frame.into_data().unwrap(), "x");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let started = std::time::Instant::now();
        let err = body.frame().await.unwrap().unwrap_err();
        assert!(started.elapsed() >= idle, "{:?}", started.elapsed());
        assert!(err.to_string().contains("--timeout-client"), "{err}");
        assert_eq!(watch.failure(), Some(&BodyFailure::Idle(idle)));
        assert_eq!(relayed.get(), 9, "what came before the stall was relayed");
        drop(tx);
    }
}

//! A request body that says when it has been sent whole, so `timeoutServer` measures the
//! replica's time to answer, not the client's upload.
use std::{
    pin::Pin,
    task::{Context, Poll},
};

use bytes::Bytes;
use hyper::body::{Body as HttpBody, Frame, SizeHint};
use tokio::sync::oneshot;

use super::Body;

/// Wraps `body`; the receiver completes once the body has been read to its end (or errs if
/// the body is dropped first).
pub fn signal_end(body: Body) -> (Body, oneshot::Receiver<()>) {
    let (tx, rx) = oneshot::channel();
    let wrapped = SignalEnd {
        inner: body,
        done: Some(tx),
    };
    (Body::new(wrapped), rx)
}

struct SignalEnd {
    inner: Body,
    done: Option<oneshot::Sender<()>>,
}

impl SignalEnd {
    fn finish(&mut self) {
        if let Some(tx) = self.done.take() {
            let _ = tx.send(());
        }
    }
}

impl HttpBody for SignalEnd {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let poll = Pin::new(&mut self.inner).poll_frame(cx);
        // hyper may stop polling once a sized body is complete, so the end is also the frame
        // after which the body reports itself finished.
        match &poll {
            Poll::Ready(None) => self.finish(),
            Poll::Ready(Some(_)) if self.inner.is_end_stream() => self.finish(),
            _ => {}
        }
        poll
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
    use http_body_util::{BodyExt as _, Full};

    use super::*;

    #[tokio::test]
    async fn the_signal_fires_when_the_body_is_read() {
        let body = Full::new(Bytes::from_static(b"upload"))
            .map_err(|n| match n {})
            .boxed();
        let (body, mut done) = signal_end(body);
        assert!(done.try_recv().is_err(), "nothing read yet");
        let bytes = body.collect().await.unwrap().to_bytes();
        assert_eq!(&bytes[..], b"upload");
        assert!(done.try_recv().is_ok());
    }
}

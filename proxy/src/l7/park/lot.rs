//! The parking lot: the keep-alive deadlines of a listener's parked connections, and its
//! shutdown, kept in one place and served by one sweeper task with one timer (issue 16,
//! step 3's shared timer wheel).
//!
//! A parked connection's task is what an idle connection costs, so it holds as little as it
//! can: a `Ticket` (the lot, its deadline and number) and its socket's readiness, which needs
//! no state of its own. A tokio `Sleep` and a shutdown watch in every parked task cost ~250 bytes each;
//! here each connection is one map entry of ~60 bytes, and the sweeper wakes it when its
//! deadline passes or shutdown starts.
use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex, MutexGuard},
    task::{Context, Poll, Waker},
    time::Duration,
};

use prometheus_client::metrics::gauge::Gauge;
use tokio::{
    net::TcpStream,
    sync::{Notify, watch},
    time::Instant,
};

use crate::l7::drain;

/// Deadlines this close together are swept in one wake-up of the sweeper; a parked
/// connection may outlive its keep-alive timeout by this much, never fall short of it.
const GRAIN: Duration = Duration::from_millis(20);

/// A listener's parked connections, by keep-alive deadline.
pub struct ParkingLot {
    inner: Mutex<Waiting>,
    /// Wakes the sweeper when a deadline earlier than any it waits for comes in.
    earlier: Notify,
    /// Counts connections while they are parked (`flowproxy_parked_connections`).
    gauge: Option<Gauge>,
}

#[derive(Default)]
struct Waiting {
    /// Parked connections by (deadline, number), each with the waker of its task once polled.
    /// The sweeper removes an entry whose deadline passed: its connection then ends.
    by_deadline: BTreeMap<(Instant, u64), Option<Waker>>,
    /// Numbers parked connections apart when their deadlines are equal.
    next: u64,
    /// Shutdown started: every parked connection ends and none parks any more.
    closed: bool,
}

impl ParkingLot {
    /// An empty lot whose parked connections are counted in `gauge`, when given.
    pub fn new(gauge: Option<Gauge>) -> Arc<Self> {
        Arc::new(Self {
            inner: Mutex::new(Waiting::default()),
            earlier: Notify::new(),
            gauge,
        })
    }

    fn lock(&self) -> MutexGuard<'_, Waiting> {
        // A panic elsewhere while holding the lock leaves the map consistent (no multi-step
        // updates), so a poisoned lock is still usable.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Parks a connection until `deadline`: `None` once shutdown has started (the connection
    /// is to close instead).
    pub fn park(self: &Arc<Self>, deadline: Instant) -> Option<Ticket> {
        let mut waiting = self.lock();
        if waiting.closed {
            return None;
        }
        let key = (deadline, waiting.next);
        waiting.next = waiting.next.wrapping_add(1);
        let first = waiting
            .by_deadline
            .first_key_value()
            .is_none_or(|(first, _)| key < *first);
        waiting.by_deadline.insert(key, None);
        drop(waiting);
        if first {
            self.earlier.notify_one();
        }
        if let Some(gauge) = &self.gauge {
            gauge.inc();
        }
        Some(Ticket {
            lot: Arc::clone(self),
            key,
        })
    }

    /// Ends parked connections as their deadlines pass, and all of them once shutdown starts
    /// (then it returns).
    pub async fn sweep(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        loop {
            let next = self.lock().by_deadline.first_key_value().map(|(k, _)| k.0);
            tokio::select! {
                _ = drain::stopping(&mut shutdown) => break,
                _ = self.earlier.notified() => {}
                _ = tokio::time::sleep_until(next.unwrap_or_else(Instant::now) + GRAIN),
                    if next.is_some() => self.expire(Instant::now()),
            }
        }
        let mut waiting = self.lock();
        waiting.closed = true;
        let all = std::mem::take(&mut waiting.by_deadline);
        drop(waiting);
        all.into_values().flatten().for_each(Waker::wake);
    }

    /// Removes and wakes every connection whose deadline is `now` or earlier.
    fn expire(&self, now: Instant) {
        let mut waiting = self.lock();
        let later = waiting.by_deadline.split_off(&(now, u64::MAX));
        let due = std::mem::replace(&mut waiting.by_deadline, later);
        drop(waiting);
        due.into_values().flatten().for_each(Waker::wake);
    }
}

/// A parked connection's place in the lot, given back when dropped.
pub struct Ticket {
    lot: Arc<ParkingLot>,
    key: (Instant, u64),
}

impl Ticket {
    /// Ready with `true` once `socket` is readable (the client sent more, or closed), with
    /// `false` once the deadline passed or shutdown started. Needs no state of its own.
    pub fn poll_wait(&self, socket: &TcpStream, cx: &mut Context<'_>) -> Poll<bool> {
        if let Poll::Ready(ready) = socket.poll_read_ready(cx) {
            return Poll::Ready(ready.is_ok());
        }
        let mut waiting = self.lot.lock();
        match waiting.by_deadline.get_mut(&self.key) {
            // Swept: the deadline passed, or shutdown started.
            None => Poll::Ready(false),
            Some(waker) => {
                if !waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                    *waker = Some(cx.waker().clone());
                }
                Poll::Pending
            }
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.lot.lock().by_deadline.remove(&self.key);
        if let Some(gauge) = &self.lot.gauge {
            gauge.dec();
        }
    }
}

#[cfg(test)]
mod tests;

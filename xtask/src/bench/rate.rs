//! A constant-rate HTTP/1.1 load generator (wrk2 is not in Debian). Request `i` is due at
//! `start + i / rate`; each keep-alive connection takes the next due request when it is free,
//! and latency runs from the due time, not from when the request could be sent. A stalled server
//! therefore shows up in the percentiles instead of pausing the schedule (no coordinated
//! omission). Runs on the calling thread (pinned to the load core), on a single-threaded runtime.
use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::Context as _;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Empty};
use hyper::Request;
use hyper_util::rt::TokioIo;

use super::stats::percentile;

/// Sleeping is accurate to about a millisecond; the last stretch before a due time is spent
/// yielding, which keeps the send time within microseconds of the schedule.
const SPIN: Duration = Duration::from_millis(2);

/// What a fixed-rate run measured.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Requests that failed (error, or a status other than 200).
    pub errors: u64,
    /// Completed requests per second over the run.
    pub achieved_rate: f64,
    /// Latency from each request's due time, µs, sorted.
    pub latencies_us: Vec<u64>,
}

impl Outcome {
    /// The `p`th percentile latency, in ms.
    pub fn percentile_ms(&self, p: f64) -> f64 {
        percentile(&self.latencies_us, p) as f64 / 1000.0
    }
}

/// The shared schedule: which request is next, and when each is due.
#[derive(Debug)]
struct Schedule {
    start: Instant,
    interval: Duration,
    count: u64,
    next: AtomicU64,
}

impl Schedule {
    /// The next request's due time, or `None` once the run's requests are all taken.
    fn take(&self) -> Option<Instant> {
        let i = self.next.fetch_add(1, Ordering::Relaxed);
        (i < self.count).then(|| self.start + self.interval.mul_f64(i as f64))
    }
}

/// Sends `rate` requests per second to `http://addr/` over `connections` keep-alive connections
/// for `duration`.
pub fn run(
    addr: SocketAddr,
    rate: f64,
    connections: u32,
    duration: Duration,
) -> anyhow::Result<Outcome> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let schedule = Arc::new(Schedule {
            // Leave time to open the connections before the first request is due.
            start: Instant::now() + Duration::from_millis(200),
            interval: Duration::from_secs_f64(1.0 / rate),
            count: (rate * duration.as_secs_f64()) as u64,
            next: AtomicU64::new(0),
        });
        let workers: Vec<_> = (0..connections)
            .map(|_| tokio::spawn(worker(addr, schedule.clone())))
            .collect();
        let mut latencies = Vec::with_capacity(schedule.count as usize);
        let mut errors = 0;
        for w in workers {
            let (l, e) = w.await.context("a load connection panicked")??;
            latencies.extend(l);
            errors += e;
        }
        let elapsed = schedule.start.elapsed().as_secs_f64();
        latencies.sort_unstable();
        Ok(Outcome {
            errors,
            achieved_rate: latencies.len() as f64 / elapsed,
            latencies_us: latencies,
        })
    })
}

/// One connection: takes due requests until none are left; reconnects after an error.
async fn worker(addr: SocketAddr, schedule: Arc<Schedule>) -> anyhow::Result<(Vec<u64>, u64)> {
    let mut latencies = Vec::new();
    let mut errors = 0;
    let mut sender = connect(addr).await?;
    while let Some(due) = schedule.take() {
        wait_until(due).await;
        match send(&mut sender, addr).await {
            Ok(true) => latencies.push(due.elapsed().as_micros() as u64),
            Ok(false) => errors += 1,
            Err(_) => {
                errors += 1;
                sender = connect(addr).await?;
            }
        }
    }
    Ok((latencies, errors))
}

type Sender = hyper::client::conn::http1::SendRequest<Empty<Bytes>>;

async fn connect(addr: SocketAddr) -> anyhow::Result<Sender> {
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .with_context(|| format!("connecting to {addr}"))?;
    stream.set_nodelay(true)?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    Ok(sender)
}

/// One request; `Ok(false)` for a status other than 200.
async fn send(sender: &mut Sender, addr: SocketAddr) -> anyhow::Result<bool> {
    sender.ready().await?;
    let request = Request::get("/")
        .header(hyper::header::HOST, addr.to_string())
        .body(Empty::new())?;
    let response = sender.send_request(request).await?;
    let ok = response.status() == hyper::StatusCode::OK;
    response.into_body().collect().await?;
    Ok(ok)
}

async fn wait_until(due: Instant) {
    loop {
        let now = Instant::now();
        if now >= due {
            return;
        }
        if due - now > SPIN {
            tokio::time::sleep_until((due - SPIN).into()).await;
        } else {
            tokio::task::yield_now().await;
        }
    }
}

//! A listener's connection settings: the client's time limits and hyper's buffer ceiling
//! (`ConnSettings`, from the flags), and the hyper builders made from them once per listener.
use std::time::Duration;

use hyper::server::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioTimer};

/// HTTP/2 pings: a peer that stops answering is dropped.
const H2_KEEP_ALIVE: Duration = Duration::from_secs(20);

/// How long a client may take at each step before it is cut off, and how much hyper may buffer
/// (defaults: the flags in `cli.rs`).
#[derive(Debug, Clone, Copy)]
pub struct ConnSettings {
    /// From accept (or the end of the TLS handshake) to knowing the protocol, and for the TLS
    /// handshake itself (`--client-first-byte-timeout`).
    pub first_byte_timeout: Duration,
    /// The longest an idle keep-alive connection waits for its next request, and a head
    /// must be complete within it too (hyper's one timer: `--timeout-http-keep-alive`, else
    /// `--client-head-timeout`).
    pub idle_timeout: Duration,
    /// A shorter limit on each HTTP/1 head from its first byte (`--timeout-http-request`),
    /// when it is set below `idle_timeout`.
    pub head_timeout: Option<Duration>,
    /// The most hyper buffers for a head (HTTP/1.1 `max_buf_size`, HTTP/2
    /// `max_header_list_size`); our own, lower limits are checked per request.
    pub parser_ceiling: usize,
}

/// hyper's server settings, one builder per protocol. Without a timer hyper enforces no
/// timeout at all, so an idle or slow client could hold a connection forever.
pub(super) struct Builders {
    pub(super) http1: http1::Builder,
    pub(super) http2: http2::Builder<TokioExecutor>,
}

impl Builders {
    pub(super) fn new(settings: &ConnSettings) -> Self {
        let mut http1 = http1::Builder::new();
        http1
            .timer(TokioTimer::new())
            .header_read_timeout(settings.idle_timeout)
            .max_buf_size(settings.parser_ceiling.max(8192));
        let mut http2 = http2::Builder::new(TokioExecutor::new());
        http2
            .timer(TokioTimer::new())
            .keep_alive_interval(H2_KEEP_ALIVE)
            .keep_alive_timeout(H2_KEEP_ALIVE)
            .max_header_list_size(u32::try_from(settings.parser_ceiling).unwrap_or(u32::MAX));
        Self { http1, http2 }
    }
}

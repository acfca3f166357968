//! When a request or connection may go to another replica: which failures allow it, how many
//! replicas one may try, and which it tried already. Pure; shared by the L7 pipeline and the
//! TCP-mode relay so both retry by the same rules.
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use hyper::Method;

/// The most replicas one request or connection tries.
pub const MAX_ATTEMPTS: usize = 3;

/// How an attempt on one replica failed, as far as retrying cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// No connection was made: nothing was sent, so anything may go elsewhere.
    NotConnected,
    /// The replica closed or reset the connection before a byte of an answer: the request may
    /// have been seen, so only one that is safe to repeat may go elsewhere.
    ClosedBeforeAnswer,
    /// Anything else (a broken answer, a protocol error): never retried.
    Other,
}

/// The retry rules of one request or connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    attempts: usize,
    /// Whether a request the replica may have seen can be sent again.
    replayable: bool,
}

impl RetryPolicy {
    /// The rules of an HTTP request. One without a body can be sent again (there is nothing
    /// of the client's left to resend), so it may try [`MAX_ATTEMPTS`] replicas; one with a
    /// body gets one attempt. Only an idempotent body-less request is sent again after the
    /// replica closed the connection before answering.
    pub fn for_request(method: &Method, bodyless: bool) -> Self {
        Self {
            attempts: if bodyless { MAX_ATTEMPTS } else { 1 },
            replayable: bodyless && is_idempotent(method),
        }
    }

    /// The rules of a TCP-mode connection: up to [`MAX_ATTEMPTS`] replicas while connecting
    /// fails (no byte of the client's has gone anywhere yet).
    pub fn for_connection() -> Self {
        Self {
            attempts: MAX_ATTEMPTS,
            replayable: false,
        }
    }

    /// How many replicas may be tried.
    pub fn attempts(&self) -> usize {
        self.attempts
    }

    /// Whether `failure` lets the next attempt go to another replica.
    pub fn retries(&self, failure: Failure) -> bool {
        match failure {
            Failure::NotConnected => true,
            Failure::ClosedBeforeAnswer => self.replayable,
            Failure::Other => false,
        }
    }

    /// Whether attempt `attempt` (from 0) is the last: no attempt is left, or every one of
    /// the `replicas` known when it started has had its turn. Decided before the attempt, so
    /// it holds whatever the replica set does meanwhile.
    pub fn is_last(&self, attempt: usize, replicas: usize) -> bool {
        attempt + 1 == self.attempts || attempt + 1 >= replicas
    }
}

/// Whether `method` may be sent twice with the effect of once (RFC 9110 §9.2.2).
pub fn is_idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE | Method::TRACE
    )
}

/// The replicas tried so far, which the next pick skips; on the stack (no allocation per
/// request).
#[derive(Debug, Clone, Copy)]
pub struct Tried {
    addrs: [SocketAddr; MAX_ATTEMPTS],
    len: usize,
}

/// Fills the unused slots (never compared: only the tried prefix is).
const NO_REPLICA: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0);

impl Default for Tried {
    fn default() -> Self {
        Self {
            addrs: [NO_REPLICA; MAX_ATTEMPTS],
            len: 0,
        }
    }
}

impl Tried {
    /// Records `replica` as tried. A policy never allows more than [`MAX_ATTEMPTS`], so
    /// there is always room.
    pub fn push(&mut self, replica: SocketAddr) {
        if let Some(slot) = self.addrs.get_mut(self.len) {
            *slot = replica;
            self.len += 1;
        }
    }

    /// The replicas tried, in order.
    pub fn as_slice(&self) -> &[SocketAddr] {
        &self.addrs[..self.len]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(last: u8) -> SocketAddr {
        SocketAddr::new(IpAddr::V4(Ipv4Addr::new(198, 18, 0, last)), 8080)
    }

    #[test]
    fn a_request_without_a_body_tries_several_replicas_and_one_with_a_body_one() {
        assert_eq!(
            RetryPolicy::for_request(&Method::GET, true).attempts(),
            MAX_ATTEMPTS
        );
        assert_eq!(
            RetryPolicy::for_request(&Method::POST, true).attempts(),
            MAX_ATTEMPTS
        );
        assert_eq!(RetryPolicy::for_request(&Method::PUT, false).attempts(), 1);
        assert_eq!(RetryPolicy::for_connection().attempts(), MAX_ATTEMPTS);
    }

    #[test]
    fn a_refused_connect_is_always_retried_and_other_failures_are_not() {
        for policy in [
            RetryPolicy::for_request(&Method::GET, true),
            RetryPolicy::for_request(&Method::POST, true),
            RetryPolicy::for_request(&Method::GET, false),
            RetryPolicy::for_connection(),
        ] {
            assert!(policy.retries(Failure::NotConnected), "{policy:?}");
            assert!(!policy.retries(Failure::Other), "{policy:?}");
        }
    }

    #[test]
    fn only_idempotent_bodyless_requests_are_replayed_after_a_close() {
        let replayed = |method: Method, bodyless| {
            RetryPolicy::for_request(&method, bodyless).retries(Failure::ClosedBeforeAnswer)
        };
        assert!(replayed(Method::GET, true));
        assert!(replayed(Method::DELETE, true));
        assert!(!replayed(Method::POST, true), "not idempotent");
        assert!(!replayed(Method::PATCH, true), "not idempotent");
        assert!(!replayed(Method::GET, false), "the body is gone");
        assert!(!RetryPolicy::for_connection().retries(Failure::ClosedBeforeAnswer));
    }

    #[test]
    fn the_last_attempt_is_the_last_allowed_or_the_last_replica() {
        let policy = RetryPolicy::for_request(&Method::GET, true);
        assert!(!policy.is_last(0, 5));
        assert!(!policy.is_last(1, 5));
        assert!(policy.is_last(2, 5), "no attempt left");
        assert!(policy.is_last(0, 1), "one replica");
        assert!(policy.is_last(1, 2), "every replica tried");
        assert!(policy.is_last(0, 0), "no replica known");
        let once = RetryPolicy::for_request(&Method::POST, false);
        assert!(once.is_last(0, 5));
    }

    #[test]
    fn tried_replicas_are_kept_in_order_without_the_filler() {
        let mut tried = Tried::default();
        assert!(tried.as_slice().is_empty());
        tried.push(addr(2));
        tried.push(addr(3));
        assert_eq!(tried.as_slice(), [addr(2), addr(3)]);
        tried.push(addr(4));
        tried.push(addr(5));
        assert_eq!(tried.as_slice(), [addr(2), addr(3), addr(4)], "full");
    }

    #[test]
    fn idempotent_methods_are_those_of_rfc_9110() {
        for method in [
            Method::GET,
            Method::HEAD,
            Method::OPTIONS,
            Method::PUT,
            Method::DELETE,
            Method::TRACE,
        ] {
            assert!(is_idempotent(&method), "{method}");
        }
        for method in [Method::POST, Method::PATCH, Method::CONNECT] {
            assert!(!is_idempotent(&method), "{method}");
        }
    }
}

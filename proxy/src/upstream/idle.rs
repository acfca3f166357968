//! Idle upstream connections, kept per worker thread: one LIFO list per client and replica
//! address. The connection used last is reused first: it is the one the replica is least likely
//! to be closing, and the lists need no lock (a request checks out and gives back on whichever
//! thread runs it; with one CPU there is one thread).
use std::{
    cell::RefCell,
    collections::{HashMap, VecDeque},
    net::SocketAddr,
    time::{Duration, Instant},
};

use hyper::client::conn::http1::SendRequest;

use super::client::UpstreamBody;

/// One idle connection: its request handle, and since when it has been idle.
struct Idle {
    sender: SendRequest<UpstreamBody>,
    since: Instant,
}

/// The idle lists of one thread, with the time of their last sweep.
#[derive(Default)]
struct Lists {
    /// Oldest first: the cap drops from the front, requests take from the back.
    by_replica: HashMap<(u64, SocketAddr), VecDeque<Idle>>,
    swept: Option<Instant>,
}

thread_local! {
    static IDLE: RefCell<Lists> = RefCell::new(Lists::default());
}

/// How the lists are kept: how long a connection may idle, how many idle per replica.
#[derive(Debug, Clone, Copy)]
pub struct IdlePolicy {
    /// Older idle connections are closed, never reused.
    pub max_age: Duration,
    /// Beyond this many idle connections to one replica (on one thread), the oldest is
    /// closed.
    pub per_replica: usize,
}

/// The most recently idled connection of `client` to `addr` that is still open and young
/// enough; older ones met on the way are closed (dropping the handle ends the connection).
pub fn take(
    client: u64,
    addr: SocketAddr,
    policy: IdlePolicy,
) -> Option<SendRequest<UpstreamBody>> {
    IDLE.with_borrow_mut(|lists| {
        let list = lists.by_replica.get_mut(&(client, addr))?;
        let now = Instant::now();
        while let Some(idle) = list.pop_back() {
            if now.duration_since(idle.since) >= policy.max_age {
                // Every one below it idled longer still.
                list.clear();
                break;
            }
            if !idle.sender.is_closed() {
                return Some(idle.sender);
            }
        }
        None
    })
}

/// Keeps `sender` for the next request of `client` to `addr`, unless it is closed.
pub fn give_back(
    client: u64,
    addr: SocketAddr,
    sender: SendRequest<UpstreamBody>,
    policy: IdlePolicy,
) {
    if sender.is_closed() {
        return;
    }
    IDLE.with_borrow_mut(|lists| {
        let now = Instant::now();
        // Replicas come and go (a redeploy gives new addresses): once per idle period, lists
        // of connections nobody asked for again are closed and forgotten.
        if lists
            .swept
            .is_none_or(|at| now.duration_since(at) >= policy.max_age)
        {
            lists.swept = Some(now);
            lists.by_replica.retain(|_, list| {
                list.retain(|idle| {
                    now.duration_since(idle.since) < policy.max_age && !idle.sender.is_closed()
                });
                !list.is_empty()
            });
        }
        let list = lists.by_replica.entry((client, addr)).or_default();
        if list.len() >= policy.per_replica {
            list.pop_front();
        }
        list.push_back(Idle { sender, since: now });
    });
}

/// How many idle connections this thread keeps for `client` to `addr`.
#[cfg(test)]
pub fn count(client: u64, addr: SocketAddr) -> usize {
    IDLE.with_borrow(|lists| {
        lists
            .by_replica
            .get(&(client, addr))
            .map_or(0, VecDeque::len)
    })
}

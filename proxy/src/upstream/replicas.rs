//! A service's replicas as last resolved, and the round-robin pick across them. Replicas that
//! refused a connection are ejected for a while (passive health checking) and DNS is asked again.
use std::{
    net::SocketAddr,
    sync::{
        Arc, OnceLock,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use arc_swap::ArcSwap;
use http::uri::Authority;

use super::resolver::ReplicaResolver;

/// Identifies a replica set: what to resolve, and the port the replicas listen on.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UpstreamKey {
    /// The service name (or `outboundHostname`).
    pub host: String,
    /// The replicas' port.
    pub port: u16,
    /// True for an `outboundHostname`, which is resolved as given (no `tasks.` look-up).
    pub direct: bool,
}

/// The replicas of one service and port, refreshed from DNS.
pub struct ReplicaSet {
    key: UpstreamKey,
    resolver: ReplicaResolver,
    changed: Arc<tokio::sync::Notify>,
    current: ArcSwap<Replicas>,
    next: AtomicUsize,
    refreshing: tokio::sync::Mutex<()>,
}

#[derive(Default)]
struct Replicas {
    addrs: Vec<SocketAddr>,
    /// Per address: the request-URI authority (formatting an address per request was a
    /// visible share of the request path).
    authorities: Vec<Authority>,
    /// Per address: milliseconds since [`epoch`] until which it is ejected.
    ejected_until: Vec<AtomicU64>,
    resolved: bool,
    /// When this look-up finished, in milliseconds since [`epoch`].
    resolved_at: u64,
    error: Option<String>,
}

/// How long a replica that failed stays out of rotation.
const EJECT_FOR: Duration = Duration::from_secs(10);

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

fn now_ms() -> u64 {
    epoch().elapsed().as_millis() as u64
}

impl ReplicaSet {
    /// An unresolved set; the first request (or the refresher) resolves it. `changed` is
    /// notified whenever the replicas change.
    pub fn new(
        key: UpstreamKey,
        resolver: ReplicaResolver,
        changed: Arc<tokio::sync::Notify>,
    ) -> Arc<Self> {
        Arc::new(Self {
            key,
            resolver,
            changed,
            current: ArcSwap::from_pointee(Replicas::default()),
            next: AtomicUsize::new(0),
            refreshing: tokio::sync::Mutex::new(()),
        })
    }

    /// Resolves the set if it never was.
    pub async fn ensure_resolved(&self) {
        if !self.current.load().resolved {
            // Boxed: a DNS look-up's state is large, and callers on the request path would
            // otherwise carry it in every request's future.
            Box::pin(self.refresh()).await;
        }
    }

    /// Asks DNS again. Concurrent callers share one look-up. A failed look-up keeps the
    /// replicas known so far (a DNS hiccup must not take a service down) and records the error.
    pub async fn refresh(&self) {
        let started = now_ms();
        let _guard = self.refreshing.lock().await;
        let old = self.current.load_full();
        // Someone else refreshed while we waited for the lock: their answer is fresh enough.
        if old.resolved && old.resolved_at >= started {
            return;
        }
        let result = self
            .resolver
            .replicas(&self.key.host, self.key.direct)
            .await;
        let next = match result {
            Ok(ips) => {
                let addrs: Vec<SocketAddr> = ips
                    .into_iter()
                    .map(|ip| SocketAddr::new(ip, self.key.port))
                    .collect();
                let ejected_until = addrs
                    .iter()
                    .map(|a| AtomicU64::new(old.ejected_until_of(a)))
                    .collect();
                if addrs != old.addrs {
                    tracing::info!(service = %self.key.host, port = self.key.port, replicas = ?addrs, "replicas changed");
                    self.changed.notify_one();
                }
                Replicas {
                    authorities: authorities_of(&addrs),
                    addrs,
                    ejected_until,
                    resolved: true,
                    resolved_at: now_ms(),
                    error: None,
                }
            }
            Err(e) => {
                tracing::warn!(service = %self.key.host, error = %e, "replica look-up failed");
                Replicas {
                    addrs: old.addrs.clone(),
                    authorities: old.authorities.clone(),
                    ejected_until: old
                        .ejected_until
                        .iter()
                        .map(|t| AtomicU64::new(t.load(Ordering::Relaxed)))
                        .collect(),
                    resolved: true,
                    resolved_at: now_ms(),
                    error: Some(e.to_string()),
                }
            }
        };
        self.current.store(Arc::new(next));
    }

    /// The next replica in round-robin order that is neither ejected nor in `exclude`; if every
    /// replica is ejected, the next one not excluded (trying beats refusing).
    pub fn pick(&self, exclude: &[SocketAddr]) -> Option<SocketAddr> {
        self.pick_target(exclude).map(|(addr, _)| addr)
    }

    /// As [`ReplicaSet::pick`], with the replica's request-URI authority.
    pub fn pick_target(&self, exclude: &[SocketAddr]) -> Option<(SocketAddr, Authority)> {
        let replicas = self.current.load();
        let n = replicas.addrs.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let now = now_ms();
        let allowed = |i: usize| !exclude.contains(&replicas.addrs[i]);
        let healthy =
            |i: usize| allowed(i) && replicas.ejected_until[i].load(Ordering::Relaxed) <= now;
        choose(n, start, healthy)
            .or_else(|| choose(n, start, allowed))
            .map(|i| (replicas.addrs[i], replicas.authorities[i].clone()))
    }

    /// The replica `wanted` picks, if it is known, not ejected and not in `exclude` (a
    /// sticky session's): `None` sends the request to [`ReplicaSet::pick_target`].
    pub fn find_target(
        &self,
        exclude: &[SocketAddr],
        wanted: impl Fn(SocketAddr) -> bool,
    ) -> Option<(SocketAddr, Authority)> {
        let replicas = self.current.load();
        let now = now_ms();
        (0..replicas.addrs.len())
            .find(|&i| {
                let addr = replicas.addrs[i];
                !exclude.contains(&addr)
                    && replicas.ejected_until[i].load(Ordering::Relaxed) <= now
                    && wanted(addr)
            })
            .map(|i| (replicas.addrs[i], replicas.authorities[i].clone()))
    }

    /// A replica refused a connection or did not answer: it stays out of rotation for a
    /// while, and DNS is asked again at once (it may be gone).
    pub fn report_failure(self: &Arc<Self>, addr: SocketAddr) {
        let replicas = self.current.load();
        if let Some(i) = replicas.addrs.iter().position(|a| *a == addr) {
            let until = now_ms() + EJECT_FOR.as_millis() as u64;
            replicas.ejected_until[i].store(until, Ordering::Relaxed);
        }
        let set = Arc::clone(self);
        tokio::spawn(async move { set.refresh().await });
    }

    /// How many replicas are currently known.
    pub fn len(&self) -> usize {
        self.current.load().addrs.len()
    }

    /// True when no replica is known.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The replicas currently known.
    pub fn addrs(&self) -> Vec<SocketAddr> {
        self.current.load().addrs.clone()
    }

    /// Every replica known, with whether it is in rotation now (`false`: ejected after a
    /// failure, for [`EJECT_FOR`]).
    pub fn health(&self) -> Vec<(SocketAddr, bool)> {
        let replicas = self.current.load();
        let now = now_ms();
        replicas
            .addrs
            .iter()
            .zip(&replicas.ejected_until)
            .map(|(addr, until)| (*addr, until.load(Ordering::Relaxed) <= now))
            .collect()
    }

    /// The last look-up error, if the last look-up failed.
    pub fn last_error(&self) -> Option<String> {
        self.current.load().error.clone()
    }
}

impl Replicas {
    fn ejected_until_of(&self, addr: &SocketAddr) -> u64 {
        self.addrs
            .iter()
            .position(|a| a == addr)
            .map_or(0, |i| self.ejected_until[i].load(Ordering::Relaxed))
    }
}

fn authorities_of(addrs: &[SocketAddr]) -> Vec<Authority> {
    addrs
        .iter()
        .map(|addr| {
            Authority::try_from(addr.to_string().as_str())
                .expect("a socket address is a valid authority")
        })
        .collect()
}

/// The first index from `start` (round robin over `n`) for which `usable` holds.
fn choose(n: usize, start: usize, usable: impl Fn(usize) -> bool) -> Option<usize> {
    (0..n).map(|k| (start + k) % n).find(|&i| usable(i))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_robin_visits_every_replica_in_turn() {
        let picks: Vec<_> = (0..6).map(|s| choose(3, s, |_| true).unwrap()).collect();
        assert_eq!(picks, [0, 1, 2, 0, 1, 2]);
    }

    #[test]
    fn authorities_name_the_replicas() {
        let addrs: Vec<SocketAddr> = vec![
            "198.18.0.2:8080".parse().unwrap(),
            "[2001:db8::1]:80".parse().unwrap(),
        ];
        let names: Vec<String> = authorities_of(&addrs)
            .iter()
            .map(|a| a.to_string())
            .collect();
        assert_eq!(names, ["198.18.0.2:8080", "[2001:db8::1]:80"]);
    }

    /// A set that already resolved to `addrs`, whose later look-ups fail (a closed port).
    fn resolved_set(addrs: &[SocketAddr]) -> Arc<ReplicaSet> {
        let key = UpstreamKey {
            host: "go-demo".into(),
            port: 8080,
            direct: false,
        };
        let resolver = ReplicaResolver::new(Some("127.0.0.1:9".parse().unwrap())).unwrap();
        let set = ReplicaSet::new(key, resolver, Arc::default());
        set.current.store(Arc::new(Replicas {
            addrs: addrs.to_vec(),
            authorities: authorities_of(addrs),
            ejected_until: addrs.iter().map(|_| AtomicU64::new(0)).collect(),
            resolved: true,
            resolved_at: now_ms(),
            error: None,
        }));
        set
    }

    #[tokio::test]
    async fn a_failed_replica_shows_as_down_and_the_others_up() {
        let addrs: Vec<SocketAddr> = vec![
            "198.18.0.2:8080".parse().unwrap(),
            "198.18.0.3:8080".parse().unwrap(),
        ];
        let set = resolved_set(&addrs);
        assert_eq!(set.health(), [(addrs[0], true), (addrs[1], true)]);
        set.report_failure(addrs[1]);
        assert_eq!(set.health(), [(addrs[0], true), (addrs[1], false)]);
    }

    #[test]
    fn unusable_replicas_are_skipped() {
        assert_eq!(choose(3, 0, |i| i != 0), Some(1));
        assert_eq!(choose(3, 2, |i| i != 2), Some(0));
        assert_eq!(choose(3, 0, |_| false), None);
        assert_eq!(choose(0, 5, |_| true), None);
    }
}

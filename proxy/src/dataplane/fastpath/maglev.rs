//! Maglev consistent hashing (Eisenbud et al., NSDI 2016): each backend fills ring positions
//! in the order of its own permutation, taking turns, so every backend gets M/N positions
//! (±1) and removing one backend moves little more than its own positions.
use proxy_common::fastpath::RING_MAX;

/// The ring length for `replicas` backends: the smallest prime ≥ 100 × replicas (at least
/// 101), capped at `RING_MAX`.
pub fn ring_size(replicas: usize) -> u32 {
    let want = (replicas as u64 * 100).clamp(101, RING_MAX as u64) as u32;
    (want..=RING_MAX).find(|&n| is_prime(n)).unwrap_or(RING_MAX)
}

fn is_prime(n: u32) -> bool {
    n >= 2
        && (2..)
            .take_while(|d| d * d <= n)
            .all(|d| !n.is_multiple_of(d))
}

/// The ring of length `m` (a prime) over `backends`, named by stable ids (their addresses):
/// position → index into `backends`. Empty when there is no backend.
pub fn build(backends: &[String], m: u32) -> Vec<u32> {
    if backends.is_empty() {
        return Vec::new();
    }
    let m64 = m as u64;
    let perms: Vec<(u64, u64)> = backends
        .iter()
        .map(|id| {
            let offset = fnv1a(id.as_bytes(), 0xcbf2_9ce4_8422_2325) % m64;
            let skip = fnv1a(id.as_bytes(), 0x8422_2325_cbf2_9ce4) % (m64 - 1) + 1;
            (offset, skip)
        })
        .collect();
    let mut next = vec![0u64; backends.len()];
    let mut ring = vec![u32::MAX; m as usize];
    let mut filled = 0;
    loop {
        for (i, &(offset, skip)) in perms.iter().enumerate() {
            let mut pos = (offset + next[i] * skip) % m64;
            while ring[pos as usize] != u32::MAX {
                next[i] += 1;
                pos = (offset + next[i] * skip) % m64;
            }
            ring[pos as usize] = i as u32;
            next[i] += 1;
            filled += 1;
            if filled == m {
                return ring;
            }
        }
    }
}

/// FNV-1a with a chosen basis: stable across Rust releases, unlike `DefaultHasher`, so rings
/// (and the flows they pin) survive an upgrade of flowproxy.
fn fnv1a(bytes: &[u8], basis: u64) -> u64 {
    bytes.iter().fold(basis, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: usize) -> Vec<String> {
        (0..n)
            .map(|i| format!("198.18.2.{}:5432", i + 10))
            .collect()
    }

    #[test]
    fn ring_sizes_are_primes_at_least_100_per_replica() {
        assert_eq!(ring_size(1), 101);
        assert_eq!(ring_size(3), 307);
        assert_eq!(ring_size(10), 1009);
        assert_eq!(ring_size(500), RING_MAX);
        for n in 1..60 {
            let m = ring_size(n);
            assert!(is_prime(m) && m as usize >= 100 * n, "{n}: {m}");
        }
    }

    #[test]
    fn positions_are_balanced_within_one_percent() {
        for n in [1, 2, 3, 7, 20] {
            let m = ring_size(n);
            let ring = build(&ids(n), m);
            let mut counts = vec![0u32; n];
            for &b in &ring {
                counts[b as usize] += 1;
            }
            let fair = m as f64 / n as f64;
            for c in counts {
                assert!(
                    (c as f64 - fair).abs() / fair <= 0.01,
                    "{n} backends: {c} of {m}"
                );
            }
        }
    }

    #[test]
    fn removing_a_backend_moves_little_more_than_its_own_positions() {
        let all = ids(5);
        let m = ring_size(5);
        let before = build(&all, m);
        let removed = 2;
        let rest: Vec<String> = all
            .iter()
            .enumerate()
            .filter(|&(i, _)| i != removed)
            .map(|(_, id)| id.clone())
            .collect();
        let after = build(&rest, m);
        let name_before = |p: usize| &all[before[p] as usize];
        let name_after = |p: usize| &rest[after[p] as usize];
        let moved = (0..m as usize)
            .filter(|&p| before[p] as usize != removed && name_before(p) != name_after(p))
            .count();
        // Positions of surviving backends that changed owner: Maglev keeps this small.
        assert!(
            (moved as f64) < 0.1 * m as f64,
            "{moved} of {m} positions of surviving backends moved"
        );
        assert!((0..m as usize).all(|p| name_after(p) != &all[removed]));
    }

    #[test]
    fn no_backend_means_an_empty_ring() {
        assert!(build(&[], 101).is_empty());
    }
}

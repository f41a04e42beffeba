//! Approximate mode: routed prefixes count as cached for a TTL, with an injected clock.

use std::time::{Duration, Instant};

use rotor_kv_router::ApproxIndex;

use crate::events::{hashes, prompt};

fn scores(index: &ApproxIndex, query: &[u64], now: Instant) -> Vec<(u64, usize)> {
    let mut out: Vec<_> = index.find_matches(query, now).iter().collect();
    out.sort_unstable();
    out
}

#[test]
fn routed_prefixes_expire_after_the_ttl() {
    let t0 = Instant::now();
    let s = |secs| t0 + Duration::from_secs(secs);
    let a = hashes(&prompt(0, 6));
    let mut index = ApproxIndex::new(Duration::from_secs(10));

    index.record_routed(1, &a, t0);
    index.record_routed(2, &a[..3], s(5));
    assert_eq!(scores(&index, &a, s(9)), vec![(1, 6), (2, 3)]);
    // Expiry is exclusive at now == recorded + ttl.
    assert_eq!(scores(&index, &a, s(10)), vec![(2, 3)]);

    // Re-routing a prefix to worker 1 at t0+10 renews only those blocks, until t0+20.
    index.record_routed(1, &a[..2], s(10));
    assert_eq!(scores(&index, &a, s(12)), vec![(1, 2), (2, 3)]);
    index.prune(s(12));
    // Left after pruning at 12: a[0], a[1] (worker 1 until 20, worker 2 until 15), a[2] (worker 2).
    assert_eq!(index.distinct_blocks(), 3);
    assert_eq!(scores(&index, &a, s(15)), vec![(1, 2)]);
    index.prune(s(19));
    assert_eq!(index.distinct_blocks(), 2);
    index.prune(s(20));
    assert_eq!(index.distinct_blocks(), 0);
}

#[test]
fn remove_worker_forgets_its_entries() {
    let t0 = Instant::now();
    let a = hashes(&prompt(0, 4));
    let mut index = ApproxIndex::new(Duration::from_secs(60));
    index.record_routed(1, &a, t0);
    index.record_routed(2, &a[..1], t0);
    index.remove_worker(1);
    assert_eq!(scores(&index, &a, t0), vec![(2, 1)]);
    assert_eq!(index.distinct_blocks(), 1);
}

//! Index scenarios with exact overlaps.

use rotor_kv_router::{Error, PrefixIndex};

use crate::events::{cleared, hashes, prompt, removed, stored};

/// Prompt A: 8 blocks. Prompt B: A's first 4 blocks, then 2 of its own.
fn two_prompts() -> (Vec<u64>, Vec<u64>) {
    let a_tokens = prompt(0, 8);
    let mut b_tokens = a_tokens[..16].to_vec();
    b_tokens.extend(prompt(1000, 2));
    let (a, b) = (hashes(&a_tokens), hashes(&b_tokens));
    assert_eq!(a[..4], b[..4]);
    assert_ne!(a[4], b[4]);
    (a, b)
}

fn scores(index: &PrefixIndex, query: &[u64]) -> Vec<(u64, usize)> {
    let mut out: Vec<_> = index.find_matches(query).iter().collect();
    out.sort_unstable();
    out
}

/// Worker 1 holds all of A, worker 2 all of B.
fn diverging_index() -> (PrefixIndex, Vec<u64>, Vec<u64>) {
    let (a, b) = two_prompts();
    let mut index = PrefixIndex::new();
    index.apply(&stored(1, 0, None, &a[..5])).unwrap();
    index.apply(&stored(1, 1, Some(a[4]), &a[5..])).unwrap();
    index.apply(&stored(2, 0, None, &b)).unwrap();
    (index, a, b)
}

#[test]
fn diverging_chains_give_exact_overlaps() {
    let (index, a, b) = diverging_index();
    assert_eq!(scores(&index, &a), vec![(1, 8), (2, 4)]);
    assert_eq!(scores(&index, &b), vec![(1, 4), (2, 6)]);
    assert_eq!(scores(&index, &a[..2]), vec![(1, 2), (2, 2)]);
    // A prompt diverging after A's third block.
    let mut c_tokens = prompt(0, 3);
    c_tokens.extend(prompt(5000, 3));
    assert_eq!(scores(&index, &hashes(&c_tokens)), vec![(1, 3), (2, 3)]);
    // Unknown first block: no overlap anywhere, even if later blocks are known.
    let mut skipped = vec![12345];
    skipped.extend_from_slice(&a[1..]);
    assert!(index.find_matches(&skipped).is_empty());
    assert!(index.find_matches(&[]).is_empty());
    assert_eq!(index.distinct_blocks(), 10);
    assert_eq!(index.worker_block_count(1), 8);
    assert_eq!(index.worker_block_count(2), 6);
}

#[test]
fn removed_mid_chain_stops_the_overlap_there() {
    let (mut index, a, b) = diverging_index();
    index.apply(&removed(1, 2, &[a[3]])).unwrap();
    assert_eq!(scores(&index, &a), vec![(1, 3), (2, 4)]);
    assert!(!index.holds(1, a[3]));
    assert!(index.holds(2, a[3]));
    // Removing a block the worker never held changes nothing.
    index.apply(&removed(2, 1, &[a[7], 999])).unwrap();
    assert_eq!(scores(&index, &b), vec![(1, 3), (2, 6)]);
    assert_eq!(index.distinct_blocks(), 10);
    // The last holder of a[7] goes: the hash leaves the index.
    index.apply(&removed(1, 3, &[a[7]])).unwrap();
    assert_eq!(index.distinct_blocks(), 9);
}

#[test]
fn cleared_drops_only_that_worker() {
    let (mut index, a, b) = diverging_index();
    index.apply(&cleared(2, 1)).unwrap();
    assert_eq!(scores(&index, &a), vec![(1, 8)]);
    assert_eq!(scores(&index, &b), vec![(1, 4)]);
    assert_eq!(index.worker_block_count(2), 0);
    assert_eq!(index.distinct_blocks(), 8);
    index.apply(&stored(2, 2, None, &b[..1])).unwrap();
    assert_eq!(scores(&index, &b), vec![(1, 4), (2, 1)]);
}

#[test]
fn gap_is_reported_applied_and_flags_the_worker_until_resync() {
    let (mut index, a, b) = diverging_index();
    // Worker 1 saw ids 0 and 1; id 3 means id 2 was missed.
    let err = index.apply(&removed(1, 3, &[a[6]])).unwrap_err();
    assert_eq!(
        err,
        Error::Gap {
            worker: 1,
            expected: 2,
            got: 3
        }
    );
    assert_eq!(scores(&index, &a), vec![(1, 6), (2, 4)]);
    assert!(index.needs_resync(1));
    assert_eq!(index.workers_needing_resync(), vec![1]);
    // The stream continues from the gapped id; a replay is stale and ignored.
    index.apply(&removed(1, 4, &[a[5]])).unwrap();
    assert_eq!(
        index.apply(&cleared(1, 2)).unwrap_err(),
        Error::StaleEvent {
            worker: 1,
            expected: 5,
            got: 2
        }
    );
    assert_eq!(scores(&index, &a), vec![(1, 5), (2, 4)]);

    // Resync: worker 1 now holds B's first two blocks; its next event will be id 10.
    index.resync_worker(1, b[..2].iter().copied(), 10);
    assert!(!index.needs_resync(1));
    assert!(index.workers_needing_resync().is_empty());
    assert_eq!(index.next_event_id(1), Some(10));
    assert_eq!(scores(&index, &a), vec![(1, 2), (2, 4)]);
    assert_eq!(index.worker_block_count(1), 2);
    assert!(matches!(
        index.apply(&cleared(1, 9)),
        Err(Error::StaleEvent { got: 9, .. })
    ));
    index.apply(&stored(1, 10, Some(b[1]), &b[2..3])).unwrap();
    assert_eq!(scores(&index, &b), vec![(1, 3), (2, 6)]);
}

#[test]
fn first_event_of_a_late_joined_worker_above_zero_is_a_gap() {
    let mut index = PrefixIndex::new();
    let err = index.apply(&stored(7, 5, None, &[1, 2])).unwrap_err();
    assert_eq!(
        err,
        Error::Gap {
            worker: 7,
            expected: 0,
            got: 5
        }
    );
    assert_eq!(scores(&index, &[1, 2, 3]), vec![(7, 2)]);
}

#[test]
fn remove_worker_forgets_its_blocks_and_reuses_its_slot() {
    let (mut index, a, b) = diverging_index();
    assert!(index.remove_worker(1));
    assert!(!index.remove_worker(1));
    assert_eq!(scores(&index, &a), vec![(2, 4)]);
    assert_eq!(index.distinct_blocks(), 6);
    assert_eq!(index.next_event_id(1), None);
    // A new worker takes the freed slot and must not inherit anything.
    index.apply(&stored(3, 0, None, &a[..1])).unwrap();
    assert_eq!(scores(&index, &a), vec![(2, 4), (3, 1)]);
    assert_eq!(scores(&index, &b), vec![(2, 6), (3, 1)]);
    assert_eq!(index.workers(), vec![2, 3]);
}

#[test]
fn more_than_64_workers_get_exact_overlaps() {
    let a = hashes(&prompt(0, 8));
    let mut index = PrefixIndex::new();
    for i in 0..150u64 {
        let held = (i % 9) as usize;
        index.apply(&stored(1000 + i, 0, None, &a[..held])).unwrap();
    }
    let found = index.find_matches(&a);
    for i in 0..150u64 {
        assert_eq!(found.get(1000 + i), (i % 9) as usize, "worker {}", 1000 + i);
    }
    assert_eq!(found.len(), 150 - 17); // i % 9 == 0 holds nothing
    assert_eq!(found.max_blocks(), 8);
}

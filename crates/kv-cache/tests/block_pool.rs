//! Block-pool scenarios with exact block ids, eviction order, ref counts and events
//! (block size 4, ten blocks).

use rotor_kv_cache::{BlockId, BlockPool, Error, PrefixCacheStats};
use rotor_protocol::{KvEvent, KvEventData, StoredBlock};
use rotor_tokens::{local_block_hashes, sequence_hashes};

const BS: usize = 4;

fn pool() -> BlockPool {
    BlockPool::new(10, BS)
}

/// `len` tokens counting up from `start`.
fn tokens(start: u32, len: usize) -> Vec<u32> {
    (start..start + len as u32).collect()
}

fn stored(tokens: &[u32], blocks: std::ops::Range<usize>) -> Vec<StoredBlock> {
    let seq = sequence_hashes(tokens, BS);
    let local = local_block_hashes(tokens, BS);
    blocks
        .map(|i| StoredBlock {
            block_hash: seq[i],
            tokens_hash: local[i],
        })
        .collect()
}

/// Commits every full block of `tokens` from block `from` on, as a sequence whose table is
/// `table`; returns what each commit returned.
fn commit(pool: &mut BlockPool, tokens: &[u32], table: &[BlockId], from: usize) -> Vec<bool> {
    let seq = sequence_hashes(tokens, BS);
    let local = local_block_hashes(tokens, BS);
    (from..seq.len())
        .map(|i| {
            let parent = i.checked_sub(1).map(|p| seq[p]);
            pool.commit_full_block(table[i], seq[i], local[i], parent)
                .expect("held block")
        })
        .collect()
}

/// Admits a prompt: reuses its cached prefix and allocates the rest; returns the table and how
/// many blocks came from the cache.
fn admit(pool: &mut BlockPool, tokens: &[u32]) -> (Vec<BlockId>, usize) {
    let mut table = pool.lookup(&sequence_hashes(tokens, BS), tokens.len());
    let hit = table.len();
    let fresh = pool
        .allocate(tokens.len().div_ceil(BS) - hit)
        .expect("room");
    table.extend(fresh);
    (table, hit)
}

#[test]
fn fresh_pool_hands_out_lowest_ids_first_and_refuses_overdraft() {
    let mut pool = pool();
    assert_eq!(pool.allocate(3), Ok(vec![0, 1, 2]));
    assert_eq!(
        pool.allocate(8),
        Err(Error::OutOfBlocks {
            requested: 8,
            free: 7
        })
    );
    assert_eq!((pool.num_used(), pool.num_free()), (3, 7));
    assert_eq!(pool.eviction_order(), vec![3, 4, 5, 6, 7, 8, 9]);
    assert_eq!(pool.allocate(0), Ok(vec![]));
    assert!(pool.drain_events().is_empty());
}

#[test]
fn two_sequences_share_a_cached_prefix_with_exact_ref_counts() {
    let mut pool = pool();
    let a = tokens(100, 10); // blocks: [100..104] [104..108] [108, 109]
    let (ta, hit) = admit(&mut pool, &a);
    assert_eq!((ta.clone(), hit), (vec![0, 1, 2], 0));
    assert_eq!(commit(&mut pool, &a, &ta, 0), vec![true, true]);

    let mut b = a[..8].to_vec();
    b.extend([7, 7, 7, 7, 7]); // 13 tokens: shares A's two full blocks
    let (tb, hit) = admit(&mut pool, &b);
    assert_eq!((tb.clone(), hit), (vec![0, 1, 3, 4], 2));
    let refs: Vec<u32> = (0..6).map(|blk| pool.ref_count(blk)).collect();
    assert_eq!(refs, vec![2, 2, 1, 1, 1, 0]);
    assert_eq!(pool.num_used(), 5);
    assert_eq!(
        pool.stats(),
        PrefixCacheStats {
            queries_tokens: 10 + 13,
            hit_tokens: 8,
            evictions: 0,
            ..PrefixCacheStats::default()
        }
    );
    assert_eq!(commit(&mut pool, &b, &tb, 2), vec![true]);

    // A leaves: its shared blocks keep one holder, its partial block 2 goes to the head.
    pool.free(&ta).expect("held");
    assert_eq!(
        (pool.ref_count(0), pool.ref_count(1), pool.ref_count(2)),
        (1, 1, 0)
    );
    assert_eq!(pool.eviction_order(), vec![2, 5, 6, 7, 8, 9]);
    // B leaves tail first: partial block 4 to the head, cached 3, 1, 0 to the tail in that order.
    pool.free(&tb).expect("held");
    assert_eq!(pool.eviction_order(), vec![4, 2, 5, 6, 7, 8, 9, 3, 1, 0]);
    assert_eq!((pool.num_used(), pool.num_cached()), (0, 3));
    // Freed blocks stay cached: A again reuses both of its full blocks.
    let (ta2, hit) = admit(&mut pool, &a);
    assert_eq!((ta2, hit), (vec![0, 1, 4], 2));
}

#[test]
fn eviction_takes_the_oldest_free_block_and_a_sequence_tail_first() {
    let mut pool = pool();
    let a = tokens(0, 8);
    let b = tokens(50, 8);
    let (ta, _) = admit(&mut pool, &a);
    let (tb, _) = admit(&mut pool, &b);
    assert_eq!((ta.clone(), tb.clone()), (vec![0, 1], vec![2, 3]));
    commit(&mut pool, &a, &ta, 0);
    commit(&mut pool, &b, &tb, 0);
    pool.free(&ta).expect("held");
    pool.free(&tb).expect("held");
    assert_eq!(pool.eviction_order(), vec![4, 5, 6, 7, 8, 9, 1, 0, 3, 2]);
    // A's and B's Stored (B starts a new chain, so it is not merged into A's).
    let stores: Vec<u64> = pool.drain_events().iter().map(|e| e.event_id).collect();
    assert_eq!(stores, vec![0, 1]);

    // Never-cached blocks go first, without events.
    assert_eq!(pool.allocate(6), Ok(vec![4, 5, 6, 7, 8, 9]));
    assert!(pool.drain_events().is_empty());
    // Then A's tail block, then A's head, B's tail in one call: one Removed each call.
    let ha = sequence_hashes(&a, BS);
    let hb = sequence_hashes(&b, BS);
    assert_eq!(pool.allocate(1), Ok(vec![1]));
    assert_eq!(pool.cached_block(ha[1]), None);
    assert_eq!(pool.cached_block(ha[0]), Some(0));
    // A (9 tokens now, so both blocks could be reused) finds only its first block.
    let mut a9 = a.clone();
    a9.push(1);
    assert_eq!(
        pool.find_cached_prefix(&sequence_hashes(&a9, BS), 9),
        vec![0]
    );
    assert_eq!(pool.allocate(2), Ok(vec![0, 3]));
    let events = pool.drain_events();
    assert_eq!(
        events,
        vec![
            KvEvent {
                event_id: 2,
                data: KvEventData::removed(vec![ha[1]])
            },
            KvEvent {
                event_id: 3,
                data: KvEventData::removed(vec![ha[0], hb[1]])
            },
        ]
    );
    assert_eq!(pool.stats().evictions, 3);
    assert_eq!(pool.eviction_order(), vec![2]);
    assert_eq!(pool.cached_block(hb[0]), Some(2));
}

#[test]
fn a_fully_cached_prompt_still_computes_its_last_block() {
    let mut pool = pool();
    let p = tokens(10, 8);
    let (t, _) = admit(&mut pool, &p);
    commit(&mut pool, &p, &t, 0);
    pool.free(&t).expect("held");
    let h = sequence_hashes(&p, BS);
    // 8 tokens = exactly two cached blocks: only the first is reused.
    assert_eq!(pool.find_cached_prefix(&h, 8), vec![0]);
    // One token more: both full blocks can be reused.
    assert_eq!(pool.find_cached_prefix(&h, 9), vec![0, 1]);
    // A one-block prompt reuses nothing; an empty one neither.
    assert_eq!(pool.find_cached_prefix(&h[..1], 4), Vec::<BlockId>::new());
    assert_eq!(pool.find_cached_prefix(&h, 0), Vec::<BlockId>::new());

    let (t2, hit) = admit(&mut pool, &p);
    assert_eq!((t2.clone(), hit), (vec![0, 2], 1));
    // The recomputed last block duplicates block 1's hash: block 1 keeps the mapping.
    assert_eq!(commit(&mut pool, &p, &t2, 1), vec![false]);
    assert_eq!(pool.cached_block(h[1]), Some(1));
    assert_eq!(pool.cached_hash(2), None);
    assert_eq!(
        pool.stats(),
        PrefixCacheStats {
            queries_tokens: 16,
            hit_tokens: 4,
            evictions: 0,
            ..PrefixCacheStats::default()
        }
    );
}

#[test]
fn duplicate_commit_keeps_the_existing_block_and_the_duplicate_is_freed_uncached() {
    let mut pool = pool();
    let p = tokens(30, 8);
    // Two identical prompts admitted before either computed anything.
    let (ta, _) = admit(&mut pool, &p);
    let (tb, hit) = admit(&mut pool, &p);
    assert_eq!((ta.clone(), tb.clone(), hit), (vec![0, 1], vec![2, 3], 0));
    assert_eq!(commit(&mut pool, &p, &ta, 0), vec![true, true]);
    assert_eq!(commit(&mut pool, &p, &tb, 0), vec![false, false]);
    let h = sequence_hashes(&p, BS);
    assert_eq!(
        (pool.cached_block(h[0]), pool.cached_block(h[1])),
        (Some(0), Some(1))
    );
    assert_eq!(
        (pool.cached_hash(2), pool.cached_hash(3), pool.num_cached()),
        (None, None, 2)
    );
    // Re-committing the same hash is a no-op; a different hash on a cached block is refused.
    assert_eq!(pool.commit_full_block(0, h[0], 0, None), Ok(true));
    assert_eq!(
        pool.commit_full_block(0, h[1], 0, None),
        Err(Error::AlreadyCached {
            block: 0,
            cached: h[0],
            committed: h[1]
        })
    );
    let events = pool.drain_events();
    assert_eq!(
        events,
        vec![KvEvent {
            event_id: 0,
            data: KvEventData::stored(None, stored(&p, 0..2))
        }]
    );
    pool.free(&tb).expect("held");
    assert_eq!(pool.eviction_order(), vec![2, 3, 4, 5, 6, 7, 8, 9]);
}

#[test]
fn events_carry_contiguous_ids_parents_removals_and_cleared() {
    let mut pool = pool();
    let a = tokens(0, 12);
    let ha = sequence_hashes(&a, BS);
    let (ta, _) = admit(&mut pool, &a);
    assert_eq!(ta, vec![0, 1, 2]);
    // Two consecutive blocks of one sequence: one Stored.
    commit(&mut pool, &a[..8], &ta, 0);
    assert_eq!(
        pool.drain_events(),
        vec![KvEvent {
            event_id: 0,
            data: KvEventData::stored(None, stored(&a, 0..2))
        }]
    );
    // The third block later: its parent is the second block's hash.
    commit(&mut pool, &a, &ta, 2);
    let c = tokens(500, 4);
    let (tc, _) = admit(&mut pool, &c);
    assert_eq!(tc, vec![3]);
    commit(&mut pool, &c, &tc, 0);
    assert_eq!(
        pool.drain_events(),
        vec![
            KvEvent {
                event_id: 1,
                data: KvEventData::stored(Some(ha[1]), stored(&a, 2..3))
            },
            KvEvent {
                event_id: 2,
                data: KvEventData::stored(None, stored(&c, 0..1))
            },
        ]
    );
    pool.free(&ta).expect("held");
    pool.free(&tc).expect("held");
    assert_eq!(pool.eviction_order(), vec![4, 5, 6, 7, 8, 9, 2, 1, 0, 3]);
    let taken = pool.allocate(7).expect("room");
    assert_eq!(taken, vec![4, 5, 6, 7, 8, 9, 2]);
    pool.clear();
    assert_eq!((pool.num_cached(), pool.cached_hash(0)), (0, None));
    assert_eq!(pool.find_cached_prefix(&ha, 13), Vec::<BlockId>::new());
    pool.free(&taken).expect("held");
    assert_eq!(
        pool.drain_events(),
        vec![
            KvEvent {
                event_id: 3,
                data: KvEventData::removed(vec![ha[2]])
            },
            KvEvent {
                event_id: 4,
                data: KvEventData::Cleared
            },
        ]
    );
    assert_eq!(pool.next_event_id(), 5);
    // After Cleared, evicting a formerly cached block emits nothing.
    assert_eq!(pool.allocate(10).map(|v| v.len()), Ok(10));
    assert!(pool.drain_events().is_empty());
    assert_eq!(pool.stats().evictions, 1);
}

#[test]
fn misuse_is_refused_and_changes_nothing() {
    let mut pool = pool();
    let t = pool.allocate(2).expect("room");
    assert_eq!(pool.free(&[0, 0]), Err(Error::DuplicateInFree { block: 0 }));
    assert_eq!(pool.free(&[1, 5]), Err(Error::NotHeld { block: 5 }));
    assert_eq!(
        pool.free(&[10]),
        Err(Error::UnknownBlock {
            block: 10,
            num_blocks: 10
        })
    );
    assert_eq!(
        pool.commit_full_block(7, 1, 1, None),
        Err(Error::NotHeld { block: 7 })
    );
    assert_eq!(
        (pool.ref_count(0), pool.ref_count(1), pool.num_free()),
        (1, 1, 8)
    );
    pool.free(&t).expect("held");
    assert_eq!(pool.free(&t), Err(Error::NotHeld { block: 0 }));
    assert_eq!(pool.num_free(), 10);
}

#[test]
fn lookups_for_recompute_are_counted_apart() {
    let mut pool = BlockPool::new(4, BS);
    let p: Vec<u32> = (1..=2 * BS as u32).collect();
    let h = sequence_hashes(&p, BS);
    let (t, _) = admit(&mut pool, &p);
    assert_eq!(commit(&mut pool, &p, &t, 0), vec![true, true]);
    pool.free(&t).unwrap();
    // Recomputed as prompt + 1 generated token: both full blocks come back from the cache.
    let again = pool.lookup_for_recompute(&h, p.len() + 1);
    assert_eq!(again, t);
    let s = pool.stats();
    let n = p.len() as u64;
    assert_eq!((s.queries_tokens, s.hit_tokens), (n, 0));
    assert_eq!(
        (s.recompute_queries_tokens, s.recompute_hit_tokens),
        (n + 1, n)
    );
}

#[test]
fn a_pinned_cached_block_is_never_evicted_and_returns_to_the_tail() {
    let mut pool = pool();
    let a = tokens(0, 8);
    let (table, _) = admit(&mut pool, &a);
    assert_eq!(table, vec![0, 1]);
    commit(&mut pool, &a, &table, 0);
    pool.free(&table).unwrap();
    let stats = pool.stats();
    let hashes = sequence_hashes(&a, BS);
    // Pin block 0 (cached, free): it leaves the free queue and gains a holder, uncounted.
    assert_eq!(pool.acquire_cached(hashes[0]), Some(0));
    assert_eq!((pool.ref_count(0), pool.num_free()), (1, 9));
    assert_eq!(pool.stats(), stats);
    assert_eq!(pool.acquire_cached(12345), None);
    // Allocating every free block evicts block 1 but never the pinned block 0.
    let all = pool.allocate(9).unwrap();
    assert!(!all.contains(&0));
    assert_eq!(pool.cached_block(hashes[0]), Some(0));
    assert_eq!(pool.cached_block(hashes[1]), None);
    pool.free(&all).unwrap();
    pool.free(&[0]).unwrap();
    assert_eq!(pool.ref_count(0), 0);
    assert_eq!(pool.eviction_order().last(), Some(&0));
}

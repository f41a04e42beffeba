//! Property test: any sequence of admit (lookup + allocate) / grow / commit / free / preempt /
//! clear leaks no block, keeps ref counts equal to the number of holders, keeps the hash map
//! consistent with what each block actually holds, and emits events whose replay gives exactly
//! the pool's cached set.

use std::collections::{HashMap, HashSet};

use proptest::prelude::*;
use rotor_kv_cache::{BlockId, BlockPool};
use rotor_protocol::{KvEvent, KvEventData};
use rotor_tokens::{local_block_hashes, sequence_hashes, SequenceHash};

const BS: usize = 3;
const NUM_BLOCKS: usize = 12;

#[derive(Debug, Clone)]
enum Op {
    /// A prompt: `shared` tokens of base prompt `base`, then `extra` tokens unique to op `n`.
    Admit {
        base: usize,
        shared: usize,
        extra: usize,
    },
    /// A running sequence computes `k` more tokens.
    Grow {
        seq: usize,
        k: usize,
    },
    Finish(usize),
    Preempt(usize),
    Readmit(usize),
    Clear,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0usize..3, 0usize..12, 0usize..6)
            .prop_map(|(base, shared, extra)| Op::Admit { base, shared, extra }),
        4 => (0usize..8, 1usize..6).prop_map(|(seq, k)| Op::Grow { seq, k }),
        2 => (0usize..8).prop_map(Op::Finish),
        1 => (0usize..8).prop_map(Op::Preempt),
        2 => (0usize..8).prop_map(Op::Readmit),
        1 => Just(Op::Clear),
    ]
}

#[derive(Debug)]
struct Seq {
    tokens: Vec<u32>,
    table: Vec<BlockId>,
    /// Blocks of `table` committed (or reused from the cache).
    committed: usize,
}

struct Sim {
    pool: BlockPool,
    running: Vec<Seq>,
    waiting: Vec<Vec<u32>>,
    /// What each block's KV actually holds: the sequence hash of the tokens written into it.
    content: Vec<Option<SequenceHash>>,
    /// Cached set rebuilt from the events alone.
    replayed: HashSet<SequenceHash>,
    next_event: u64,
    fresh_token: u32,
}

impl Sim {
    /// Admits `tokens` if the pool has room, computing the whole prompt.
    fn admit(&mut self, tokens: Vec<u32>) -> Result<bool, TestCaseError> {
        let hashes = sequence_hashes(&tokens, BS);
        let hit = self.pool.find_cached_prefix(&hashes, tokens.len());
        let need = tokens.len().div_ceil(BS) - hit.len();
        if self.pool.num_free_after_reuse(&hit) < need {
            return Ok(false);
        }
        let reused = self.pool.lookup(&hashes, tokens.len());
        prop_assert_eq!(&reused, &hit);
        prop_assert!(
            reused.len() * BS < tokens.len(),
            "the last token is computed"
        );
        for (i, &b) in reused.iter().enumerate() {
            prop_assert_eq!(
                self.content[b as usize],
                Some(hashes[i]),
                "reused block {}",
                b
            );
        }
        let mut table = reused;
        let fresh = self
            .pool
            .allocate(need)
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        for &b in &fresh {
            self.content[b as usize] = None;
        }
        table.extend(fresh);
        let committed = hit.len();
        self.running.push(Seq {
            tokens,
            table,
            committed,
        });
        let i = self.running.len() - 1;
        self.commit(i)?;
        Ok(true)
    }

    /// Writes and commits every newly full block of `running[i]`.
    fn commit(&mut self, i: usize) -> Result<(), TestCaseError> {
        let seq = &mut self.running[i];
        let hashes = sequence_hashes(&seq.tokens, BS);
        let locals = local_block_hashes(&seq.tokens, BS);
        for b in seq.committed..hashes.len() {
            let block = seq.table[b];
            self.content[block as usize] = Some(hashes[b]);
            let parent = b.checked_sub(1).map(|p| hashes[p]);
            let cached = self
                .pool
                .commit_full_block(block, hashes[b], locals[b], parent)
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            let owner = self.pool.cached_block(hashes[b]);
            prop_assert_eq!(cached, owner == Some(block));
            prop_assert!(owner.is_some());
        }
        seq.committed = hashes.len();
        Ok(())
    }

    fn grow(&mut self, i: usize, k: usize) -> Result<(), TestCaseError> {
        let seq = &self.running[i];
        let need = (seq.tokens.len() + k).div_ceil(BS) - seq.table.len();
        let Ok(fresh) = self.pool.allocate(need) else {
            return Ok(());
        };
        for &b in &fresh {
            self.content[b as usize] = None;
        }
        let seq = &mut self.running[i];
        seq.table.extend(fresh);
        for _ in 0..k {
            seq.tokens.push(self.fresh_token % 7);
            self.fresh_token += 1;
        }
        self.commit(i)
    }

    fn apply_events(&mut self, events: Vec<KvEvent>) -> Result<(), TestCaseError> {
        for e in events {
            prop_assert_eq!(e.event_id, self.next_event);
            self.next_event += 1;
            match e.data {
                KvEventData::Stored { blocks, .. } => {
                    prop_assert!(!blocks.is_empty());
                    for b in blocks {
                        prop_assert!(self.replayed.insert(b.block_hash), "stored twice");
                    }
                }
                KvEventData::Removed { block_hashes, .. } => {
                    prop_assert!(!block_hashes.is_empty());
                    for h in block_hashes {
                        prop_assert!(self.replayed.remove(&h), "removed an unknown hash");
                    }
                }
                KvEventData::Cleared => self.replayed.clear(),
            }
        }
        Ok(())
    }

    fn check(&mut self) -> Result<(), TestCaseError> {
        let pool = &self.pool;
        let mut holders: HashMap<BlockId, u32> = HashMap::new();
        for seq in &self.running {
            prop_assert_eq!(seq.table.len(), seq.tokens.len().div_ceil(BS));
            let distinct: HashSet<_> = seq.table.iter().collect();
            prop_assert_eq!(
                distinct.len(),
                seq.table.len(),
                "a table holds a block twice"
            );
            for &b in &seq.table {
                *holders.entry(b).or_default() += 1;
            }
        }
        let order = pool.eviction_order();
        let queued: HashSet<_> = order.iter().copied().collect();
        prop_assert_eq!(queued.len(), order.len(), "a block queued twice");
        prop_assert_eq!(pool.num_free() + pool.num_used(), NUM_BLOCKS);
        prop_assert_eq!(pool.num_used(), holders.len());
        let mut cached = HashSet::new();
        for b in 0..NUM_BLOCKS as BlockId {
            let held = holders.get(&b).copied().unwrap_or(0);
            prop_assert_eq!(pool.ref_count(b), held, "ref count of block {}", b);
            prop_assert_eq!(
                queued.contains(&b),
                held == 0,
                "block {} free iff unheld",
                b
            );
            if let Some(h) = pool.cached_hash(b) {
                prop_assert_eq!(pool.cached_block(h), Some(b));
                prop_assert_eq!(self.content[b as usize], Some(h), "block {} content", b);
                cached.insert(h);
            }
        }
        prop_assert_eq!(cached.len(), pool.num_cached());
        let pool_hashes = pool.cached_hashes();
        let events = self.pool.drain_events();
        self.apply_events(events)?;
        prop_assert_eq!(&self.replayed, &cached, "event replay vs cached set");
        let mut snapshot: Vec<SequenceHash> = self.replayed.iter().copied().collect();
        snapshot.sort_unstable();
        prop_assert_eq!(pool_hashes, snapshot, "cached_hashes vs event replay");
        prop_assert_eq!(self.pool.next_event_id(), self.next_event);
        Ok(())
    }
}

fn base(i: usize) -> Vec<u32> {
    (0..12).map(|t| ((i * 5 + t) % 9) as u32).collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn no_leaked_block_and_consistent_map_and_events(ops in prop::collection::vec(op(), 1..80)) {
        let mut sim = Sim {
            pool: BlockPool::new(NUM_BLOCKS, BS),
            running: Vec::new(),
            waiting: Vec::new(),
            content: vec![None; NUM_BLOCKS],
            replayed: HashSet::new(),
            next_event: 0,
            fresh_token: 0,
        };
        for (n, op) in ops.into_iter().enumerate() {
            match op {
                Op::Admit { base: b, shared, extra } => {
                    let mut tokens = base(b)[..shared].to_vec();
                    tokens.extend((0..extra).map(|i| 100 + (n * 7 + i) as u32));
                    if !tokens.is_empty() {
                        sim.admit(tokens)?;
                    }
                }
                Op::Grow { seq, k } if seq < sim.running.len() => sim.grow(seq, k)?,
                Op::Finish(i) | Op::Preempt(i) if i < sim.running.len() => {
                    let s = sim.running.remove(i);
                    sim.pool.free(&s.table).map_err(|e| TestCaseError::fail(e.to_string()))?;
                    if matches!(op, Op::Preempt(_)) {
                        sim.waiting.push(s.tokens);
                    }
                }
                Op::Readmit(i) if i < sim.waiting.len() => {
                    let tokens = sim.waiting.remove(i);
                    if !sim.admit(tokens.clone())? {
                        sim.waiting.insert(i, tokens);
                    }
                }
                Op::Clear => sim.pool.clear(),
                _ => {}
            }
            sim.check()?;
        }
        for s in std::mem::take(&mut sim.running) {
            sim.pool.free(&s.table).map_err(|e| TestCaseError::fail(e.to_string()))?;
        }
        sim.check()?;
        prop_assert_eq!(sim.pool.num_free(), NUM_BLOCKS);
        let stats = sim.pool.stats();
        prop_assert!(stats.hit_tokens <= stats.queries_tokens);
    }
}

//! `BlockPool`: fixed KV blocks with ref counts, an LRU free queue and a prefix cache keyed by
//! chained block hashes (vLLM v1's block pool, in Rotor's terms).
//!
//! Parameters and rules:
//! - `num_blocks` blocks of `block_size_tokens` token slots each, ids `0..num_blocks`.
//! - A block's ref count is the number of sequences whose block table holds it. A block with
//!   ref count 0 is *free* and sits in the free queue; a free block may still be *cached*: it
//!   keeps the sequence hash of the full block it holds, so a later prompt can reuse it.
//! - Free queue order is eviction order. `allocate` takes from the head; a taken block that is
//!   still cached is evicted (its hash leaves the map, a `Removed` event is emitted). `free`
//!   walks a block table from its LAST block to its first: a block reaching ref count 0 goes to
//!   the tail if cached (least recently used cached blocks are evicted first, and of one
//!   sequence the tail block before the shared prefix), to the head if uncached (it is worth
//!   nothing, so it is handed out before any cached block).
//! - A fresh pool's queue is `0, 1, …, num_blocks - 1`.
//! - `lookup` reuses the longest run of cached blocks matching a prompt's sequence hashes, but
//!   never covers the prompt's last token: the model must compute at least one token to produce
//!   the logits of the next one. When every full block is cached and the prompt ends on a block
//!   boundary, the last block is recomputed into a fresh block.
//! - `commit_full_block` caches a held block once its tokens are all computed. When another block
//!   already caches the same hash, the map keeps the existing block and this one stays uncached
//!   (it is freed like any uncached block).

use std::collections::HashMap;

use rotor_protocol::{KvEvent, StoredBlock};
use rotor_tokens::{LocalBlockHash, SequenceHash};

use crate::error::Error;
use crate::events::EventBuffer;
use crate::free_queue::FreeQueue;
use crate::tiers::TierChange;
use crate::BlockId;

/// Prefix-cache counters since the pool was created.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PrefixCacheStats {
    /// Prompt tokens looked up (`lookup` calls, summed over their `num_tokens`).
    pub queries_tokens: u64,
    /// Of those, tokens served from cached blocks.
    pub hit_tokens: u64,
    /// Tokens looked up again for sequences recomputed after preemption
    /// (`lookup_for_recompute`): kept apart, since those mostly find the sequence's own blocks.
    pub recompute_queries_tokens: u64,
    /// Of those, tokens served from cached blocks.
    pub recompute_hit_tokens: u64,
    /// Cached blocks evicted to be reused.
    pub evictions: u64,
}

/// The KV block pool with prefix caching. See the module docs for the rules.
#[derive(Debug)]
pub struct BlockPool {
    block_size_tokens: usize,
    ref_counts: Vec<u32>,
    /// The sequence hash each block caches; `Some` exactly when `cached` maps that hash to it.
    hashes: Vec<Option<SequenceHash>>,
    free: FreeQueue,
    cached: HashMap<SequenceHash, BlockId>,
    events: EventBuffer,
    stats: PrefixCacheStats,
    /// Record evicted (block, hash) pairs for an offload tier (`set_record_evictions`).
    record_evictions: bool,
    evicted: Vec<(BlockId, SequenceHash)>,
}

impl BlockPool {
    /// A pool of `num_blocks` free, uncached blocks.
    ///
    /// Panics if `block_size_tokens` is 0 or `num_blocks` does not fit a `u32` block id (callers
    /// validate their configuration first).
    pub fn new(num_blocks: usize, block_size_tokens: usize) -> Self {
        assert!(block_size_tokens > 0, "block_size_tokens must be positive");
        assert!(
            num_blocks <= BlockId::MAX as usize,
            "num_blocks must fit a u32 block id"
        );
        Self {
            block_size_tokens,
            ref_counts: vec![0; num_blocks],
            hashes: vec![None; num_blocks],
            free: FreeQueue::full(num_blocks),
            cached: HashMap::new(),
            events: EventBuffer::default(),
            stats: PrefixCacheStats::default(),
            record_evictions: false,
            evicted: Vec::new(),
        }
    }

    pub fn block_size_tokens(&self) -> usize {
        self.block_size_tokens
    }

    pub fn num_total(&self) -> usize {
        self.ref_counts.len()
    }

    /// Blocks with ref count 0 (cached or not): what `allocate` can hand out.
    pub fn num_free(&self) -> usize {
        self.free.len()
    }

    /// Blocks held by at least one sequence.
    pub fn num_used(&self) -> usize {
        self.num_total() - self.num_free()
    }

    /// Blocks holding a cached hash (held or free).
    pub fn num_cached(&self) -> usize {
        self.cached.len()
    }

    /// How many holders `block` has (0 for a free or unknown block).
    pub fn ref_count(&self, block: BlockId) -> u32 {
        self.ref_counts.get(block as usize).copied().unwrap_or(0)
    }

    /// The sequence hash `block` caches, if any.
    pub fn cached_hash(&self, block: BlockId) -> Option<SequenceHash> {
        self.hashes.get(block as usize).copied().flatten()
    }

    /// The block caching `hash`, if any.
    pub fn cached_block(&self, hash: SequenceHash) -> Option<BlockId> {
        self.cached.get(&hash).copied()
    }

    /// The sequence hash of every cached block (held or free), ascending: the pool's side of a
    /// KV snapshot.
    pub fn cached_hashes(&self) -> Vec<SequenceHash> {
        let mut hashes: Vec<SequenceHash> = self.cached.keys().copied().collect();
        hashes.sort_unstable();
        hashes
    }

    /// Free blocks in eviction order (next handed out first).
    pub fn eviction_order(&self) -> Vec<BlockId> {
        self.free.iter().collect()
    }

    pub fn stats(&self) -> PrefixCacheStats {
        self.stats
    }

    /// The id the next emitted event will carry.
    pub fn next_event_id(&self) -> u64 {
        self.events.next_id()
    }

    /// The events emitted since the last drain, ids contiguous and increasing.
    pub fn drain_events(&mut self) -> Vec<KvEvent> {
        self.events.drain()
    }

    /// Adds events of the tiers behind this pool (see [`TierChange`]) to its event stream, so
    /// every tier's events share the pool's gap-free ids.
    pub fn record_tier_changes(&mut self, changes: Vec<TierChange>) {
        for change in changes {
            match change {
                TierChange::Stored { tier, blocks } => self.events.tier_stored(tier.into(), blocks),
                TierChange::Removed { tier, hashes } => {
                    self.events.tier_removed(tier.into(), hashes)
                }
            }
        }
    }

    /// The cached blocks `lookup` would reuse for a prompt of `num_tokens` tokens whose full
    /// blocks have sequence hashes `hashes`, without touching anything.
    pub fn find_cached_prefix(&self, hashes: &[SequenceHash], num_tokens: usize) -> Vec<BlockId> {
        let max_blocks = num_tokens.saturating_sub(1) / self.block_size_tokens;
        hashes
            .iter()
            .take(max_blocks)
            .map_while(|h| self.cached.get(h).copied())
            .collect()
    }

    /// Free blocks left for `allocate` once `prefix` (from `find_cached_prefix`) is reused:
    /// reusing a free cached block takes it out of the free queue.
    pub fn num_free_after_reuse(&self, prefix: &[BlockId]) -> usize {
        let reclaimed = prefix.iter().filter(|&&b| self.ref_count(b) == 0).count();
        self.num_free() - reclaimed
    }

    /// Reuses the longest cached prefix of a prompt (see `find_cached_prefix`): each returned
    /// block gains a holder and leaves the free queue. Counts `num_tokens` queried and the
    /// returned blocks' tokens as hits.
    pub fn lookup(&mut self, hashes: &[SequenceHash], num_tokens: usize) -> Vec<BlockId> {
        let blocks = self.take_cached_prefix(hashes, num_tokens);
        self.stats.queries_tokens += num_tokens as u64;
        self.stats.hit_tokens += (blocks.len() * self.block_size_tokens) as u64;
        blocks
    }

    /// [`lookup`](Self::lookup) for a sequence being recomputed after preemption; counted in
    /// the `recompute_*` figures, so the prefix-cache hit rate stays that of first admissions.
    pub fn lookup_for_recompute(
        &mut self,
        hashes: &[SequenceHash],
        num_tokens: usize,
    ) -> Vec<BlockId> {
        let blocks = self.take_cached_prefix(hashes, num_tokens);
        self.stats.recompute_queries_tokens += num_tokens as u64;
        self.stats.recompute_hit_tokens += (blocks.len() * self.block_size_tokens) as u64;
        blocks
    }

    fn take_cached_prefix(&mut self, hashes: &[SequenceHash], num_tokens: usize) -> Vec<BlockId> {
        let blocks = self.find_cached_prefix(hashes, num_tokens);
        for &b in &blocks {
            self.free.remove(b);
            self.ref_counts[b as usize] += 1;
        }
        blocks
    }

    /// Adds a holder to the block caching `hash` (taking it out of the free queue if it was
    /// free), without counting a prefix-cache query: pins a cached block while its KV is copied
    /// out or while blocks are imported after it. Release with [`free`](Self::free).
    pub fn acquire_cached(&mut self, hash: SequenceHash) -> Option<BlockId> {
        let block = self.cached_block(hash)?;
        self.free.remove(block);
        self.ref_counts[block as usize] += 1;
        Some(block)
    }

    /// Adds a holder to a block someone already holds (cached or not): a second owner of a
    /// shared block, such as a prompt's partly filled last block kept for sibling sequences to
    /// copy. Release with [`free`](Self::free).
    pub fn retain(&mut self, block: BlockId) -> Result<(), Error> {
        self.check_held(block)?;
        self.ref_counts[block as usize] += 1;
        Ok(())
    }

    /// Takes `n` blocks from the head of the free queue, each with one holder, evicting those
    /// still cached (one `Removed` event for all of them). All or nothing.
    pub fn allocate(&mut self, n: usize) -> Result<Vec<BlockId>, Error> {
        if n > self.free.len() {
            return Err(Error::OutOfBlocks {
                requested: n,
                free: self.free.len(),
            });
        }
        let mut evicted = Vec::new();
        let mut blocks = Vec::with_capacity(n);
        for _ in 0..n {
            let b = self
                .free
                .pop_front()
                .expect("invariant: length checked above");
            if let Some(hash) = self.hashes[b as usize].take() {
                self.cached.remove(&hash);
                evicted.push(hash);
                if self.record_evictions {
                    self.evicted.push((b, hash));
                }
            }
            self.ref_counts[b as usize] = 1;
            blocks.push(b);
        }
        self.stats.evictions += evicted.len() as u64;
        self.events.removed(evicted);
        Ok(blocks)
    }

    /// Drops one holder of each block of a block table (given in sequence order; processed last
    /// block first, see the module docs). All or nothing: refused if any block is unknown, not
    /// held, or listed twice.
    pub fn free(&mut self, blocks: &[BlockId]) -> Result<(), Error> {
        for (i, &b) in blocks.iter().enumerate() {
            self.check_held(b)?;
            if blocks[..i].contains(&b) {
                return Err(Error::DuplicateInFree { block: b });
            }
        }
        for &b in blocks.iter().rev() {
            let rc = &mut self.ref_counts[b as usize];
            *rc -= 1;
            if *rc == 0 {
                if self.hashes[b as usize].is_some() {
                    self.free.push_back(b);
                } else {
                    self.free.push_front(b);
                }
            }
        }
        Ok(())
    }

    /// Caches a held block whose `block_size_tokens` tokens are all computed, under its sequence
    /// hash. `parent` is the sequence hash of the block before it (`None` for a first block) and
    /// `local_hash` its tokens' own hash; both go into the `Stored` event.
    ///
    /// Returns whether `block` now caches `seq_hash`: false when another block already does (the
    /// map keeps that one; nothing is emitted).
    pub fn commit_full_block(
        &mut self,
        block: BlockId,
        seq_hash: SequenceHash,
        local_hash: LocalBlockHash,
        parent: Option<SequenceHash>,
    ) -> Result<bool, Error> {
        self.check_held(block)?;
        if let Some(existing) = self.hashes[block as usize] {
            if existing == seq_hash {
                return Ok(true);
            }
            return Err(Error::AlreadyCached {
                block,
                cached: existing,
                committed: seq_hash,
            });
        }
        if self.cached.contains_key(&seq_hash) {
            return Ok(false);
        }
        self.cached.insert(seq_hash, block);
        self.hashes[block as usize] = Some(seq_hash);
        self.events.stored(
            parent,
            StoredBlock {
                block_hash: seq_hash,
                tokens_hash: local_hash,
            },
        );
        Ok(true)
    }

    /// Makes `allocate` record each cached block it evicts (block id, hash) until
    /// [`take_evicted`](Self::take_evicted), so an offload tier can copy the block's KV out before
    /// the new holder overwrites it.
    pub fn set_record_evictions(&mut self, on: bool) {
        self.record_evictions = on;
    }

    /// The evictions recorded since the last call, in eviction order. The block ids are held by
    /// their new holders now; their KV is intact until those write to them.
    pub fn take_evicted(&mut self) -> Vec<(BlockId, SequenceHash)> {
        std::mem::take(&mut self.evicted)
    }

    /// Forgets every cached hash (held blocks stay held, free blocks keep their queue places)
    /// and emits `Cleared`.
    pub fn clear(&mut self) {
        for h in &mut self.hashes {
            *h = None;
        }
        self.cached.clear();
        self.events.cleared();
    }

    fn check_held(&self, block: BlockId) -> Result<(), Error> {
        match self.ref_counts.get(block as usize) {
            None => Err(Error::UnknownBlock {
                block,
                num_blocks: self.num_total(),
            }),
            Some(0) => Err(Error::NotHeld { block }),
            Some(_) => Ok(()),
        }
    }
}

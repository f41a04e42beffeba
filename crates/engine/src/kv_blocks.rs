//! `KvBlocks`: the scheduler's side of the KV block pool. It wraps `rotor_kv_cache::BlockPool`
//! and speaks in sequences: admit one (reusing its cached prefix), grow one, commit the blocks
//! it filled, release one.
//!
//! With prefix caching off, the same pool is used without lookups or commits: every prompt is
//! computed from scratch, no block is ever cached and no event is emitted.
//!
//! Copy-on-write for sibling sequences (the choices of an `n > 1` request, which the frontend
//! sends one after another with the same prompt): when a sequence announcing siblings
//! (`SamplingParams::siblings`) has computed its prompt, the prompt's partly filled last block is
//! kept (one extra holder) for a while. A sibling admitted later reuses the prompt's full blocks
//! from the prefix cache as usual and gets a fresh block with a copy of the kept one, so it
//! computes only the prompt's last token (for its logits) instead of the whole tail. A prompt
//! that ends on a block boundary needs no keeping: its last block is in the prefix cache, and a
//! request whose whole prompt is cached copies that block the same way. The copy itself is done
//! by the runner before the step (`StepPlan::copies`); the source block is held until then.
//! Kept blocks are released when their siblings have all come, after `PROMPT_TAIL_TTL`, or as
//! soon as the pool runs short (before anyone is preempted or refused).
//!
//! Beside the pool it keeps, per block, the token ids and parent hash of the full block it
//! caches (a preallocated table: committing allocates nothing), so a cached block can be
//! exported in the KV block format by its sequence hash alone.

use std::time::{Duration, Instant};

use rotor_kv_cache::{BlockId, BlockPool, PrefixCacheStats};
use rotor_protocol::KvEvent;
use rotor_tokens::{LocalBlockHash, SequenceHash};

use crate::config::EngineConfig;
use crate::sequence::Sequence;

/// What admitting a waiting sequence takes, as worked out by `KvBlocks::plan_admission`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Admission {
    /// Leading blocks served from the prefix cache.
    pub cached_blocks: usize,
    /// Tokens to compute in the admission step, starting right after the cached ones.
    pub num_tokens: usize,
    /// Fresh blocks to allocate.
    pub new_blocks: usize,
    /// Copy-on-write of the block holding the prompt's last token (see the module docs).
    pub copy: Option<TailCopy>,
}

/// A copy planned at admission: `tokens` prompt tokens after the cached blocks come from
/// `source` instead of being computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TailCopy {
    pub source: TailSource,
    pub tokens: usize,
}

/// Where a copied block comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TailSource {
    /// The prompt's last full block, in the prefix cache (a prompt ending on a block boundary).
    Cached(SequenceHash),
    /// A sibling's kept partly filled last block.
    Kept(BlockId),
}

/// A block copy for the runner to make before the step: `src`'s K/V over `dst`. The copy owns
/// one holder of `src`, released (`KvBlocks::unpin`) once the copy is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockCopy {
    pub src: BlockId,
    pub dst: BlockId,
}

/// How long a prompt's last block is kept for siblings that have not come yet. Siblings are sent
/// as soon as the first sequence's first output is out, so they come within milliseconds unless
/// the queue is long; a sibling that comes later only recomputes the tail.
pub(crate) const PROMPT_TAIL_TTL: Duration = Duration::from_secs(10);

/// At most this many prompt tails are kept at once (a bound on the blocks they hold).
const MAX_PROMPT_TAILS: usize = 64;

/// A prompt's partly filled last block, kept for the siblings still expected.
#[derive(Debug)]
struct PromptTail {
    /// Sequence hash of the prompt's last full block (`None`: the prompt is shorter than one).
    parent: Option<SequenceHash>,
    /// The prompt's tokens after its last full block.
    tokens: Vec<u32>,
    /// The block holding their K/V; this entry owns one holder.
    block: BlockId,
    /// Siblings still expected.
    remaining: u32,
    expires: Instant,
}

/// The KV block pool as the scheduler uses it.
#[derive(Debug)]
pub struct KvBlocks {
    pool: BlockPool,
    prefix_caching: bool,
    /// `block_size_tokens` ids per block: those of the full block it caches (valid exactly
    /// while the pool says the block caches a hash; empty with prefix caching off).
    block_tokens: Vec<u32>,
    /// The parent sequence hash of the full block each block caches (same validity).
    block_parents: Vec<Option<SequenceHash>>,
    /// Whether the runner copies blocks (`ModelRunner::supports_kv_copy`): without it, nothing
    /// is kept or copied and siblings recompute the tail.
    copy_on_write: bool,
    tails: Vec<PromptTail>,
    cow_blocks: u64,
    cow_tokens: u64,
}

impl KvBlocks {
    /// `cfg` must be validated.
    pub fn new(cfg: &EngineConfig) -> Self {
        let origins = if cfg.enable_prefix_caching {
            cfg.num_blocks
        } else {
            0
        };
        Self {
            pool: BlockPool::new(cfg.num_blocks, cfg.block_size_tokens),
            prefix_caching: cfg.enable_prefix_caching,
            block_tokens: vec![0; origins * cfg.block_size_tokens],
            block_parents: vec![None; origins],
            copy_on_write: false,
            tails: Vec::new(),
            cow_blocks: 0,
            cow_tokens: 0,
        }
    }

    /// Turns copy-on-write admissions on (the runner copies blocks); a no-op with prefix caching
    /// off, which it needs.
    pub(crate) fn enable_copy_on_write(&mut self) {
        self.copy_on_write = self.prefix_caching;
    }

    /// (copy-on-write admissions, prompt tokens they served).
    pub fn copy_on_write_stats(&self) -> (u64, u64) {
        (self.cow_blocks, self.cow_tokens)
    }

    /// Prompt tails kept for siblings now (each holds one block).
    pub fn num_kept_tails(&self) -> usize {
        self.tails.len()
    }

    /// When the first kept tail expires, if any is kept.
    pub(crate) fn next_tail_expiry(&self) -> Option<Instant> {
        self.tails.iter().map(|t| t.expires).min()
    }

    /// Releases the tails whose time is up.
    pub(crate) fn expire_tails(&mut self, now: Instant) {
        if self.tails.iter().all(|t| t.expires > now) {
            return;
        }
        let pool = &mut self.pool;
        self.tails.retain(|t| {
            let keep = t.expires > now;
            if !keep {
                pool.free(&[t.block])
                    .expect("invariant: a kept tail holds its block");
            }
            keep
        });
    }

    /// Releases every kept tail (the pool ran short); false if none was kept.
    pub(crate) fn release_tails(&mut self) -> bool {
        if self.tails.is_empty() {
            return false;
        }
        for t in self.tails.drain(..) {
            self.pool
                .free(&[t.block])
                .expect("invariant: a kept tail holds its block");
        }
        true
    }

    /// Keeps `seq`'s partly filled last prompt block for its announced siblings, if it has one
    /// worth copying (at least two tokens: a one-token tail is recomputed anyway). Called once
    /// its prompt is computed.
    pub(crate) fn keep_prompt_tail(&mut self, seq: &mut Sequence, now: Instant) {
        let bs = self.block_size();
        let siblings = seq.sampling.siblings;
        if !self.copy_on_write
            || siblings == 0
            || seq.recomputing
            || seq.needs_full_prompt()
            || seq.prompt_len % bs < 2
            || self.tails.len() >= MAX_PROMPT_TAILS
        {
            return;
        }
        seq.hash_full_blocks(bs);
        let full = seq.prompt_len / bs;
        let block = seq.block_table[full];
        self.pool
            .retain(block)
            .expect("invariant: a running sequence holds its blocks");
        self.tails.push(PromptTail {
            parent: full.checked_sub(1).map(|p| seq.block_hashes[p]),
            tokens: seq.tokens[full * bs..seq.prompt_len].to_vec(),
            block,
            remaining: siblings,
            expires: now + PROMPT_TAIL_TTL,
        });
    }

    /// A block holding the K/V of `seq`'s prompt up to its last token, from block `last` (the
    /// one holding the last token) on: see the module docs.
    fn tail_source(&self, seq: &Sequence, last: usize) -> Option<TailSource> {
        let bs = self.block_size();
        if seq.tokens.len().is_multiple_of(bs) {
            let hash = seq.block_hashes[last];
            return self
                .pool
                .cached_block(hash)
                .map(|_| TailSource::Cached(hash));
        }
        let parent = last.checked_sub(1).map(|p| seq.block_hashes[p]);
        let tail = &seq.tokens[last * bs..];
        self.tails
            .iter()
            .find(|t| t.parent == parent && t.tokens == tail)
            .map(|t| TailSource::Kept(t.block))
    }

    /// Takes a holder of `source` for a copy (see `BlockCopy`): a kept tail's own holder when
    /// this is its last expected sibling, a new one otherwise.
    fn hold_source(&mut self, source: TailSource) -> BlockId {
        match source {
            TailSource::Cached(hash) => self
                .pool
                .acquire_cached(hash)
                .expect("invariant: plan_admission found the block cached"),
            TailSource::Kept(block) => {
                let i = self
                    .tails
                    .iter()
                    .position(|t| t.block == block)
                    .expect("invariant: plan_admission found the tail kept");
                self.tails[i].remaining -= 1;
                if self.tails[i].remaining == 0 {
                    self.tails.swap_remove(i);
                } else {
                    self.pool
                        .retain(block)
                        .expect("invariant: a kept tail holds its block");
                }
                block
            }
        }
    }

    pub fn pool(&self) -> &BlockPool {
        &self.pool
    }

    pub fn prefix_caching(&self) -> bool {
        self.prefix_caching
    }

    pub fn num_used(&self) -> usize {
        self.pool.num_used()
    }

    pub fn stats(&self) -> PrefixCacheStats {
        self.pool.stats()
    }

    pub fn drain_events(&mut self) -> Vec<KvEvent> {
        self.pool.drain_events()
    }

    fn block_size(&self) -> usize {
        self.pool.block_size_tokens()
    }

    /// How `seq` (waiting, nothing computed) would be admitted with at most `max_tokens`
    /// computed in its first step, or `None` if the pool lacks the blocks. Changes nothing but
    /// `seq`'s block hashes.
    pub(crate) fn plan_admission(
        &self,
        seq: &mut Sequence,
        max_tokens: usize,
    ) -> Option<Admission> {
        debug_assert!(seq.block_table.is_empty() && seq.num_computed == 0);
        let bs = self.block_size();
        // A sequence collecting prompt outputs needs every position computed: no cached prefix
        // (the blocks it fills are still committed to the cache).
        let (cached_blocks, free) = if self.prefix_caching && !seq.needs_full_prompt() {
            seq.hash_full_blocks(bs);
            let prefix = self
                .pool
                .find_cached_prefix(&seq.block_hashes, seq.tokens.len());
            (prefix.len(), self.pool.num_free_after_reuse(&prefix))
        } else {
            (0, self.pool.num_free())
        };
        let cached_tokens = cached_blocks * bs;
        let len = seq.tokens.len();
        // Copy-on-write: every block before the last token's is cached, and the tokens before
        // the last one in its block are in a block someone else computed.
        let last = (len - 1) / bs;
        if self.copy_on_write
            && !seq.needs_full_prompt()
            && !seq.recomputing
            && cached_blocks == last
            && len - 1 > cached_tokens
        {
            if let Some(source) = self.tail_source(seq, last) {
                // A cached source that nobody holds leaves the free queue when it is held.
                let pinned = match source {
                    TailSource::Cached(hash) => self
                        .pool
                        .cached_block(hash)
                        .is_some_and(|b| self.pool.ref_count(b) == 0),
                    TailSource::Kept(_) => false,
                };
                if usize::from(pinned) < free {
                    return Some(Admission {
                        cached_blocks,
                        num_tokens: 1,
                        new_blocks: 1,
                        copy: Some(TailCopy {
                            source,
                            tokens: len - 1 - cached_tokens,
                        }),
                    });
                }
            }
        }
        let num_tokens = (len - cached_tokens).min(max_tokens);
        let new_blocks = (cached_tokens + num_tokens).div_ceil(bs) - cached_blocks;
        (new_blocks <= free).then_some(Admission {
            cached_blocks,
            num_tokens,
            new_blocks,
            copy: None,
        })
    }

    /// Admits `seq` as planned: reuses its cached prefix (those tokens count as computed) and
    /// allocates the rest. Returns the block copy to make before the step, if the plan has one
    /// (its tokens count as computed too).
    pub(crate) fn admit(&mut self, seq: &mut Sequence, admission: Admission) -> Option<BlockCopy> {
        let bs = self.block_size();
        if self.prefix_caching && !seq.needs_full_prompt() {
            seq.block_table = if seq.recomputing {
                self.pool
                    .lookup_for_recompute(&seq.block_hashes, seq.tokens.len())
            } else {
                self.pool.lookup(&seq.block_hashes, seq.tokens.len())
            };
        }
        debug_assert_eq!(seq.block_table.len(), admission.cached_blocks);
        // The source is held before allocating, which could evict it otherwise.
        let src = admission.copy.map(|c| self.hold_source(c.source));
        let fresh = self
            .pool
            .allocate(admission.new_blocks)
            .expect("invariant: plan_admission checked the free blocks");
        seq.block_table.extend(fresh);
        seq.num_cached_blocks = admission.cached_blocks;
        seq.num_computed = admission.cached_blocks * bs;
        let copy = admission.copy.zip(src).map(|(c, src)| {
            seq.num_computed += c.tokens;
            self.cow_blocks += 1;
            self.cow_tokens += c.tokens as u64;
            BlockCopy {
                src,
                dst: seq.block_table[admission.cached_blocks],
            }
        });
        if !seq.recomputing {
            seq.cached_prompt_tokens = seq.num_computed.min(seq.prompt_len);
        }
        copy
    }

    /// Makes `seq`'s table cover `num_tokens` more tokens; false (nothing changed) if the pool
    /// lacks the blocks.
    pub(crate) fn grow(&mut self, seq: &mut Sequence, num_tokens: usize) -> bool {
        let need = (seq.num_computed + num_tokens).div_ceil(self.block_size());
        let missing = need.saturating_sub(seq.block_table.len());
        match self.pool.allocate(missing) {
            Ok(fresh) => {
                seq.block_table.extend(fresh);
                true
            }
            Err(_) => false,
        }
    }

    /// Caches every block of `seq` that its computed tokens fill and that is not cached yet.
    pub(crate) fn commit_computed(&mut self, seq: &mut Sequence) {
        if !self.prefix_caching {
            return;
        }
        let full = seq.num_computed / self.block_size();
        if full <= seq.num_cached_blocks {
            return;
        }
        seq.hash_full_blocks(self.block_size());
        let bs = self.block_size();
        for i in seq.num_cached_blocks..full {
            let parent = i.checked_sub(1).map(|p| seq.block_hashes[p]);
            let block = seq.block_table[i];
            let cached = self
                .pool
                .commit_full_block(block, seq.block_hashes[i], seq.local_hashes[i], parent)
                .expect("invariant: a running sequence holds its blocks");
            if cached {
                self.record_origin(block, parent, &seq.tokens[i * bs..(i + 1) * bs]);
            }
        }
        seq.num_cached_blocks = full;
    }

    fn record_origin(&mut self, block: BlockId, parent: Option<SequenceHash>, tokens: &[u32]) {
        let b = block as usize;
        let bs = self.block_size();
        self.block_tokens[b * bs..(b + 1) * bs].copy_from_slice(tokens);
        self.block_parents[b] = parent;
    }

    /// The token ids and parent hash of the full block `block` caches, if it caches one.
    pub(crate) fn cached_origin(&self, block: BlockId) -> Option<(Option<SequenceHash>, &[u32])> {
        self.pool.cached_hash(block)?;
        let (b, bs) = (block as usize, self.block_size());
        Some((
            self.block_parents[b],
            &self.block_tokens[b * bs..(b + 1) * bs],
        ))
    }

    /// Records the cached blocks evicted from now on (for the offload tiers; `take_evicted`).
    pub(crate) fn record_evictions(&mut self) {
        self.pool.set_record_evictions(true);
    }

    /// Adds the offload tiers' changes to the pool's KV events (same id sequence).
    pub(crate) fn record_tier_changes(&mut self, changes: Vec<rotor_kv_cache::TierChange>) {
        self.pool.record_tier_changes(changes);
    }

    /// The (block, hash) pairs evicted since the last call. Each block's KV and origin (see
    /// `evicted_origin`) are intact until its new holder writes to it.
    pub(crate) fn take_evicted(&mut self) -> Vec<(BlockId, SequenceHash)> {
        self.pool.take_evicted()
    }

    /// The parent hash and token ids of the full block `block` cached before it was evicted:
    /// valid until the block is committed again (after its new holder's step).
    pub(crate) fn evicted_origin(&self, block: BlockId) -> (Option<SequenceHash>, &[u32]) {
        let (b, bs) = (block as usize, self.block_size());
        (
            self.block_parents[b],
            &self.block_tokens[b * bs..(b + 1) * bs],
        )
    }

    /// Adds a holder to the block caching `hash` (see `BlockPool::acquire_cached`), so it can be
    /// neither evicted nor reused while KV is copied out of it or imported after it.
    pub(crate) fn pin_cached(&mut self, hash: SequenceHash) -> Option<BlockId> {
        self.pool.acquire_cached(hash)
    }

    /// One fresh block with one holder (evicting the least recently used cached free block if
    /// no uncached one is free), or `None` when every block is held.
    pub(crate) fn allocate_one(&mut self) -> Option<BlockId> {
        self.pool.allocate(1).ok().and_then(|b| b.first().copied())
    }

    /// Caches a held block whose KV was imported (emitting `Stored`). False when another block
    /// already caches `hash` (the caller checks first, so that means a bug upstream).
    pub(crate) fn commit_imported(
        &mut self,
        block: BlockId,
        hash: SequenceHash,
        local_hash: LocalBlockHash,
        parent: Option<SequenceHash>,
        tokens: &[u32],
    ) -> bool {
        let cached = self
            .pool
            .commit_full_block(block, hash, local_hash, parent)
            .expect("invariant: the importer holds the block it commits");
        if cached {
            self.record_origin(block, parent, tokens);
        }
        cached
    }

    /// Drops the holders taken by `pin_cached` / `allocate_one`, given in chain order (the
    /// chain's last block becomes the first evicted, as when a sequence ends).
    pub(crate) fn unpin(&mut self, blocks: &[BlockId]) {
        self.pool
            .free(blocks)
            .expect("invariant: pinned blocks are held once each");
    }

    /// Frees every block of `seq` (last block first) and empties its table.
    pub(crate) fn release(&mut self, seq: &mut Sequence) {
        self.pool
            .free(&seq.block_table)
            .expect("invariant: a sequence holds each block of its table once");
        seq.block_table.clear();
        seq.num_cached_blocks = 0;
    }
}

#[cfg(test)]
mod tests {
    use rotor_protocol::{GenerateRequest, SamplingParams, StopConditions};
    use tokio::sync::mpsc::unbounded_channel;

    use super::*;

    fn sequence(tokens: Vec<u32>) -> Sequence {
        let req = GenerateRequest {
            task: Default::default(),
            id: "s".into(),
            token_ids: tokens,
            sampling: SamplingParams::greedy(),
            stop: StopConditions::default(),
        };
        Sequence::new(req, 1000, unbounded_channel().0)
    }

    #[test]
    fn incremental_block_hashes_equal_the_tokens_crate_hashes() {
        let tokens: Vec<u32> = (0..11).map(|i| i * 37 % 50).collect();
        let mut seq = sequence(tokens[..6].to_vec());
        seq.hash_full_blocks(4);
        assert_eq!(seq.block_hashes.len(), 1);
        seq.tokens.extend_from_slice(&tokens[6..]);
        seq.hash_full_blocks(4);
        assert_eq!(seq.block_hashes, rotor_tokens::sequence_hashes(&tokens, 4));
        assert_eq!(
            seq.local_hashes,
            rotor_tokens::local_block_hashes(&tokens, 4)
        );
    }
}

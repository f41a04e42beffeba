//! `EngineStats`: a snapshot of the engine's load, published after every step.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use std::sync::{Mutex, PoisonError};

use rotor_kv_cache::KvTierStats;

use crate::constraint::ConstraintStats;
use crate::kv_transfer::{KvImportRejectReason, KvTransferStats};

/// Load and progress counters of one engine.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EngineStats {
    pub running: usize,
    pub waiting: usize,
    pub blocks_used: usize,
    pub blocks_total: usize,
    /// Steps run (non-empty batches given to the runner).
    pub steps: u64,
    /// Tokens fed to the runner (prefill, recompute and decode).
    pub tokens_processed: u64,
    /// Tokens sampled and sent (with tokens a grammar constraint forced).
    pub tokens_generated: u64,
    pub preemptions: u64,
    /// Prompt tokens looked up in the prefix cache at a request's first admission (zero with
    /// prefix caching off).
    pub prefix_cache_queries_tokens: u64,
    /// Of those, tokens served from cached blocks instead of being computed.
    pub prefix_cache_hit_tokens: u64,
    /// Tokens looked up again when a preempted request is re-admitted to be recomputed.
    pub prefix_cache_recompute_queries_tokens: u64,
    /// Of those, tokens served from cached blocks (mostly the request's own).
    pub prefix_cache_recompute_hit_tokens: u64,
    /// Cached blocks evicted to make room.
    pub prefix_cache_evictions: u64,
    /// KV blocks exported and imported, import refusals by reason.
    pub kv_transfer: KvTransferStats,
    /// Offload tiers (G2 host, G3 disk): held, hits, offloads, onboards, failed loads. All
    /// zero without tiers.
    pub kv_tiers: KvTierStats,
    /// Grammar-constrained sampling: requests, refusals, masks and their time, forced tokens.
    pub constraints: ConstraintStats,
    /// Requests whose prompt logprobs were computed and delivered (prompt scoring).
    pub prompt_logprob_requests: u64,
    /// Embedding requests whose embedding was computed and delivered.
    pub embedding_requests: u64,
    /// Copy-on-write admissions: a sequence whose prompt's every token but the last already had
    /// its K/V in a block another sequence computed (a sibling's kept last block, or a cached
    /// full block) got a copy of that block instead of recomputing it.
    pub kv_copy_on_write_blocks: u64,
    /// Prompt tokens those copies served (not computed).
    pub kv_copy_on_write_tokens: u64,
    /// The engine thread has exited (or is exiting) and accepts no more requests.
    pub stopped: bool,
}

/// Lock-free cell the engine thread writes and handles read.
#[derive(Debug, Default)]
pub(crate) struct StatsCell {
    running: AtomicU64,
    waiting: AtomicU64,
    blocks_used: AtomicU64,
    blocks_total: AtomicU64,
    steps: AtomicU64,
    tokens_processed: AtomicU64,
    tokens_generated: AtomicU64,
    preemptions: AtomicU64,
    prefix_cache_queries_tokens: AtomicU64,
    prefix_cache_hit_tokens: AtomicU64,
    prefix_cache_recompute_queries_tokens: AtomicU64,
    prefix_cache_recompute_hit_tokens: AtomicU64,
    prefix_cache_evictions: AtomicU64,
    kv_exported_blocks: AtomicU64,
    kv_imported_blocks: AtomicU64,
    kv_import_rejections: [AtomicU64; KvImportRejectReason::ALL.len()],
    prompt_logprob_requests: AtomicU64,
    embedding_requests: AtomicU64,
    kv_copy_on_write_blocks: AtomicU64,
    kv_copy_on_write_tokens: AtomicU64,
    /// Tier counters change rarely and together; a lock taken once per publish and snapshot.
    kv_tiers: Mutex<KvTierStats>,
    stopped: AtomicBool,
}

impl StatsCell {
    pub fn publish(&self, s: &EngineStats) {
        let r = Ordering::Relaxed;
        self.running.store(s.running as u64, r);
        self.waiting.store(s.waiting as u64, r);
        self.blocks_used.store(s.blocks_used as u64, r);
        self.blocks_total.store(s.blocks_total as u64, r);
        self.steps.store(s.steps, r);
        self.tokens_processed.store(s.tokens_processed, r);
        self.tokens_generated.store(s.tokens_generated, r);
        self.prefix_cache_queries_tokens
            .store(s.prefix_cache_queries_tokens, r);
        self.prefix_cache_hit_tokens
            .store(s.prefix_cache_hit_tokens, r);
        self.prefix_cache_recompute_queries_tokens
            .store(s.prefix_cache_recompute_queries_tokens, r);
        self.prefix_cache_recompute_hit_tokens
            .store(s.prefix_cache_recompute_hit_tokens, r);
        self.prefix_cache_evictions
            .store(s.prefix_cache_evictions, r);
        self.kv_exported_blocks
            .store(s.kv_transfer.exported_blocks, r);
        self.kv_imported_blocks
            .store(s.kv_transfer.imported_blocks, r);
        for (cell, reason) in self
            .kv_import_rejections
            .iter()
            .zip(KvImportRejectReason::ALL)
        {
            cell.store(s.kv_transfer.rejections(reason), r);
        }
        self.prompt_logprob_requests
            .store(s.prompt_logprob_requests, r);
        self.embedding_requests.store(s.embedding_requests, r);
        self.kv_copy_on_write_blocks
            .store(s.kv_copy_on_write_blocks, r);
        self.kv_copy_on_write_tokens
            .store(s.kv_copy_on_write_tokens, r);
        *self.kv_tiers.lock().unwrap_or_else(PoisonError::into_inner) = s.kv_tiers;
        self.preemptions.store(s.preemptions, Ordering::Release);
    }

    pub fn snapshot(&self) -> EngineStats {
        let r = Ordering::Relaxed;
        let preemptions = self.preemptions.load(Ordering::Acquire);
        let mut kv_transfer = KvTransferStats::default();
        kv_transfer.exported_blocks = self.kv_exported_blocks.load(r);
        kv_transfer.imported_blocks = self.kv_imported_blocks.load(r);
        for (cell, reason) in self
            .kv_import_rejections
            .iter()
            .zip(KvImportRejectReason::ALL)
        {
            kv_transfer.set_rejections(reason, cell.load(r));
        }
        EngineStats {
            running: self.running.load(r) as usize,
            waiting: self.waiting.load(r) as usize,
            blocks_used: self.blocks_used.load(r) as usize,
            blocks_total: self.blocks_total.load(r) as usize,
            steps: self.steps.load(r),
            tokens_processed: self.tokens_processed.load(r),
            tokens_generated: self.tokens_generated.load(r),
            preemptions,
            prefix_cache_queries_tokens: self.prefix_cache_queries_tokens.load(r),
            prefix_cache_hit_tokens: self.prefix_cache_hit_tokens.load(r),
            prefix_cache_recompute_queries_tokens: self
                .prefix_cache_recompute_queries_tokens
                .load(r),
            prefix_cache_recompute_hit_tokens: self.prefix_cache_recompute_hit_tokens.load(r),
            prefix_cache_evictions: self.prefix_cache_evictions.load(r),
            kv_transfer,
            kv_tiers: *self.kv_tiers.lock().unwrap_or_else(PoisonError::into_inner),
            // Filled by `EngineHandle::stats` from the shared constraint counters.
            constraints: ConstraintStats::default(),
            prompt_logprob_requests: self.prompt_logprob_requests.load(r),
            embedding_requests: self.embedding_requests.load(r),
            kv_copy_on_write_blocks: self.kv_copy_on_write_blocks.load(r),
            kv_copy_on_write_tokens: self.kv_copy_on_write_tokens.load(r),
            stopped: self.is_stopped(),
        }
    }

    pub fn set_stopped(&self) {
        self.stopped.store(true, Ordering::SeqCst);
    }

    pub fn is_stopped(&self) -> bool {
        self.stopped.load(Ordering::SeqCst)
    }
}

//! `EngineConfig`: scheduler limits and the KV block pool's shape.

use crate::error::Error;

/// Scheduler limits and KV pool shape. Build one (or take `Default`) and let `Engine::start`
/// validate it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineConfig {
    /// Most sequences running (holding KV blocks) at once.
    pub max_num_seqs: usize,
    /// Token budget of one step, summed over all chunks (decodes count one each).
    pub max_num_batched_tokens: usize,
    /// Longest prefill chunk one sequence gets in a step (vLLM's `long_prefill_token_threshold`),
    /// so one long prompt cannot take a whole step's budget. Capped by `max_num_batched_tokens`.
    pub max_prefill_chunk_tokens: usize,
    /// Tokens per KV block.
    pub block_size_tokens: usize,
    /// Blocks in the KV pool.
    pub num_blocks: usize,
    /// Reuse cached KV blocks of earlier prompts with the same prefix (full blocks only), and
    /// emit KV events. Off: every prompt is computed from scratch and no events are emitted.
    pub enable_prefix_caching: bool,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            max_num_seqs: 64,
            max_num_batched_tokens: 512,
            max_prefill_chunk_tokens: 512,
            block_size_tokens: 16,
            num_blocks: 1024,
            enable_prefix_caching: true,
        }
    }
}

impl EngineConfig {
    /// Checks every field is usable.
    pub fn validate(&self) -> Result<(), Error> {
        let positive = [
            ("max_num_seqs", self.max_num_seqs),
            ("max_num_batched_tokens", self.max_num_batched_tokens),
            ("max_prefill_chunk_tokens", self.max_prefill_chunk_tokens),
            ("block_size_tokens", self.block_size_tokens),
            ("num_blocks", self.num_blocks),
        ];
        for (field, value) in positive {
            if value == 0 {
                return Err(Error::InvalidConfig {
                    field,
                    value,
                    reason: "must be at least 1",
                });
            }
        }
        if self.num_blocks > u32::MAX as usize {
            return Err(Error::InvalidConfig {
                field: "num_blocks",
                value: self.num_blocks,
                reason: "block ids are u32",
            });
        }
        Ok(())
    }

    /// Tokens the KV pool holds when one sequence has all of it.
    pub fn pool_capacity_tokens(&self) -> usize {
        self.num_blocks.saturating_mul(self.block_size_tokens)
    }
}

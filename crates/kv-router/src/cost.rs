//! `CostFunction`: how expensive it would be to send one request to one worker.
//!
//! Parameters:
//! - `block_size_tokens` (`B`): tokens per KV block, the same as the workers' block size.
//! - `kv_overlap_weight` (`α`, `--kv-overlap-weight`, ≥ 0, default 8): how much prefill work
//!   counts against decode load. High values chase cache hits (time to first token); 0 ignores
//!   the cache and balances running blocks only (inter-token latency).
//! - `queue_weight` (`q`, `--kv-queue-weight`, ≥ 0, default 0.25): how much a token already waiting
//!   for prefill on the worker counts against a token this request must compute there. At 1 the
//!   prefill term is the work ahead of the request's first token, the choice that is greedy for its
//!   time to first token: a conversation leaves the worker caching it as soon as that worker's
//!   queue is longer than the prefix it would reuse. Below 1 it stays longer. A queued token only
//!   delays this request, while recomputing a cached prefix elsewhere adds work that every later
//!   request on that worker waits for too, so `q` < 1 saves total work (a higher hit rate).
//!   docs/BENCHMARKS.md measured 8 / 0.25 ahead of 1 / 1 (Dynamo's weights) in TTFT and hit rate on
//!   the Mooncake trace at every load and pool size it tried.
//!
//! For a request of `T` prompt tokens and a worker `w` holding its first `o_w` blocks, with `P_w`
//! prompt tokens already waiting for prefill there and `D_w` blocks in decode:
//!
//! ```text
//! request_blocks = ceil(T / B)                       blocks the request will occupy
//! prefill_blocks = (T − o_w·B + q·P_w) / B           prefill work on w after this request, in blocks
//! decode_blocks  = D_w + request_blocks − o_w        blocks in use on w after this request
//! logit          = α · prefill_blocks + decode_blocks
//! ```
//!
//! With tiers (`--kv-tier-weights`), `o_w` is the worker's run of leading blocks held in any
//! tier and the prefill it saves is weighted: `õ_w = Σ weight(tier of block)` over the run,
//! and only the run's device blocks `d_w` are shared (a block onboarded from G2/G3 takes a new
//! pool block):
//!
//! ```text
//! prefill_blocks = (T − õ_w·B + q·P_w) / B
//! decode_blocks  = D_w + request_blocks − d_w
//! ```
//!
//! With every block on the device (`õ_w = d_w = o_w`) this is the formula above.
//!
//! Lower is better. `prefill_blocks` is fractional (a partial block is partial work); a cached
//! prefix can never exceed the request's full blocks, so `T − o_w·B ≥ 0`.
//!
//! The `o_w` blocks a worker already holds are shared, not copied: the pool keeps one block per
//! hash however many sequences use it, and a worker's reported blocks in use count it once. So
//! sending a request where its prefix lives adds only its other blocks to the worker's memory and
//! to its decode-step cost. Counting the whole request there instead would charge a worker for the
//! very blocks that make it the right choice, and push a conversation's requests away from the
//! worker that caches it whenever that worker is busy with the same conversation.

use serde::{Deserialize, Serialize};

use crate::load_tracker::ActiveLoad;
use crate::overlap::Overlap;

/// The terms of one worker's cost, kept for logging and the decision record.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CostTerms {
    /// Blocks of the request the worker already holds, any tier (`o_w`).
    pub overlap_blocks: usize,
    /// Of those, blocks in the engine's pool (`d_w`).
    #[serde(default)]
    pub device_overlap_blocks: usize,
    /// The overlap weighted by tier (`õ_w`).
    #[serde(default)]
    pub weighted_overlap_blocks: f64,
    /// Prefill work on the worker after this request, in blocks (its queue weighted by `q`).
    pub prefill_blocks: f64,
    /// Blocks in use on the worker after this request.
    pub decode_blocks: f64,
    /// `kv_overlap_weight · prefill_blocks + decode_blocks`.
    pub logit: f64,
}

/// The router's cost function. See the module docs for the formula.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CostFunction {
    pub block_size_tokens: usize,
    pub kv_overlap_weight: f64,
    pub queue_weight: f64,
}

impl CostFunction {
    /// Blocks a request of `request_tokens` tokens occupies.
    pub fn request_blocks(&self, request_tokens: usize) -> usize {
        request_tokens.div_ceil(self.block_size_tokens)
    }

    /// Blocks a request adds to a worker that already holds its first `overlap_blocks` blocks.
    pub fn new_blocks(&self, request_tokens: usize, overlap_blocks: usize) -> usize {
        self.request_blocks(request_tokens)
            .saturating_sub(overlap_blocks)
    }

    /// The cost terms of sending a `request_tokens`-token request to a worker that holds its
    /// first `overlap_blocks` blocks in its engine pool and carries `load`.
    pub fn terms(
        &self,
        request_tokens: usize,
        overlap_blocks: usize,
        load: ActiveLoad,
    ) -> CostTerms {
        self.tiered_terms(request_tokens, Overlap::device(overlap_blocks), load)
    }

    /// The cost terms of sending a `request_tokens`-token request to a worker with `overlap`
    /// (per tier, weighted) that carries `load`.
    pub fn tiered_terms(
        &self,
        request_tokens: usize,
        overlap: Overlap,
        load: ActiveLoad,
    ) -> CostTerms {
        let block = self.block_size_tokens as f64;
        let cached_tokens = (overlap.weighted_blocks * block).min(request_tokens as f64);
        let new_tokens = request_tokens as f64 - cached_tokens;
        let prefill_blocks = (new_tokens + self.queue_weight * load.prefill_tokens as f64) / block;
        let decode_blocks = load.decode_blocks as f64
            + self.new_blocks(request_tokens, overlap.device_blocks()) as f64;
        CostTerms {
            overlap_blocks: overlap.blocks,
            device_overlap_blocks: overlap.device_blocks(),
            weighted_overlap_blocks: overlap.weighted_blocks,
            prefill_blocks,
            decode_blocks,
            logit: self.kv_overlap_weight * prefill_blocks + decode_blocks,
        }
    }
}

//! The Llama-family decoder: weights loaded from GGUF and a batched forward pass over the paged KV
//! cache, for every architecture in [`SUPPORTED_ARCHS`]. An architecture is a config, not a copy
//! of the forward: [`ArchFeatures`] lists its differences (RoPE pairing, QK-norm, post-norms,
//! GeGLU, embedding scale, sliding windows, logit soft-cap) and the one forward (and its naive
//! reference) has a small hook for each.
//!
//! One [`LlamaModel::forward`] call runs a *step*: any number of [`SeqChunk`]s, each appending
//! tokens to one sequence. All tokens of all chunks go through every matrix product together, so
//! a step with 16 decoding sequences reads each weight once.

mod arch;
mod config;
mod forward;
mod parallel;
mod reference;
mod weights;

use std::sync::Mutex;

pub use arch::{ArchFeatures, SlidingWindow, SUPPORTED_ARCHS};
pub use config::LlamaConfig;
pub use reference::ReferenceForward;

use crate::gguf::GgufFile;
use crate::ops::{RopeSpec, RopeTable};
use crate::pool::ThreadPool;
use crate::Error;
use forward::Scratch;
use weights::Weights;

/// Positions covered by the precomputed RoPE table; later positions compute their angles on the fly.
const ROPE_TABLE_POSITIONS: usize = 16_384;

/// How to load a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LoadOptions {
    /// Threads of the model's pool, counting the thread that calls `forward`; 0 = available cores.
    pub threads: usize,
}

/// One sequence's part of a step: `tokens` go to positions `start_pos..start_pos + tokens.len()`,
/// whose K/V are written into the blocks of `block_table` (position `p` in block
/// `block_table[p / block_size]`). Positions before `start_pos` must already be in the cache.
#[derive(Debug, Clone, Copy)]
pub struct SeqChunk<'a> {
    pub tokens: &'a [u32],
    pub start_pos: usize,
    pub block_table: &'a [u32],
    /// Produce the logits of this chunk's last token.
    pub want_logits: bool,
}

/// What one chunk of a step returns, for [`LlamaModel::forward_outputs`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkOutput {
    /// Only its K/V is written.
    Nothing,
    /// The logits of its last token (sampling the next token).
    LastLogits,
    /// The logits of every token (scoring a prompt: the logprob of each next prompt token).
    AllLogits,
    /// The final hidden state of every token, after the output norm (embeddings).
    Hidden,
}

/// A loaded Llama-family model. `Send + Sync`; concurrent `forward` calls are serialised.
pub struct LlamaModel {
    cfg: LlamaConfig,
    weights: Weights,
    /// RoPE of the full-attention layers.
    rope: RopeTable,
    /// RoPE of the sliding-window layers, when the model has them.
    rope_windowed: Option<RopeTable>,
    pool: ThreadPool,
    scratch: Mutex<Scratch>,
    /// Keeps the memory map (which the weights point into) alive.
    _file: GgufFile,
}

impl std::fmt::Debug for LlamaModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LlamaModel")
            .field("cfg", &self.cfg)
            .field("threads", &self.pool.threads())
            .finish()
    }
}

impl LlamaModel {
    /// Reads the config, checks every tensor's presence, type and shape (errors name the tensor)
    /// and starts the thread pool. Weights stay in the file's memory map.
    pub fn load(gguf: &GgufFile, opts: LoadOptions) -> Result<LlamaModel, Error> {
        let cfg = LlamaConfig::from_gguf(gguf)?;
        let weights = Weights::load(gguf, &cfg)?;
        let positions = cfg.context_length.min(ROPE_TABLE_POSITIONS);
        let table = |spec: RopeSpec| RopeTable::new(spec, positions);
        let full = (0..cfg.n_layers).find(|&l| !cfg.is_windowed(l));
        let windowed = (0..cfg.n_layers).find(|&l| cfg.is_windowed(l));
        Ok(LlamaModel {
            weights,
            rope: table(cfg.layer_rope(full.unwrap_or(0))),
            rope_windowed: windowed.map(|l| table(cfg.layer_rope(l))),
            pool: ThreadPool::new(opts.threads),
            scratch: Mutex::new(Scratch::default()),
            _file: gguf.clone(),
            cfg,
        })
    }

    pub fn config(&self) -> &LlamaConfig {
        &self.cfg
    }

    /// The RoPE table of layer `layer`.
    fn rope_of(&self, layer: usize) -> &RopeTable {
        match &self.rope_windowed {
            Some(table) if self.cfg.is_windowed(layer) => table,
            _ => &self.rope,
        }
    }

    /// Threads the forward pass uses.
    pub fn threads(&self) -> usize {
        self.pool.threads()
    }
}

//! `NativeRunner`: the real `ModelRunner`, `rotor_model`'s Llama forward over its own paged KV
//! storage.

use std::sync::Arc;

use rotor_model::{KvDtype, KvStorage, LlamaConfig, LlamaModel, SeqChunk};

use crate::config::EngineConfig;
use crate::error::RunnerError;
use crate::runner::{KvLayout, ModelRunner, ScheduledChunk};

/// Runs steps on a loaded `LlamaModel`; owns the KV blocks the scheduler allocates from.
pub struct NativeRunner {
    model: Arc<LlamaModel>,
    kv: KvStorage,
    /// The model's view of a step, kept empty between steps only to reuse its allocation.
    batch: Vec<SeqChunk<'static>>,
}

impl NativeRunner {
    /// KV storage shaped by `cfg` (`num_blocks` × `block_size_tokens`) in `dtype`.
    pub fn new(model: Arc<LlamaModel>, cfg: &EngineConfig, dtype: KvDtype) -> Self {
        let kv = KvStorage::new(model.config(), cfg.num_blocks, cfg.block_size_tokens, dtype);
        Self {
            model,
            kv,
            batch: Vec::new(),
        }
    }

    /// How many blocks of `block_size_tokens` fit in `budget_bytes` of KV memory (for
    /// `EngineConfig::num_blocks`).
    pub fn num_blocks_for_budget(
        model_cfg: &LlamaConfig,
        block_size_tokens: usize,
        dtype: KvDtype,
        budget_bytes: usize,
    ) -> usize {
        let per_block = KvStorage::bytes_per_block(model_cfg, block_size_tokens, dtype).max(1);
        budget_bytes / per_block
    }

    pub fn model(&self) -> &Arc<LlamaModel> {
        &self.model
    }
}

impl ModelRunner for NativeRunner {
    fn vocab_size(&self) -> usize {
        self.model.config().vocab_size
    }

    fn context_length(&self) -> usize {
        self.model.config().context_length
    }

    fn kv_layout(&self) -> Option<KvLayout> {
        Some(KvLayout {
            num_blocks: self.kv.num_blocks(),
            block_size_tokens: self.kv.block_size_tokens(),
        })
    }

    fn step(
        &mut self,
        chunks: &[ScheduledChunk<'_>],
        logits: &mut Vec<f32>,
    ) -> Result<(), RunnerError> {
        let mut batch = reuse_empty(std::mem::take(&mut self.batch));
        batch.extend(chunks.iter().map(|c| SeqChunk {
            tokens: c.tokens,
            start_pos: c.start_pos,
            block_table: c.block_table,
            want_logits: c.want_logits,
        }));
        let result = self
            .model
            .forward(&batch, &mut self.kv, logits)
            .map_err(|e| RunnerError::Model(e.to_string()));
        self.batch = reuse_empty(batch);
        result
    }
}

/// Empties `v` and hands its allocation back under another lifetime (see `core::reuse_empty`).
fn reuse_empty<'a, 'b>(mut v: Vec<SeqChunk<'a>>) -> Vec<SeqChunk<'b>> {
    v.clear();
    v.into_iter()
        .map(|_| unreachable!("invariant: the vector was emptied"))
        .collect()
}

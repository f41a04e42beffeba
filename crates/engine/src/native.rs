//! `NativeRunner`: the real `ModelRunner`, `rotor_model`'s Llama forward over its own paged KV
//! storage.

use std::sync::Arc;

use rotor_kv_cache::{model_fingerprint, KvBlockLayout, KvElementType, KvPayloadLayout};
use rotor_model::{ChunkOutput, KvDtype, KvStorage, LlamaConfig, LlamaModel, SeqChunk};

use crate::config::EngineConfig;
use crate::constraint::ConstraintVocab;
use crate::error::RunnerError;
use crate::runner::{ChunkOutputKind, KvLayout, ModelRunner, ScheduledChunk};

/// Runs steps on a loaded `LlamaModel`; owns the KV blocks the scheduler allocates from.
pub struct NativeRunner {
    model: Arc<LlamaModel>,
    kv: KvStorage,
    /// Identity of the model in exported KV blocks (see `with_model_fingerprint`).
    model_fingerprint: u64,
    /// The model's view of a step, kept empty between steps only to reuse its allocation.
    batch: Vec<SeqChunk<'static>>,
    /// `step_outputs`' per-chunk outputs in the model's terms, kept only to reuse the allocation.
    outputs: Vec<ChunkOutput>,
    /// The tokenizer vocabulary for constrained sampling (`with_constraint_vocab`).
    constraint_vocab: Option<Arc<ConstraintVocab>>,
}

impl NativeRunner {
    /// KV storage shaped by `cfg` (`num_blocks` × `block_size_tokens`) in `dtype`.
    pub fn new(model: Arc<LlamaModel>, cfg: &EngineConfig, dtype: KvDtype) -> Self {
        let kv = KvStorage::new(model.config(), cfg.num_blocks, cfg.block_size_tokens, dtype);
        Self {
            model_fingerprint: config_fingerprint(model.config()),
            model,
            kv,
            batch: Vec::new(),
            outputs: Vec::new(),
            constraint_vocab: None,
        }
    }

    /// Gives the engine built on this runner the model's vocabulary, so it can enforce
    /// grammar constraints (`SamplingParams::constraint`).
    pub fn with_constraint_vocab(mut self, vocab: Arc<ConstraintVocab>) -> Self {
        self.constraint_vocab = Some(vocab);
        self
    }

    /// Sets the model identity written into (and required of) KV blocks this runner exports and
    /// imports. The default, [`config_fingerprint`], covers the architecture and every shape but
    /// not the weights: a caller that can serve two models of one shape (fine-tunes) passes a
    /// fingerprint that includes a digest of the weights.
    pub fn with_model_fingerprint(mut self, fingerprint: u64) -> Self {
        self.model_fingerprint = fingerprint;
        self
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

    fn constraint_vocab(&self) -> Option<Arc<ConstraintVocab>> {
        self.constraint_vocab.clone()
    }

    fn kv_layout(&self) -> Option<KvLayout> {
        Some(KvLayout {
            num_blocks: self.kv.num_blocks(),
            block_size_tokens: self.kv.block_size_tokens(),
        })
    }

    fn kv_block_layout(&self) -> Option<KvBlockLayout> {
        let shape = self.kv.block_shape();
        Some(KvBlockLayout {
            model_fingerprint: self.model_fingerprint,
            n_layers: shape.n_layers as u32,
            n_kv_heads: shape.n_kv_heads as u32,
            head_dim: shape.head_dim as u32,
            block_size_tokens: shape.block_size_tokens as u32,
            dtype: match shape.dtype {
                KvDtype::F32 => KvElementType::F32,
                KvDtype::F16 => KvElementType::F16,
            },
            // `KvStorage`'s block image is per layer K then V, each [kv_head][slot][dim].
            payload_layout: KvPayloadLayout::LayerKvHeadSlot,
        })
    }

    fn read_kv_block(&self, block: u32, out: &mut Vec<u8>) -> Result<(), RunnerError> {
        self.kv
            .read_block_bytes(block, out)
            .map_err(|e| RunnerError::KvBlockAccess(e.to_string()))
    }

    fn write_kv_block(&mut self, block: u32, payload: &[u8]) -> Result<(), RunnerError> {
        self.kv
            .write_block_bytes(block, payload)
            .map_err(|e| RunnerError::KvBlockAccess(e.to_string()))
    }

    fn supports_kv_copy(&self) -> bool {
        true
    }

    fn copy_kv_block(&mut self, src: u32, dst: u32) -> Result<(), RunnerError> {
        let n = self.kv.num_blocks();
        if src as usize >= n || dst as usize >= n {
            return Err(RunnerError::KvBlockAccess(format!(
                "cannot copy block {src} to {dst}: the pool has {n} blocks"
            )));
        }
        self.kv.copy_block(src, dst);
        Ok(())
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

    fn supports_step_outputs(&self) -> bool {
        true
    }

    fn step_outputs(
        &mut self,
        chunks: &[ScheduledChunk<'_>],
        outputs: &[ChunkOutputKind],
        logits: &mut Vec<f32>,
        hidden: &mut Vec<f32>,
    ) -> Result<bool, RunnerError> {
        let mut batch = reuse_empty(std::mem::take(&mut self.batch));
        batch.extend(chunks.iter().map(|c| SeqChunk {
            tokens: c.tokens,
            start_pos: c.start_pos,
            block_table: c.block_table,
            want_logits: c.want_logits,
        }));
        self.outputs.clear();
        self.outputs.extend(outputs.iter().map(|o| match o {
            ChunkOutputKind::Nothing => ChunkOutput::Nothing,
            ChunkOutputKind::LastLogits => ChunkOutput::LastLogits,
            ChunkOutputKind::AllLogits => ChunkOutput::AllLogits,
            ChunkOutputKind::Hidden => ChunkOutput::Hidden,
        }));
        let result = self
            .model
            .forward_outputs(&batch, &self.outputs, &mut self.kv, logits, hidden)
            .map(|()| true)
            .map_err(|e| RunnerError::Model(e.to_string()));
        self.batch = reuse_empty(batch);
        result
    }
}

/// The default model fingerprint of KV blocks: a hash of the architecture and every shape and
/// numeric setting in `cfg` (its `Debug` form, so any new field is covered), not of the weights.
pub fn config_fingerprint(cfg: &LlamaConfig) -> u64 {
    model_fingerprint(format!("rotor-llama {cfg:?}").as_bytes())
}

/// Empties `v` and hands its allocation back under another lifetime (see `core::reuse_empty`).
fn reuse_empty<'a, 'b>(mut v: Vec<SeqChunk<'a>>) -> Vec<SeqChunk<'b>> {
    v.clear();
    v.into_iter()
        .map(|_| unreachable!("invariant: the vector was emptied"))
        .collect()
}

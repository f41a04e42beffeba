//! The seam between the scheduler and whatever computes logits: `ModelRunner`.

use std::sync::Arc;

use rotor_kv_cache::KvBlockLayout;

use crate::constraint::ConstraintVocab;
use crate::error::RunnerError;

/// One sequence's slice of a step, as the scheduler hands it to a runner.
///
/// The chunk appends `tokens` at positions `start_pos..start_pos + tokens.len()`. Position `p`
/// lives in KV block `block_table[p / block_size_tokens]`, slot `p % block_size_tokens`; the
/// table covers at least every position up to the chunk's last.
#[derive(Debug, Clone, Copy)]
pub struct ScheduledChunk<'a> {
    pub tokens: &'a [u32],
    pub start_pos: usize,
    pub block_table: &'a [u32],
    /// Whether the logits of this chunk's last token are wanted (the sequence samples next).
    pub want_logits: bool,
}

/// What one chunk of a `ModelRunner::step_outputs` step returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkOutputKind {
    /// Only its K/V is written.
    Nothing,
    /// The logits of its last token (the sequence samples next).
    LastLogits,
    /// The logits of every token (prompt scoring).
    AllLogits,
    /// The final hidden state (after the output norm) of every token (embeddings).
    Hidden,
}

/// The KV block layout a runner was built with; the scheduler allocates from exactly this pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KvLayout {
    pub num_blocks: usize,
    pub block_size_tokens: usize,
}

/// Computes next-token logits for a batch of sequence chunks over paged KV storage.
pub trait ModelRunner: Send + 'static {
    fn vocab_size(&self) -> usize;
    fn context_length(&self) -> usize;
    /// The KV pool this runner owns, if it owns one; `Engine::start` checks it against the config.
    fn kv_layout(&self) -> Option<KvLayout> {
        None
    }
    /// The model's vocabulary for grammar-constrained sampling, if the runner was given one;
    /// `EngineCore::new` takes it (without one, constrained requests are refused).
    fn constraint_vocab(&self) -> Option<Arc<ConstraintVocab>> {
        None
    }
    /// The layout of the KV block payloads this runner copies out and in (`read_kv_block`,
    /// `write_kv_block`), for the engine's KV export/import; `None` (the default) if it has none.
    fn kv_block_layout(&self) -> Option<KvBlockLayout> {
        None
    }
    /// Appends the payload of pool block `block` (every layer's K and V, in the layout's
    /// payload order: exactly `payload_bytes()` bytes) to `out`.
    fn read_kv_block(&self, _block: u32, _out: &mut Vec<u8>) -> Result<(), RunnerError> {
        Err(RunnerError::KvBlockAccess(
            "this runner has no KV blocks to export".into(),
        ))
    }
    /// Overwrites pool block `block` with a payload in the layout of `kv_block_layout`.
    fn write_kv_block(&mut self, _block: u32, _payload: &[u8]) -> Result<(), RunnerError> {
        Err(RunnerError::KvBlockAccess(
            "this runner has no KV blocks to import into".into(),
        ))
    }
    /// Whether `copy_kv_block` works; without it the engine never plans a copy (sibling
    /// sequences of an `n > 1` request recompute their prompt's last block instead of copying it).
    fn supports_kv_copy(&self) -> bool {
        false
    }
    /// Copies pool block `src`'s K/V (every layer, every slot) over block `dst`: the
    /// copy-on-write of a prompt block computed by another sequence, made before the step that
    /// writes to `dst`.
    fn copy_kv_block(&mut self, _src: u32, _dst: u32) -> Result<(), RunnerError> {
        Err(RunnerError::KvBlockAccess(
            "this runner cannot copy KV blocks".into(),
        ))
    }
    /// Runs one step. `logits` gets n_want × vocab f32: for each chunk with `want_logits`, in
    /// order, the logits of its last token.
    fn step(
        &mut self,
        chunks: &[ScheduledChunk<'_>],
        logits: &mut Vec<f32>,
    ) -> Result<(), RunnerError>;
    /// Runs one step in a runner that picks each next token itself (a simulator such as the
    /// mocker), skipping logits and sampling: `tokens` gets one id per chunk with `want_logits`,
    /// in order. Returns `Ok(false)` without running anything if the runner does not support
    /// it (the default); the engine then calls `step`.
    fn step_tokens(
        &mut self,
        _chunks: &[ScheduledChunk<'_>],
        _tokens: &mut Vec<u32>,
    ) -> Result<bool, RunnerError> {
        Ok(false)
    }
    /// Whether `step_outputs` is implemented: without it the engine refuses prompt logprobs and
    /// embeddings at submission.
    fn supports_step_outputs(&self) -> bool {
        false
    }
    /// Runs one step with what each chunk returns chosen by `outputs[c]` (in place of
    /// `want_logits`): `logits` gets, in chunk order, one vocab row per `LastLogits` chunk and
    /// one per token of each `AllLogits` chunk; `hidden` one hidden-size row per token of each
    /// `Hidden` chunk. Returns `Ok(false)` without running anything if the runner does not
    /// support it (the default). The engine calls it only for steps with a scoring or
    /// embedding chunk; other steps stay on `step`.
    fn step_outputs(
        &mut self,
        _chunks: &[ScheduledChunk<'_>],
        _outputs: &[ChunkOutputKind],
        _logits: &mut Vec<f32>,
        _hidden: &mut Vec<f32>,
    ) -> Result<bool, RunnerError> {
        Ok(false)
    }
}

//! `ScriptedRunner`: a deterministic test double for `ModelRunner` (no model, no arithmetic).
//!
//! It behaves like a model over paged KV in the ways the scheduler can get wrong: each chunk
//! writes its tokens into the KV slots named by its block table, and the "logits" of a chunk's
//! last token depend on the whole context as read back from those slots. A wrong block table, a
//! block shared by two sequences or a skipped position therefore changes the output or fails the
//! step. The next token is `ScriptedRunner::next_token(context)`: a hash of the context modulo
//! the vocabulary, given logit 10.0 with all others 0.0 (so greedy picks it).
//!
//! KV export/import move its slots: a block's payload (layout: one layer, one KV head, head_dim
//! 1, "f32") holds each slot's token as K and its position as V, as little-endian u32
//! (`u32::MAX` twice for an empty slot). An imported block is therefore read back by later
//! steps exactly as if it had been computed here — and a wrong one changes the output.

use std::time::Duration;

use rotor_kv_cache::{model_fingerprint, KvBlockLayout, KvElementType, KvPayloadLayout};

use crate::config::EngineConfig;
use crate::error::RunnerError;
use crate::runner::{KvLayout, ModelRunner, ScheduledChunk};

/// The logit of the scripted next token (all others are 0).
pub const SCRIPTED_LOGIT: f32 = 10.0;

/// Deterministic fake model for tests of the engine and of the crates above it.
#[derive(Debug)]
pub struct ScriptedRunner {
    vocab_size: usize,
    context_length: usize,
    layout: KvLayout,
    /// Per KV slot: (token, position) written there.
    slots: Vec<Option<(u32, usize)>>,
    step_delay: Duration,
    context: Vec<u32>,
}

impl ScriptedRunner {
    pub fn new(vocab_size: usize, context_length: usize, layout: KvLayout) -> Self {
        Self {
            vocab_size,
            context_length,
            layout,
            slots: vec![None; layout.num_blocks * layout.block_size_tokens],
            step_delay: Duration::ZERO,
            context: Vec::new(),
        }
    }

    /// A runner whose KV layout matches `cfg`.
    pub fn for_config(cfg: &EngineConfig, vocab_size: usize, context_length: usize) -> Self {
        let layout = KvLayout {
            num_blocks: cfg.num_blocks,
            block_size_tokens: cfg.block_size_tokens,
        };
        Self::new(vocab_size, context_length, layout)
    }

    /// Sleeps this long in every step (for cancellation and shutdown tests).
    pub fn with_step_delay(mut self, delay: Duration) -> Self {
        self.step_delay = delay;
        self
    }

    /// The scripted model: the token that follows `context` (FNV-1a over the ids, then mixed).
    pub fn next_token(context: &[u32], vocab_size: usize) -> u32 {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for &t in context {
            h ^= u64::from(t);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        h ^= h >> 31;
        h = h.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        h ^= h >> 29;
        (h % vocab_size as u64) as u32
    }

    /// What greedy decoding produces after `prompt`: `n` tokens, no stop tokens.
    pub fn greedy_continuation(prompt: &[u32], n: usize, vocab_size: usize) -> Vec<u32> {
        let mut context = prompt.to_vec();
        for _ in 0..n {
            let next = Self::next_token(&context, vocab_size);
            context.push(next);
        }
        context.split_off(prompt.len())
    }

    /// The slots of `block`.
    fn block_slots(&self, block: u32) -> Result<std::ops::Range<usize>, RunnerError> {
        let (b, bs) = (block as usize, self.layout.block_size_tokens);
        if b >= self.layout.num_blocks {
            return Err(RunnerError::KvBlockAccess(format!(
                "block id {block} is out of range"
            )));
        }
        Ok(b * bs..(b + 1) * bs)
    }

    fn slot(&self, chunk: &ScheduledChunk<'_>, pos: usize) -> Result<usize, RunnerError> {
        let bs = self.layout.block_size_tokens;
        let block = *chunk.block_table.get(pos / bs).ok_or_else(|| {
            RunnerError::InvalidBatch(format!(
                "position {pos} needs block {} but the table has {}",
                pos / bs,
                chunk.block_table.len()
            ))
        })? as usize;
        if block >= self.layout.num_blocks {
            return Err(RunnerError::InvalidBatch(format!(
                "block id {block} is out of range"
            )));
        }
        Ok(block * bs + pos % bs)
    }

    fn write(&mut self, chunk: &ScheduledChunk<'_>) -> Result<(), RunnerError> {
        for (i, &token) in chunk.tokens.iter().enumerate() {
            let pos = chunk.start_pos + i;
            if pos >= self.context_length {
                return Err(RunnerError::InvalidBatch(format!(
                    "position {pos} is beyond the context length {}",
                    self.context_length
                )));
            }
            if token as usize >= self.vocab_size {
                return Err(RunnerError::InvalidBatch(format!(
                    "token {token} is outside the vocabulary"
                )));
            }
            let slot = self.slot(chunk, pos)?;
            self.slots[slot] = Some((token, pos));
        }
        Ok(())
    }

    fn read_context(&mut self, chunk: &ScheduledChunk<'_>) -> Result<(), RunnerError> {
        self.context.clear();
        for pos in 0..chunk.start_pos + chunk.tokens.len() {
            let slot = self.slot(chunk, pos)?;
            match self.slots[slot] {
                Some((token, written_pos)) if written_pos == pos => self.context.push(token),
                other => {
                    return Err(RunnerError::InvalidBatch(format!(
                        "KV slot for position {pos} holds {other:?}, not this sequence's token"
                    )))
                }
            }
        }
        Ok(())
    }
}

impl ModelRunner for ScriptedRunner {
    fn vocab_size(&self) -> usize {
        self.vocab_size
    }

    fn context_length(&self) -> usize {
        self.context_length
    }

    fn kv_layout(&self) -> Option<KvLayout> {
        Some(self.layout)
    }

    fn kv_block_layout(&self) -> Option<KvBlockLayout> {
        let identity = format!("rotor-scripted vocab {}", self.vocab_size);
        Some(KvBlockLayout {
            model_fingerprint: model_fingerprint(identity.as_bytes()),
            n_layers: 1,
            n_kv_heads: 1,
            head_dim: 1,
            block_size_tokens: self.layout.block_size_tokens as u32,
            dtype: KvElementType::F32,
            payload_layout: KvPayloadLayout::LayerKvHeadSlot,
        })
    }

    fn supports_kv_copy(&self) -> bool {
        true
    }

    /// Copies the slots' (token, position) records, so a sequence that attends over a wrongly
    /// copied block fails its step like one that reads a stale slot.
    fn copy_kv_block(&mut self, src: u32, dst: u32) -> Result<(), RunnerError> {
        let (src, dst) = (self.block_slots(src)?, self.block_slots(dst)?);
        self.slots.copy_within(src, dst.start);
        Ok(())
    }

    fn read_kv_block(&self, block: u32, out: &mut Vec<u8>) -> Result<(), RunnerError> {
        let slots = self.block_slots(block)?;
        let slots = &self.slots[slots];
        let empty = (u32::MAX, u32::MAX);
        let pairs = || {
            slots
                .iter()
                .map(|s| s.map_or(empty, |(t, p)| (t, p as u32)))
        };
        for (token, _) in pairs() {
            out.extend_from_slice(&token.to_le_bytes());
        }
        for (_, pos) in pairs() {
            out.extend_from_slice(&pos.to_le_bytes());
        }
        Ok(())
    }

    fn write_kv_block(&mut self, block: u32, payload: &[u8]) -> Result<(), RunnerError> {
        let range = self.block_slots(block)?;
        let bs = range.len();
        if payload.len() != 8 * bs {
            return Err(RunnerError::KvBlockAccess(format!(
                "payload of {} bytes, expected {}",
                payload.len(),
                8 * bs
            )));
        }
        let word = |c: &[u8]| u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        let (keys, values) = payload.split_at(4 * bs);
        let pairs = keys.chunks_exact(4).zip(values.chunks_exact(4));
        for (slot, (k, v)) in self.slots[range].iter_mut().zip(pairs) {
            let (token, pos) = (word(k), word(v));
            *slot = (token != u32::MAX).then_some((token, pos as usize));
        }
        Ok(())
    }

    fn step(
        &mut self,
        chunks: &[ScheduledChunk<'_>],
        logits: &mut Vec<f32>,
    ) -> Result<(), RunnerError> {
        if !self.step_delay.is_zero() {
            std::thread::sleep(self.step_delay);
        }
        for chunk in chunks {
            self.write(chunk)?;
        }
        logits.clear();
        for chunk in chunks.iter().filter(|c| c.want_logits) {
            self.read_context(chunk)?;
            let next = Self::next_token(&self.context, self.vocab_size);
            let row = logits.len();
            logits.resize(row + self.vocab_size, 0.0);
            logits[row + next as usize] = SCRIPTED_LOGIT;
        }
        Ok(())
    }
}

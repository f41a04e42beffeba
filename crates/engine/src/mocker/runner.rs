//! `MockerRunner`: a `ModelRunner` that computes nothing. Each step measures the batch's
//! `StepShape`, writes cheap logits and waits out the modelled step time.
//!
//! Logits: per row, `-inf` everywhere except 0.0 at the palette token of the position being
//! predicted (`output_tokens`), so greedy and every temperature / top-k / top-p / min-p /
//! penalty setting yield that token. `step_tokens` (the `ModelRunner` hook for simulators)
//! returns those tokens directly, sparing the engine the vocabulary-wide fill and sampling.
//!
//! Pacing: steps are chained on a simulated clock. A step starts when the previous one ended if
//! the engine asked for it within the modelled duration of this step (the engine's own work
//! between steps — sampling, scheduling — is then part of the modelled time instead of adding
//! to it), otherwise now (the engine was idle). The runner sleeps until the step's end.
//!
//! KV export/import: the mocker has no KV values, but it speaks the same block format so
//! routing and disaggregation can be simulated: blocks carry the real token ids and hashes, the
//! layout of `MockerConfig::kv_shape` (by default that of SmolLM2-135M in f16, so byte counts
//! are realistic) and an all-zero payload; an import checks the payload length and discards it.

use std::time::{Duration, Instant};

use rotor_kv_cache::{model_fingerprint, KvBlockLayout, KvElementType, KvPayloadLayout};

use super::error::MockerError;
use super::output_tokens::default_output_token_ids;
use super::shape::{ShapeCounter, StepShape};
use super::sim_clock::MockerClock;
use super::timing::MockerTiming;
use crate::config::EngineConfig;
use crate::error::RunnerError;
use crate::runner::{KvLayout, ModelRunner, ScheduledChunk};

/// What a mocker simulates.
#[derive(Debug, Clone, PartialEq)]
pub struct MockerConfig {
    pub timing: MockerTiming,
    /// Modelled times are divided by this (> 0).
    pub speedup: f64,
    /// The KV pool (the engine's `EngineConfig` must have the same).
    pub num_blocks: usize,
    pub block_size_tokens: usize,
    /// Of the model the mocker stands in for.
    pub vocab_size: usize,
    pub context_length: usize,
    /// Tokens generated, by position (see `output_tokens`): non-empty, inside the vocabulary and
    /// never a stop token of the model.
    pub output_token_ids: Vec<u32>,
    /// The KV shape of the model it stands in for: the layout (and byte size) of the blocks it
    /// exports and imports.
    pub kv_shape: MockerKvShape,
    /// Sleep out each step (a live engine, the default) or add it to a simulator's clock.
    pub clock: MockerClock,
}

/// The per-block KV shape a mocker reports for export/import (its block size is the pool's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MockerKvShape {
    pub n_layers: u32,
    pub n_kv_heads: u32,
    pub head_dim: u32,
    pub dtype: KvElementType,
}

impl Default for MockerKvShape {
    /// SmolLM2-135M-Instruct (the default model) with f16 KV: 23,040 bytes per token.
    fn default() -> Self {
        Self {
            n_layers: 30,
            n_kv_heads: 3,
            head_dim: 64,
            dtype: KvElementType::F16,
        }
    }
}

impl MockerConfig {
    /// A mocker with `engine`'s KV pool, at speedup 1, generating `default_output_token_ids`
    /// (set `output_token_ids` from `ordinary_token_ids` when the tokenizer is at hand).
    pub fn new(
        timing: MockerTiming,
        engine: &EngineConfig,
        vocab_size: usize,
        context_length: usize,
    ) -> Self {
        Self {
            timing,
            speedup: 1.0,
            num_blocks: engine.num_blocks,
            block_size_tokens: engine.block_size_tokens,
            vocab_size,
            context_length,
            output_token_ids: default_output_token_ids(vocab_size),
            kv_shape: MockerKvShape::default(),
            clock: MockerClock::WallClock,
        }
    }

    pub fn validate(&self) -> Result<(), MockerError> {
        let invalid = |field, reason: String| Err(MockerError::InvalidConfig { field, reason });
        if !(self.speedup.is_finite() && self.speedup > 0.0) {
            return invalid(
                "speedup",
                format!("{} is not a positive number", self.speedup),
            );
        }
        for (field, value) in [
            ("num_blocks", self.num_blocks),
            ("block_size_tokens", self.block_size_tokens),
            ("vocab_size", self.vocab_size),
            ("context_length", self.context_length),
            ("kv_shape.n_layers", self.kv_shape.n_layers as usize),
            ("kv_shape.n_kv_heads", self.kv_shape.n_kv_heads as usize),
            ("kv_shape.head_dim", self.kv_shape.head_dim as usize),
        ] {
            if value == 0 {
                return invalid(field, "must be at least 1".into());
            }
        }
        if self.num_blocks > u32::MAX as usize {
            return invalid("num_blocks", "block ids are u32".into());
        }
        if self.output_token_ids.is_empty() {
            return invalid("output_token_ids", "must not be empty".into());
        }
        if let Some(t) = self
            .output_token_ids
            .iter()
            .find(|&&t| t as usize >= self.vocab_size)
        {
            return invalid(
                "output_token_ids",
                format!("token {t} is outside the vocabulary of {}", self.vocab_size),
            );
        }
        Ok(())
    }
}

/// The simulated runner. See the module docs.
#[derive(Debug)]
pub struct MockerRunner {
    cfg: MockerConfig,
    counter: ShapeCounter,
    /// End of the last step on the simulated clock.
    clock: Option<Instant>,
    last_shape: StepShape,
    last_duration: Duration,
}

impl MockerRunner {
    pub fn new(cfg: MockerConfig) -> Result<Self, MockerError> {
        cfg.validate()?;
        let counter = ShapeCounter::new(
            cfg.num_blocks,
            cfg.block_size_tokens,
            cfg.vocab_size,
            cfg.context_length,
        );
        Ok(Self {
            cfg,
            counter,
            clock: None,
            last_shape: StepShape::default(),
            last_duration: Duration::ZERO,
        })
    }

    pub fn config(&self) -> &MockerConfig {
        &self.cfg
    }

    /// The token generated at `position` (the position the new token will occupy).
    pub fn output_token(&self, position: usize) -> u32 {
        let palette = &self.cfg.output_token_ids;
        palette[position % palette.len()]
    }

    /// The shape and modelled wall time of `chunks`, without waiting or writing logits.
    pub fn plan_step(
        &mut self,
        chunks: &[ScheduledChunk<'_>],
    ) -> Result<(StepShape, Duration), RunnerError> {
        let shape = self.counter.measure(chunks)?;
        let duration = self.cfg.timing.step_duration(&shape, self.cfg.speedup);
        Ok((shape, duration))
    }

    /// The shape and modelled wall time of the last step.
    pub fn last_step(&self) -> (StepShape, Duration) {
        (self.last_shape, self.last_duration)
    }

    /// Payload bytes of one block, after checking `block` exists.
    fn kv_payload_bytes(&self, block: u32) -> Result<usize, RunnerError> {
        if block as usize >= self.cfg.num_blocks {
            return Err(RunnerError::KvBlockAccess(format!(
                "block id {block} is out of range"
            )));
        }
        self.kv_block_layout()
            .and_then(|l| l.payload_bytes())
            .ok_or_else(|| RunnerError::KvBlockAccess("the KV shape overflows usize".into()))
    }

    fn write_logits(&self, chunks: &[ScheduledChunk<'_>], logits: &mut Vec<f32>) {
        let vocab = self.cfg.vocab_size;
        let rows = chunks.iter().filter(|c| c.want_logits).count();
        logits.clear();
        logits.resize(rows * vocab, f32::NEG_INFINITY);
        let wanted = chunks.iter().filter(|c| c.want_logits);
        for (row, chunk) in logits.chunks_exact_mut(vocab).zip(wanted) {
            let next_pos = chunk.start_pos + chunk.tokens.len();
            row[self.output_token(next_pos) as usize] = 0.0;
        }
    }

    fn wait(&mut self, start_of_call: Instant, duration: Duration) {
        if let MockerClock::Simulated(clock) = &self.cfg.clock {
            clock.advance(duration);
            return;
        }
        let start = match self.clock {
            Some(prev_end) if start_of_call <= prev_end + duration => prev_end,
            _ => start_of_call,
        };
        let end = start + duration;
        self.clock = Some(end);
        let now = Instant::now();
        if end > now {
            std::thread::sleep(end - now);
        }
    }
}

impl ModelRunner for MockerRunner {
    fn vocab_size(&self) -> usize {
        self.cfg.vocab_size
    }

    fn context_length(&self) -> usize {
        self.cfg.context_length
    }

    fn kv_layout(&self) -> Option<KvLayout> {
        Some(KvLayout {
            num_blocks: self.cfg.num_blocks,
            block_size_tokens: self.cfg.block_size_tokens,
        })
    }

    fn kv_block_layout(&self) -> Option<KvBlockLayout> {
        let shape = self.cfg.kv_shape;
        let identity = format!("rotor-mocker vocab {} shape {shape:?}", self.cfg.vocab_size);
        Some(KvBlockLayout {
            model_fingerprint: model_fingerprint(identity.as_bytes()),
            n_layers: shape.n_layers,
            n_kv_heads: shape.n_kv_heads,
            head_dim: shape.head_dim,
            block_size_tokens: self.cfg.block_size_tokens as u32,
            dtype: shape.dtype,
            payload_layout: KvPayloadLayout::LayerKvHeadSlot,
        })
    }

    fn supports_kv_copy(&self) -> bool {
        true
    }

    /// Nothing to copy (the mocker computes no KV); checks the ids.
    fn copy_kv_block(&mut self, src: u32, dst: u32) -> Result<(), RunnerError> {
        self.kv_payload_bytes(src)?;
        self.kv_payload_bytes(dst)?;
        Ok(())
    }

    /// Zeros: the mocker computes no KV.
    fn read_kv_block(&self, block: u32, out: &mut Vec<u8>) -> Result<(), RunnerError> {
        let bytes = self.kv_payload_bytes(block)?;
        out.resize(out.len() + bytes, 0);
        Ok(())
    }

    /// Checks the length and discards the payload.
    fn write_kv_block(&mut self, block: u32, payload: &[u8]) -> Result<(), RunnerError> {
        let bytes = self.kv_payload_bytes(block)?;
        if payload.len() != bytes {
            return Err(RunnerError::KvBlockAccess(format!(
                "payload of {} bytes, expected {bytes}",
                payload.len()
            )));
        }
        Ok(())
    }

    fn step(
        &mut self,
        chunks: &[ScheduledChunk<'_>],
        logits: &mut Vec<f32>,
    ) -> Result<(), RunnerError> {
        let start_of_call = Instant::now();
        let (shape, duration) = self.plan_step(chunks)?;
        self.write_logits(chunks, logits);
        self.last_shape = shape;
        self.last_duration = duration;
        self.wait(start_of_call, duration);
        Ok(())
    }

    /// The same step without logits: the palette tokens directly (no vocabulary-wide work).
    fn step_tokens(
        &mut self,
        chunks: &[ScheduledChunk<'_>],
        tokens: &mut Vec<u32>,
    ) -> Result<bool, RunnerError> {
        let start_of_call = Instant::now();
        let (shape, duration) = self.plan_step(chunks)?;
        tokens.clear();
        tokens.extend(
            chunks
                .iter()
                .filter(|c| c.want_logits)
                .map(|c| self.output_token(c.start_pos + c.tokens.len())),
        );
        self.last_shape = shape;
        self.last_duration = duration;
        self.wait(start_of_call, duration);
        Ok(true)
    }
}

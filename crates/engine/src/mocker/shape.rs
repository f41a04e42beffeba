//! `StepShape`: what a step costs, as the mocker can see it from the scheduler's chunks.
//!
//! - a chunk of exactly one token that wants logits is a **decode**; every other chunk is
//!   **prefill** (prompt chunks, recompute after preemption). The last token of a prompt sent
//!   alone (a chunked prefill ending on one token) therefore counts as a decode: it costs what a
//!   decode costs.
//! - `prefill_tokens` (Dynamo's T) is the sum of prefill chunk lengths: cached prefix tokens are
//!   never sent to the runner, so T is the uncached prompt tokens of the step.
//! - `kv_blocks_in_use` counts the distinct block ids in the block tables of the step's chunks (a
//!   prefix block shared by several sequences counts once); `kv_usage` (Dynamo's u) divides it by
//!   the pool's `num_blocks`. Running sequences left out of a step (budget) are not counted.
//! - `attention_pairs` sums, over every computed token, the positions it attends to
//!   (a chunk of n tokens starting at s: n·s + n(n+1)/2).

use crate::error::RunnerError;
use crate::runner::ScheduledChunk;

/// The step features the timing models use.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct StepShape {
    /// Tokens of prefill chunks (uncached prompt tokens).
    pub prefill_tokens: usize,
    /// One-token chunks that want logits.
    pub decode_seqs: usize,
    /// All tokens computed in the step.
    pub total_tokens: usize,
    /// Chunks that want logits (rows of the LM head).
    pub logit_rows: usize,
    /// Query-key pairs of attention over the step.
    pub attention_pairs: u64,
    /// Distinct KV blocks in the step's block tables.
    pub kv_blocks_in_use: usize,
    /// Blocks in the pool.
    pub num_blocks: usize,
}

impl StepShape {
    /// Fraction of the pool the step's sequences hold, in [0, 1].
    pub fn kv_usage(&self) -> f64 {
        if self.num_blocks == 0 {
            return 0.0;
        }
        self.kv_blocks_in_use as f64 / self.num_blocks as f64
    }
}

/// Attention pairs of a chunk of `len` tokens starting at `start`.
pub fn chunk_attention_pairs(start: usize, len: usize) -> u64 {
    let (s, n) = (start as u64, len as u64);
    n * s + n * (n + 1) / 2
}

/// Measures steps; reuses a per-block stamp array to count distinct blocks without allocating.
#[derive(Debug)]
pub struct ShapeCounter {
    num_blocks: usize,
    block_size_tokens: usize,
    vocab_size: usize,
    context_length: usize,
    stamps: Vec<u32>,
    epoch: u32,
}

impl ShapeCounter {
    pub fn new(
        num_blocks: usize,
        block_size_tokens: usize,
        vocab_size: usize,
        context_length: usize,
    ) -> Self {
        Self {
            num_blocks,
            block_size_tokens,
            vocab_size,
            context_length,
            stamps: vec![0; num_blocks],
            epoch: 0,
        }
    }

    /// The shape of a step, checking the batch against the runner's contract (token ids in the
    /// vocabulary, positions in the context, a block table covering them with ids in the pool).
    pub fn measure(&mut self, chunks: &[ScheduledChunk<'_>]) -> Result<StepShape, RunnerError> {
        self.next_epoch();
        let mut shape = StepShape {
            num_blocks: self.num_blocks,
            ..StepShape::default()
        };
        for chunk in chunks {
            self.check(chunk)?;
            let n = chunk.tokens.len();
            if n == 1 && chunk.want_logits {
                shape.decode_seqs += 1;
            } else {
                shape.prefill_tokens += n;
            }
            shape.total_tokens += n;
            shape.logit_rows += usize::from(chunk.want_logits);
            shape.attention_pairs += chunk_attention_pairs(chunk.start_pos, n);
            for &block in chunk.block_table {
                let stamp = &mut self.stamps[block as usize];
                if *stamp != self.epoch {
                    *stamp = self.epoch;
                    shape.kv_blocks_in_use += 1;
                }
            }
        }
        Ok(shape)
    }

    fn next_epoch(&mut self) {
        self.epoch = self.epoch.wrapping_add(1);
        if self.epoch == 0 {
            self.stamps.fill(0);
            self.epoch = 1;
        }
    }

    fn check(&self, chunk: &ScheduledChunk<'_>) -> Result<(), RunnerError> {
        let end = chunk.start_pos + chunk.tokens.len();
        if chunk.tokens.is_empty() {
            return Err(RunnerError::InvalidBatch("empty chunk".into()));
        }
        if end > self.context_length {
            return Err(RunnerError::InvalidBatch(format!(
                "position {} is beyond the context length {}",
                end - 1,
                self.context_length
            )));
        }
        if let Some(&t) = chunk
            .tokens
            .iter()
            .find(|&&t| t as usize >= self.vocab_size)
        {
            return Err(RunnerError::InvalidBatch(format!(
                "token {t} is outside the vocabulary of {}",
                self.vocab_size
            )));
        }
        let needed = end.div_ceil(self.block_size_tokens);
        if chunk.block_table.len() < needed {
            return Err(RunnerError::InvalidBatch(format!(
                "positions up to {} need {needed} blocks but the table has {}",
                end - 1,
                chunk.block_table.len()
            )));
        }
        if let Some(&b) = chunk
            .block_table
            .iter()
            .find(|&&b| b as usize >= self.num_blocks)
        {
            return Err(RunnerError::InvalidBatch(format!(
                "block id {b} is outside the pool of {}",
                self.num_blocks
            )));
        }
        Ok(())
    }
}

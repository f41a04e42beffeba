//! The profiler: times the real `NativeRunner` over a grid of prefill and decode steps, for
//! `fit_coefficients`.
//!
//! Each grid point runs `repetitions` times and keeps the fastest (other processes on a shared
//! machine only ever make a step slower). KV contents are whatever the pool holds (zeros): the
//! forward's cost does not depend on them. Every decode sequence gets its own blocks, as in real
//! serving, so the KV pool is sized for the largest batch × context of the grid.

use std::sync::Arc;
use std::time::Instant;

use rotor_model::{KvDtype, LlamaModel};

use super::error::MockerError;
use super::profile_file::ProfileSample;
use super::shape::chunk_attention_pairs;
use crate::config::EngineConfig;
use crate::native::NativeRunner;
use crate::runner::{ModelRunner, ScheduledChunk};

/// The steps to time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileGrid {
    /// One sequence's prefill chunk: (start position, tokens).
    pub prefills: Vec<(usize, usize)>,
    /// A decode step: (sequences, context length before the new token).
    pub decodes: Vec<(usize, usize)>,
    pub repetitions: usize,
    pub block_size_tokens: usize,
}

impl Default for ProfileGrid {
    /// About a minute of measurements on 2 cores for a 135M model.
    fn default() -> Self {
        Self {
            prefills: vec![
                (0, 16),
                (0, 64),
                (0, 128),
                (0, 256),
                (0, 512),
                (512, 128),
                (1024, 256),
                (1536, 512),
            ],
            decodes: vec![
                (1, 128),
                (1, 2048),
                (4, 512),
                (8, 128),
                (8, 2048),
                (16, 512),
                (32, 128),
                (32, 512),
                (64, 128),
                (64, 512),
            ],
            repetitions: 3,
            block_size_tokens: 16,
        }
    }
}

impl ProfileGrid {
    /// Blocks the largest grid point needs.
    fn num_blocks(&self) -> usize {
        let bs = self.block_size_tokens;
        let prefill = self
            .prefills
            .iter()
            .map(|&(s, n)| (s + n).div_ceil(bs))
            .max()
            .unwrap_or(0);
        let decode = self
            .decodes
            .iter()
            .map(|&(b, ctx)| b * (ctx + 1).div_ceil(bs))
            .max()
            .unwrap_or(0);
        prefill.max(decode).max(1)
    }
}

/// One step to time: per sequence (start, tokens); every chunk wants logits.
struct Point {
    label: String,
    seqs: Vec<(usize, usize)>,
}

/// Times `model` (through a `NativeRunner` with an f16 KV pool) on every point of `grid`;
/// `on_sample` sees each sample as it is measured (progress output).
pub fn profile_native(
    model: Arc<LlamaModel>,
    grid: &ProfileGrid,
    mut on_sample: impl FnMut(&ProfileSample),
) -> Result<Vec<ProfileSample>, MockerError> {
    let cfg = EngineConfig {
        num_blocks: grid.num_blocks(),
        block_size_tokens: grid.block_size_tokens,
        ..EngineConfig::default()
    };
    cfg.validate().map_err(MockerError::ProfileSetup)?;
    let vocab = model.config().vocab_size;
    let mut runner = NativeRunner::new(model, &cfg, KvDtype::F16);
    let points = grid
        .prefills
        .iter()
        .map(|&(start, len)| Point {
            label: format!("prefill start={start} len={len}"),
            seqs: vec![(start, len)],
        })
        .chain(grid.decodes.iter().map(|&(batch, ctx)| Point {
            label: format!("decode batch={batch} context={ctx}"),
            seqs: vec![(ctx, 1); batch],
        }));
    let warmup = Point {
        label: "warm-up".into(),
        seqs: vec![(0, 8)],
    };
    time_point(&mut runner, &warmup, grid, vocab)?;
    let mut samples = Vec::new();
    for point in points {
        let sample = time_point(&mut runner, &point, grid, vocab)?;
        on_sample(&sample);
        samples.push(sample);
    }
    Ok(samples)
}

fn time_point(
    runner: &mut NativeRunner,
    point: &Point,
    grid: &ProfileGrid,
    vocab: usize,
) -> Result<ProfileSample, MockerError> {
    let bs = grid.block_size_tokens;
    let mut tables = Vec::with_capacity(point.seqs.len());
    let mut next_block = 0u32;
    for &(start, len) in &point.seqs {
        let n = (start + len).div_ceil(bs) as u32;
        tables.push((next_block..next_block + n).collect::<Vec<u32>>());
        next_block += n;
    }
    let tokens: Vec<Vec<u32>> = point
        .seqs
        .iter()
        .map(|&(start, len)| {
            (0..len)
                .map(|i| (300 + (start + i) * 389 % 20_000) as u32 % vocab as u32)
                .collect()
        })
        .collect();
    let chunks: Vec<ScheduledChunk<'_>> = point
        .seqs
        .iter()
        .zip(&tables)
        .zip(&tokens)
        .map(|((&(start, _), table), toks)| ScheduledChunk {
            tokens: toks,
            start_pos: start,
            block_table: table,
            want_logits: true,
        })
        .collect();
    let mut logits = Vec::new();
    let mut best = f64::INFINITY;
    for _ in 0..grid.repetitions.max(1) {
        let t0 = Instant::now();
        runner
            .step(&chunks, &mut logits)
            .map_err(|source| MockerError::ProfileStep {
                label: point.label.clone(),
                source,
            })?;
        best = best.min(t0.elapsed().as_secs_f64() * 1000.0);
    }
    Ok(ProfileSample {
        label: point.label.clone(),
        total_tokens: point.seqs.iter().map(|&(_, n)| n).sum(),
        logit_rows: point.seqs.len(),
        attention_pairs: point
            .seqs
            .iter()
            .map(|&(s, n)| chunk_attention_pairs(s, n))
            .sum(),
        measured_ms: best,
    })
}

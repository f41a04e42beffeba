//! `rotor profile --engine native`: time the real engine in-process (the GGUF loaded as
//! `rotor worker` loads it, one `NativeRunner` step per point) and write the planner's
//! `PerfProfile`.
//!
//! - TTFT(ISL): a prompt of ISL tokens alone, prefilled in chunks of `--max-num-batched-tokens`
//!   as the worker's scheduler does; TTFT is the sum of the chunk steps (each the fastest of
//!   `--repetitions`).
//! - ITL(batch, context): one decode step of `batch` sequences at `context` tokens each.
//! - Bound: the prefill sweep may use half of `--max-seconds`, the decode sweep the rest; a
//!   sweep past its share stops after at least one point and says how many it skipped.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use rotor_engine::mocker::{profile_native, ProfileGrid};
use rotor_model::{GgufFile, LlamaConfig, LlamaModel, LoadOptions};
use rotor_planner::{DecodePoint, PerfProfile, PrefillPoint};

use crate::model_cache;
use crate::serve::default_models_dir;

/// Flags of `--engine native`.
#[derive(Debug, Clone, clap::Args)]
pub struct NativeSweepArgs {
    /// GGUF model (native engine; default: the default model, fetched into the cache if missing).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Threads of the model's pool (native engine; give the worker's `--threads`).
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    /// Prompt lengths of the TTFT sweep (native engine).
    #[arg(long, value_delimiter = ',', default_value = "32,128,256,512,1024")]
    pub isl: Vec<usize>,
    /// Decode batches of the ITL sweep (native engine).
    #[arg(long, value_delimiter = ',', default_value = "1,4,8,16")]
    pub batch: Vec<usize>,
    /// Context lengths of the ITL sweep (native engine).
    #[arg(long, value_delimiter = ',', default_value = "128,512")]
    pub context: Vec<usize>,
    /// Times each step is run; the fastest is kept (native engine).
    #[arg(long, default_value_t = 2)]
    pub repetitions: usize,
    /// Bound on the whole sweep, in seconds (native engine).
    #[arg(long, default_value_t = 60.0)]
    pub max_seconds: f64,
}

/// Bad `--engine native` flags, named.
#[derive(Debug, thiserror::Error)]
pub enum NativeSweepError {
    #[error("--{flag} needs at least one value, each at least 1 (got {got:?})")]
    EmptyOrZero { flag: &'static str, got: Vec<usize> },
    #[error(
        "--threads, --repetitions, --block-size and --max-num-batched-tokens must be at least 1"
    )]
    ZeroCount,
    #[error("--max-seconds must be a positive number (got {0})")]
    MaxSeconds(f64),
    #[error("--batch {batch} is over --max-num-seqs {max_num_seqs}")]
    BatchOverMax { batch: usize, max_num_seqs: usize },
    #[error("--{flag} {got} is past the model's context length {limit}")]
    PastContext {
        flag: &'static str,
        got: usize,
        limit: usize,
    },
    #[error("a decode step of --batch {batch} at --context {context} needs {need_mib} MiB of KV cache, over the sweep's bound of {limit_mib} MiB")]
    KvTooLarge {
        batch: usize,
        context: usize,
        need_mib: usize,
        limit_mib: usize,
    },
    #[error("the sweep measured no {0} point")]
    NoPoints(&'static str),
}

/// The largest KV pool one sweep point may allocate (f16 keys and values).
const MAX_SWEEP_KV_BYTES: usize = 4 << 30;

/// Engine limits the sweep honours (from the shared engine flags).
#[derive(Debug, Clone, Copy)]
pub struct EngineLimits {
    pub max_num_seqs: usize,
    pub chunk_tokens: usize,
    pub block_size_tokens: usize,
}

/// The profile and how many points `--max-seconds` cut.
pub struct NativeSweep {
    pub profile: PerfProfile,
    pub skipped: usize,
}

impl NativeSweepArgs {
    fn validate(&self, limits: EngineLimits) -> Result<(), NativeSweepError> {
        for (flag, v) in [
            ("isl", &self.isl),
            ("batch", &self.batch),
            ("context", &self.context),
        ] {
            if v.is_empty() || v.contains(&0) {
                return Err(NativeSweepError::EmptyOrZero {
                    flag,
                    got: v.clone(),
                });
            }
        }
        if self.threads == 0
            || self.repetitions == 0
            || limits.block_size_tokens == 0
            || limits.chunk_tokens == 0
        {
            return Err(NativeSweepError::ZeroCount);
        }
        if !(self.max_seconds.is_finite() && self.max_seconds > 0.0) {
            return Err(NativeSweepError::MaxSeconds(self.max_seconds));
        }
        if let Some(&batch) = self.batch.iter().find(|&&b| b > limits.max_num_seqs) {
            return Err(NativeSweepError::BatchOverMax {
                batch,
                max_num_seqs: limits.max_num_seqs,
            });
        }
        Ok(())
    }
}

/// Every point fits the model's context, and every decode step's KV pool fits the bound.
fn check_model_limits(args: &NativeSweepArgs, cfg: &LlamaConfig) -> Result<(), NativeSweepError> {
    let limit = cfg.context_length;
    for (flag, v) in [("isl", &args.isl), ("context", &args.context)] {
        if let Some(&got) = v.iter().find(|&&n| n + 1 > limit) {
            return Err(NativeSweepError::PastContext { flag, got, limit });
        }
    }
    let per_token = cfg.n_layers * cfg.n_kv_heads * cfg.head_dim * 2 * 2;
    for &batch in &args.batch {
        for &context in &args.context {
            let need = batch.saturating_mul(context + 1).saturating_mul(per_token);
            if need > MAX_SWEEP_KV_BYTES {
                return Err(NativeSweepError::KvTooLarge {
                    batch,
                    context,
                    need_mib: need >> 20,
                    limit_mib: MAX_SWEEP_KV_BYTES >> 20,
                });
            }
        }
    }
    Ok(())
}

/// Runs the sweep (blocking: loads the model and steps it on this thread's pool).
pub fn sweep(args: &NativeSweepArgs, limits: EngineLimits) -> Result<NativeSweep> {
    args.validate(limits)?;
    let path = match &args.model {
        Some(p) => p.clone(),
        None => model_cache::ensure_default_model(&default_models_dir()?)?,
    };
    let gguf = GgufFile::open(&path).with_context(|| format!("cannot open {}", path.display()))?;
    let model = Arc::new(LlamaModel::load(
        &gguf,
        LoadOptions {
            threads: args.threads,
        },
    )?);
    check_model_limits(args, model.config())?;
    let start = Instant::now();
    let half = Duration::from_secs_f64(args.max_seconds / 2.0);
    let step_ms = |prefills: Vec<(usize, usize)>, decodes: Vec<(usize, usize)>| -> Result<f64> {
        let grid = ProfileGrid {
            prefills,
            decodes,
            repetitions: args.repetitions,
            block_size_tokens: limits.block_size_tokens,
        };
        let samples = profile_native(model.clone(), &grid, |_| {})?;
        Ok(samples.iter().map(|s| s.measured_ms).sum())
    };
    let mut skipped = 0;
    let mut prefill = Vec::new();
    let mut isls = args.isl.clone();
    isls.sort_unstable();
    isls.dedup();
    for &isl in &isls {
        if !prefill.is_empty() && start.elapsed() > half {
            skipped += 1;
            continue;
        }
        let chunks: Vec<(usize, usize)> = (0..isl)
            .step_by(limits.chunk_tokens)
            .map(|s| (s, limits.chunk_tokens.min(isl - s)))
            .collect();
        let ttft_ms = step_ms(chunks, Vec::new())?;
        eprintln!("rotor profile: prefill isl={isl:<6} ttft {ttft_ms:>9.2} ms");
        prefill.push(PrefillPoint {
            isl: isl as u32,
            ttft_ms,
        });
    }
    let mut decode = Vec::new();
    let decode_deadline = Duration::from_secs_f64(args.max_seconds);
    for &context in &args.context {
        for &batch in &args.batch {
            if !decode.is_empty() && start.elapsed() > decode_deadline {
                skipped += 1;
                continue;
            }
            let itl_ms = step_ms(Vec::new(), vec![(batch, context)])?;
            eprintln!(
                "rotor profile: decode batch={batch:<4} context={context:<6} itl {itl_ms:>8.2} ms"
            );
            decode.push(DecodePoint {
                batch: batch as u32,
                context: context as u32,
                itl_ms,
            });
        }
    }
    if prefill.is_empty() {
        return Err(NativeSweepError::NoPoints("prefill").into());
    }
    if decode.is_empty() {
        return Err(NativeSweepError::NoPoints("decode").into());
    }
    let name = path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    let profile = PerfProfile {
        engine: format!("native {name} threads={}", args.threads),
        max_batch: limits.max_num_seqs as u32,
        prefill,
        decode,
    }
    .validated()?;
    Ok(NativeSweep { profile, skipped })
}

//! `rotor profile`: sweep one worker's engine over prompt lengths and decode batches and write
//! the planner's performance model (`rotor_planner::PerfProfile`, JSON).
//!
//! `--engine mocker` sweeps a mocker engine core on the simulated clock (`--mocker-timing`):
//! exact and instant. `--engine native` loads the GGUF and times the real engine in-process
//! (`profile_native`), bounded by `--max-seconds`.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use rotor_engine::mocker::MockerTiming;
use rotor_engine::EngineConfig;
use rotor_replay::{profile_mocker, EngineSpec, ProfileGrid};

use crate::profile_native::{self, EngineLimits, NativeSweepArgs};

/// Engine flags shared by `rotor profile` and `rotor replay`.
#[derive(Debug, Clone, clap::Args)]
pub struct SimEngineArgs {
    /// Step-time model: `fitted` (the native engine on this machine), `dynamo-vllm`, or a
    /// `rotor mocker-fit` JSON file.
    #[arg(long, default_value = "fitted")]
    pub mocker_timing: String,
    /// KV blocks per worker.
    #[arg(long, default_value_t = 8192)]
    pub num_blocks: usize,
    #[arg(long, default_value_t = 16)]
    pub block_size: usize,
    #[arg(long, default_value_t = 64)]
    pub max_num_seqs: usize,
    #[arg(long, default_value_t = 512)]
    pub max_num_batched_tokens: usize,
    /// Context window of the simulated model.
    #[arg(long, default_value_t = 32768)]
    pub context_length: usize,
}

impl SimEngineArgs {
    pub fn spec(&self) -> Result<EngineSpec> {
        let timing = MockerTiming::parse(&self.mocker_timing)
            .with_context(|| format!("--mocker-timing {}", self.mocker_timing))?;
        let engine = EngineConfig {
            max_num_seqs: self.max_num_seqs,
            max_num_batched_tokens: self.max_num_batched_tokens,
            max_prefill_chunk_tokens: self.max_num_batched_tokens,
            block_size_tokens: self.block_size,
            num_blocks: self.num_blocks,
            ..EngineConfig::default()
        };
        engine
            .validate()
            .context("invalid engine flags (--num-blocks, --block-size, --max-num-*)")?;
        Ok(EngineSpec {
            timing,
            engine,
            vocab_size: 49152,
            context_length: self.context_length,
        })
    }
}

/// `rotor profile` flags.
#[derive(Debug, clap::Args)]
pub struct ProfileArgs {
    /// Which engine: `mocker` (its step-time model, on a simulated clock) or `native` (the
    /// GGUF on this machine, timed in-process).
    #[arg(long, default_value = "mocker")]
    pub engine: String,
    #[command(flatten)]
    pub sim: SimEngineArgs,
    #[command(flatten)]
    pub native: NativeSweepArgs,
    /// Where to write the profile (JSON).
    #[arg(long)]
    pub out: PathBuf,
}

pub fn run(args: ProfileArgs) -> Result<()> {
    let (profile, skipped) = match args.engine.as_str() {
        "mocker" => (
            profile_mocker(&args.sim.spec()?, &ProfileGrid::default())?,
            0,
        ),
        "native" => {
            let limits = EngineLimits {
                max_num_seqs: args.sim.max_num_seqs,
                chunk_tokens: args.sim.max_num_batched_tokens,
                block_size_tokens: args.sim.block_size,
            };
            let sweep = profile_native::sweep(&args.native, limits)?;
            (sweep.profile, sweep.skipped)
        }
        other => bail!("rotor profile: unknown --engine {other:?} (mocker or native)"),
    };
    let json = serde_json::to_string_pretty(&profile)?;
    std::fs::write(&args.out, json + "\n")
        .with_context(|| format!("cannot write {}", args.out.display()))?;
    eprintln!(
        "rotor profile: {} prefill and {} decode points ({skipped} skipped by --max-seconds) → {}",
        profile.prefill.len(),
        profile.decode.len(),
        args.out.display()
    );
    Ok(())
}

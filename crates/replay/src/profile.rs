//! `profile_mocker`: sweeps one mocker engine core on the simulated clock into a
//! `PerfProfile` — the same measurements `rotor profile` makes of a live worker.
//!
//! - TTFT(ISL): one request of ISL distinct tokens on an idle engine; the modelled time of the
//!   steps until its first token.
//! - ITL(batch, context): `batch` requests of `context` tokens each, stepped until every one has
//!   its first token; then the mean modelled time of the next decode steps.

use rotor_planner::{DecodePoint, PerfProfile, PrefillPoint};
use rotor_protocol::{GenerateRequest, SamplingParams, StopConditions};
use tokio::sync::mpsc::unbounded_channel;

use crate::error::Error;
use crate::worker::EngineSpec;
use crate::workload::{prompt_tokens, ReplayRequest};

/// The points to measure.
#[derive(Debug, Clone, PartialEq)]
pub struct ProfileGrid {
    pub isl: Vec<u32>,
    pub batch: Vec<u32>,
    pub context: Vec<u32>,
    /// Decode steps averaged per point.
    pub decode_steps: usize,
}

impl Default for ProfileGrid {
    fn default() -> Self {
        Self {
            isl: vec![64, 128, 256, 512, 1024, 2048, 4096],
            batch: vec![1, 2, 4, 8, 16, 32, 64],
            context: vec![256, 1024, 4096],
            decode_steps: 4,
        }
    }
}

fn request(id: String, tokens: Vec<u32>, max_tokens: u32) -> GenerateRequest {
    GenerateRequest {
        task: Default::default(),
        id,
        token_ids: tokens,
        sampling: SamplingParams {
            temperature: 0.0,
            ..SamplingParams::default()
        },
        stop: StopConditions {
            max_tokens,
            ignore_eos: true,
            ..StopConditions::default()
        },
    }
}

fn tokens(len: u32, index: usize, vocab: usize) -> Vec<u32> {
    let req = ReplayRequest {
        arrival: Default::default(),
        input_tokens: len,
        output_tokens: 1,
        hash_ids: Vec::new(),
    };
    prompt_tokens(&req, index, 0x9e0f, vocab)
}

/// Sweeps a mocker engine over `grid`. Points the engine cannot hold (a context beyond its
/// window or pool, a batch beyond `max_num_seqs`) are skipped.
pub fn profile_mocker(spec: &EngineSpec, grid: &ProfileGrid) -> Result<PerfProfile, Error> {
    let mut prefill = Vec::new();
    for (i, &isl) in grid.isl.iter().enumerate() {
        let (mut core, clock) = spec.build()?;
        let (tx, mut rx) = unbounded_channel();
        if core
            .submit(
                request(format!("p{i}"), tokens(isl, i, spec.vocab_size), 1),
                tx,
            )
            .is_err()
        {
            continue;
        }
        while rx.try_recv().is_err() && core.step() {}
        prefill.push(PrefillPoint {
            isl,
            ttft_ms: clock.elapsed().as_secs_f64() * 1000.0,
        });
    }
    let mut decode = Vec::new();
    let max_batch = spec.engine.max_num_seqs as u32;
    for &context in &grid.context {
        for &batch in grid.batch.iter().filter(|&&b| b <= max_batch) {
            let (mut core, clock) = spec.build()?;
            let steps = grid.decode_steps.max(1) as u32;
            let mut rxs = Vec::new();
            let mut ok = true;
            for b in 0..batch as usize {
                let (tx, rx) = unbounded_channel();
                let t = tokens(context, 1000 + b, spec.vocab_size);
                ok &= core
                    .submit(request(format!("d{b}"), t, steps + 2), tx)
                    .is_ok();
                rxs.push((rx, false));
            }
            if !ok {
                continue;
            }
            // Prefill everyone (until each has a first token).
            let mut guard = 0;
            while rxs.iter().any(|(_, first)| !first) && guard < 100_000 {
                if !core.step() {
                    break;
                }
                guard += 1;
                for (rx, first) in rxs.iter_mut() {
                    while rx.try_recv().is_ok() {
                        *first = true;
                    }
                }
            }
            let start = clock.elapsed();
            let mut ran = 0u32;
            for _ in 0..steps {
                if !core.step() {
                    break;
                }
                ran += 1;
            }
            if ran == 0 || core.stats().preemptions > 0 {
                continue;
            }
            let itl_ms = (clock.elapsed() - start).as_secs_f64() * 1000.0 / f64::from(ran);
            decode.push(DecodePoint {
                batch,
                context,
                itl_ms,
            });
        }
    }
    let profile = PerfProfile {
        engine: format!("mocker {:?}", spec.timing),
        max_batch,
        prefill,
        decode,
    };
    Ok(profile.validated()?)
}

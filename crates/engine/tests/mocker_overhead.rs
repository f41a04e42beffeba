//! Rough CPU cost of the engine around the mocker (everything but the simulated sleep), for
//! docs/MOCKER.md: `cargo test --release -p rotor-engine --test mocker_overhead -- --ignored
//! --nocapture`. It prints, never asserts, timings (performance lives outside unit tests).

use std::time::Duration;

use rotor_engine::mocker::{MockerConfig, MockerRunner, MockerTiming};
use rotor_engine::{EngineConfig, EngineCore, ModelRunner, ScheduledChunk};
use rotor_protocol::{GenerateRequest, SamplingParams, StopConditions};
use tokio::sync::mpsc::unbounded_channel;

const VOCAB: usize = 49_152;
const BATCH: usize = 64;
const STEPS: usize = 200;

/// CPU time this thread has used (Linux scheduler statistics).
fn thread_cpu() -> Duration {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").expect("Linux schedstat");
    let ns: u64 = text
        .split_whitespace()
        .next()
        .and_then(|f| f.parse().ok())
        .expect("schedstat starts with ns on CPU");
    Duration::from_nanos(ns)
}

fn engine_cfg() -> EngineConfig {
    EngineConfig {
        max_num_seqs: BATCH,
        num_blocks: 4096,
        ..EngineConfig::default()
    }
}

fn mocker(engine: &EngineConfig) -> MockerRunner {
    let mut cfg = MockerConfig::new(MockerTiming::DynamoVllm, engine, VOCAB, 8192);
    // Simulated steps of nanoseconds: what remains is the engine's own CPU.
    cfg.speedup = 1e12;
    cfg.output_token_ids = vec![260, 314, 335, 1194];
    MockerRunner::new(cfg).expect("valid")
}

fn per_step_cpu(sampling: SamplingParams) -> Duration {
    let engine = engine_cfg();
    let mut core = EngineCore::new(Box::new(mocker(&engine)), &engine).expect("core");
    let mut streams = Vec::new();
    for i in 0..BATCH {
        let (tx, rx) = unbounded_channel();
        let req = GenerateRequest {
            task: Default::default(),
            id: format!("r{i}"),
            token_ids: (0..128)
                .map(|t| 300 + (t * 389 + i as u32 * 7) % 20_000)
                .collect(),
            sampling: sampling.clone(),
            stop: StopConditions {
                max_tokens: 1000,
                ..StopConditions::default()
            },
        };
        core.submit(req, tx).expect("valid");
        streams.push(rx);
    }
    // Prefill everyone, then time decode steps of the full batch.
    while core.scheduler().num_waiting() > 0 || core.last_step().chunks.len() < BATCH {
        core.step();
    }
    let t0 = thread_cpu();
    for _ in 0..STEPS {
        core.step();
        for rx in &mut streams {
            while rx.try_recv().is_ok() {}
        }
    }
    (thread_cpu() - t0) / STEPS as u32
}

#[test]
#[ignore = "measurement; run with --ignored --nocapture"]
fn engine_cpu_per_step_at_batch_64() {
    let greedy = per_step_cpu(SamplingParams::greedy());
    let recommended = per_step_cpu(SamplingParams {
        temperature: 0.2,
        top_p: 0.9,
        ..SamplingParams::default()
    });
    let plain = per_step_cpu(SamplingParams {
        temperature: 1.0,
        ..SamplingParams::default()
    });
    // The runner alone: shape + logits for 64 decodes.
    let engine = engine_cfg();
    let mut runner = mocker(&engine);
    let tables: Vec<Vec<u32>> = (0..BATCH as u32)
        .map(|i| (i * 9..i * 9 + 9).collect())
        .collect();
    let token = [300u32];
    let chunks: Vec<ScheduledChunk<'_>> = tables
        .iter()
        .map(|t| ScheduledChunk {
            tokens: &token,
            start_pos: 130,
            block_table: t,
            want_logits: true,
        })
        .collect();
    let mut logits = Vec::new();
    let t0 = thread_cpu();
    for _ in 0..STEPS {
        runner.step(&chunks, &mut logits).expect("step");
    }
    let runner_only = (thread_cpu() - t0) / STEPS as u32;
    let mut tokens = Vec::new();
    // Cheap enough that the scheduler's CPU accounting needs many steps to see it.
    let many = STEPS * 100;
    let t0 = thread_cpu();
    for _ in 0..many {
        runner.step_tokens(&chunks, &mut tokens).expect("step");
    }
    let runner_tokens = (thread_cpu() - t0) / many as u32;
    // Greedy sampling's share: argmax over every row.
    runner.step(&chunks, &mut logits).expect("step");
    let t0 = thread_cpu();
    let mut sum = 0u64;
    for _ in 0..STEPS {
        for row in logits.chunks_exact(VOCAB) {
            sum += u64::from(rotor_engine::argmax(std::hint::black_box(row)));
        }
    }
    let argmax_rows = (thread_cpu() - t0) / STEPS as u32;
    assert!(sum > 0);
    println!("argmax over {BATCH} rows per step: {argmax_rows:?}");
    println!(
        "engine CPU per step at batch {BATCH} (vocab {VOCAB}): greedy {greedy:?}, \
         temperature 0.2 top_p 0.9 {recommended:?}, temperature 1 {plain:?}; \
         mocker runner alone: step (logits) {runner_only:?}, step_tokens {runner_tokens:?}"
    );
}

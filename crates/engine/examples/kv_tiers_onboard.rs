//! Time to first token of a returning ~2,000-token history on the real model after it was
//! evicted from G1: recomputed, onboarded from G2 (shared host memory) and from G3 (disk; the
//! page cache is not dropped, so this is G3 at page-cache speed unless the caller drops it).
//!
//! `cargo run --release -p rotor-engine --example kv_tiers_onboard [-- TOKENS [THREADS]]`
//! (defaults 2000 tokens, 2 threads). The model comes from `rotor_testing::model_path()`
//! (`ROTOR_TEST_MODEL` overrides it).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rotor_engine::{
    DiskTierConfig, EngineConfig, EngineCore, HostTierConfig, KvTiersConfig, NativeRunner,
};
use rotor_model::{GgufFile, KvDtype, LlamaModel, LoadOptions};
use rotor_protocol::{GenerateRequest, SamplingParams, StopConditions};
use tokio::sync::mpsc::unbounded_channel;

const BS: usize = 16;

fn run(core: &mut EngineCore, id: &str, prompt: &[u32]) -> (Duration, u32, u32) {
    let (tx, mut rx) = unbounded_channel();
    let started = Instant::now();
    core.submit(
        GenerateRequest {
            task: Default::default(),
            id: id.into(),
            token_ids: prompt.to_vec(),
            sampling: SamplingParams::greedy(),
            stop: StopConditions {
                max_tokens: 1,
                ..StopConditions::default()
            },
        },
        tx,
    )
    .expect("submitted");
    while core.has_work() {
        if !core.step() {
            assert!(core.kv_loads_pending(), "the engine made progress");
            core.wait_for_kv_load(Duration::from_secs(5));
        }
    }
    let elapsed = started.elapsed();
    let out = rx.try_recv().expect("one output").expect("no error");
    (
        elapsed,
        out.token_ids[0],
        out.cached_prompt_tokens.unwrap_or(0),
    )
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let tokens: usize = args.get(1).map(|s| s.parse()).transpose()?.unwrap_or(2000);
    let threads: usize = args.get(2).map(|s| s.parse()).transpose()?.unwrap_or(2);
    let gguf = GgufFile::open(&rotor_testing::model_path())?;
    let model = Arc::new(LlamaModel::load(&gguf, LoadOptions { threads })?);
    let history: Vec<u32> = (0..tokens as u32)
        .map(|i| 200 + (i.wrapping_mul(2_654_435_761) >> 7) % 40_000)
        .collect();
    let other: Vec<u32> = history.iter().map(|t| t + 1).collect();
    let cfg = EngineConfig {
        block_size_tokens: BS,
        num_blocks: (tokens + 1).div_ceil(BS),
        max_num_batched_tokens: 512,
        max_prefill_chunk_tokens: 512,
        ..EngineConfig::default()
    };
    let engine = |tiers: &KvTiersConfig| -> anyhow::Result<EngineCore> {
        let runner = NativeRunner::new(model.clone(), &cfg, KvDtype::F16);
        Ok(EngineCore::with_kv_tiers(Box::new(runner), &cfg, tiers)?)
    };

    let mut cold = engine(&KvTiersConfig::default())?;
    let (recompute, first, _) = run(&mut cold, "cold", &history);
    println!(
        "{tokens}-token history, {threads} threads, f16 KV, block {BS}: recompute {:.3} s",
        recompute.as_secs_f64()
    );

    let shm_name = format!("example-{}", std::process::id());
    let dir = tempfile::tempdir()?;
    let setups = [
        (
            "G2 host memory",
            KvTiersConfig {
                host: Some(HostTierConfig {
                    name: shm_name.clone(),
                    capacity_bytes: 2 << 30,
                    dir: PathBuf::from(rotor_kv_cache::HOST_POOL_DIR),
                }),
                ..KvTiersConfig::default()
            },
        ),
        (
            "G3 disk (page cache warm)",
            KvTiersConfig {
                disk: Some(DiskTierConfig {
                    dir: dir.path().to_path_buf(),
                    capacity_bytes: 2 << 30,
                    admit_min_uses: 0,
                }),
                ..KvTiersConfig::default()
            },
        ),
    ];
    for (label, tiers) in setups {
        let mut e = engine(&tiers)?;
        run(&mut e, "first", &history);
        run(&mut e, "evictor", &other);
        e.flush_kv_tiers();
        let (ttft, token, cached) = run(&mut e, "again", &history);
        let s = e.stats().kv_tiers;
        let t = if tiers.host.is_some() { s.host } else { s.disk };
        println!(
            "{label}: TTFT {:.3} s ({:.1}× faster than recompute), {cached} cached tokens, \
             {} blocks onboarded in {:.3} s, same first token: {}",
            ttft.as_secs_f64(),
            recompute.as_secs_f64() / ttft.as_secs_f64(),
            t.onboards,
            t.onboard_time.as_secs_f64(),
            token == first
        );
    }
    let _ = std::fs::remove_file(
        PathBuf::from(rotor_kv_cache::HOST_POOL_DIR).join(format!("rotor-kv-{shm_name}")),
    );
    Ok(())
}

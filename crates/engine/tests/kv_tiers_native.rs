//! Offload tiers on the real model (SmolLM2-135M-Instruct Q4_1, f16 KV): after a returning
//! prompt's blocks were forced out of a small G1 pool, it is onboarded from G2 (shared host
//! memory), from G3 (disk), by a second engine sharing G2, by an engine restarted over the same
//! disk directory — each with exactly the cold greedy output and its cached tokens counted —
//! and through recompute when disk blocks are truncated or corrupted or the shared file is
//! removed or corrupted underneath (counted as failed loads).
//!
//! The model is found via `ROTOR_TEST_MODEL`, else the default cache path; the test FAILS if it
//! is missing. Engines are driven step by step on this thread (one model thread).

mod real_model;

use real_model::{model, CHAT_PROMPT};

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use rotor_engine::{
    DiskTierConfig, EngineConfig, EngineCore, HostTierConfig, KvTiersConfig, NativeRunner,
};
use rotor_model::KvDtype;
use rotor_protocol::{GenerateRequest, SamplingParams, StopConditions};
use rotor_tokens::sequence_hashes;
use tokio::sync::mpsc::unbounded_channel;

const NEW_TOKENS: u32 = 12;
const BS: usize = 16;
/// G1: 16 blocks of 16 tokens.
const G1_BLOCKS: usize = 16;

/// A returning conversation: 100 tokens (6 full blocks of 16 onboardable).
fn history() -> Vec<u32> {
    let mut p: Vec<u32> = CHAT_PROMPT[..36].to_vec();
    p.extend(CHAT_PROMPT[3..19].iter().copied().cycle().take(60));
    p.extend_from_slice(&CHAT_PROMPT[36..]);
    p
}

/// Another prompt that, with its output, takes every block of G1.
fn evictor() -> Vec<u32> {
    (0..G1_BLOCKS * BS - NEW_TOKENS as usize)
        .map(|i| 1000 + (i as u32 * 7) % 3000)
        .collect()
}

const ONBOARD_BLOCKS: u32 = 6;

fn engine(tiers: &KvTiersConfig) -> EngineCore {
    let cfg = EngineConfig {
        block_size_tokens: BS,
        num_blocks: G1_BLOCKS,
        ..EngineConfig::default()
    };
    let runner = NativeRunner::new(model(), &cfg, KvDtype::F16);
    EngineCore::with_kv_tiers(Box::new(runner), &cfg, tiers).expect("engine starts")
}

fn generate(core: &mut EngineCore, id: &str, prompt: &[u32]) -> (Vec<u32>, u32) {
    let (tx, mut rx) = unbounded_channel();
    core.submit(
        GenerateRequest {
            task: Default::default(),
            id: id.into(),
            token_ids: prompt.to_vec(),
            sampling: SamplingParams::greedy(),
            stop: StopConditions {
                max_tokens: NEW_TOKENS,
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
    let (mut tokens, mut cached) = (Vec::new(), None);
    while let Ok(item) = rx.try_recv() {
        let out = item.expect("no engine error");
        cached = cached.or(out.cached_prompt_tokens);
        tokens.extend(out.token_ids);
    }
    assert_eq!(tokens.len(), NEW_TOKENS as usize);
    (tokens, cached.unwrap_or(0))
}

/// The cold greedy output of `history()`, computed once on an engine without tiers.
fn cold_output() -> Vec<u32> {
    static COLD: OnceLock<Vec<u32>> = OnceLock::new();
    COLD.get_or_init(|| {
        let mut e = engine(&KvTiersConfig::default());
        let (tokens, cached) = generate(&mut e, "cold", &history());
        assert_eq!(cached, 0);
        tokens
    })
    .clone()
}

struct ShmName(String);

impl ShmName {
    fn new(tag: &str) -> Self {
        let me = Self(format!("native-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_file(me.path());
        me
    }

    fn path(&self) -> PathBuf {
        PathBuf::from(rotor_kv_cache::HOST_POOL_DIR).join(format!("rotor-kv-{}", self.0))
    }

    fn config(&self) -> HostTierConfig {
        HostTierConfig {
            name: self.0.clone(),
            capacity_bytes: 64 << 20,
            dir: PathBuf::from(rotor_kv_cache::HOST_POOL_DIR),
        }
    }
}

impl Drop for ShmName {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(self.path());
    }
}

fn tiers(host: Option<HostTierConfig>, disk_dir: Option<&tempfile::TempDir>) -> KvTiersConfig {
    KvTiersConfig {
        host,
        disk: disk_dir.map(|d| DiskTierConfig {
            dir: d.path().to_path_buf(),
            capacity_bytes: 256 << 20,
            admit_min_uses: 0,
        }),
        ..KvTiersConfig::default()
    }
}

/// Runs the history cold, then the evictor, and waits for the offloads.
fn prefill_and_evict(e: &mut EngineCore) {
    let (tokens, cached) = generate(e, "first", &history());
    assert_eq!((tokens, cached), (cold_output(), 0));
    generate(e, "evictor", &evictor());
    e.flush_kv_tiers();
}

#[test]
fn a_returning_prompt_onboarded_from_host_memory_gives_the_cold_output() {
    let shm = ShmName::new("g2");
    let mut e = engine(&tiers(Some(shm.config()), None));
    prefill_and_evict(&mut e);
    assert!(e.stats().kv_tiers.host.offloads >= u64::from(ONBOARD_BLOCKS));
    let (tokens, cached) = generate(&mut e, "again", &history());
    assert_eq!(tokens, cold_output());
    assert_eq!(cached, ONBOARD_BLOCKS * BS as u32);
    let host = e.stats().kv_tiers.host;
    assert_eq!(
        (host.onboards, host.failed_loads),
        (u64::from(ONBOARD_BLOCKS), 0)
    );
}

#[test]
fn a_returning_prompt_onboarded_from_disk_gives_the_cold_output() {
    let dir = tempfile::tempdir().unwrap();
    let mut e = engine(&tiers(None, Some(&dir)));
    prefill_and_evict(&mut e);
    let (tokens, cached) = generate(&mut e, "again", &history());
    assert_eq!(tokens, cold_output());
    assert_eq!(cached, ONBOARD_BLOCKS * BS as u32);
    let disk = e.stats().kv_tiers.disk;
    assert_eq!(
        (disk.onboards, disk.failed_loads),
        (u64::from(ONBOARD_BLOCKS), 0)
    );
}

#[test]
fn a_second_engine_sharing_host_memory_serves_the_first_engines_prompt() {
    let shm = ShmName::new("two");
    let cfg = tiers(Some(shm.config()), None);
    let mut a = engine(&cfg);
    prefill_and_evict(&mut a);
    let mut b = engine(&cfg);
    let (tokens, cached) = generate(&mut b, "on-b", &history());
    assert_eq!(tokens, cold_output());
    assert_eq!(cached, ONBOARD_BLOCKS * BS as u32);
    assert_eq!(b.stats().kv_tiers.host.onboards, u64::from(ONBOARD_BLOCKS));
}

#[test]
fn an_engine_restarted_over_the_same_disk_serves_the_old_prompt() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = tiers(None, Some(&dir));
    {
        let mut e = engine(&cfg);
        prefill_and_evict(&mut e);
    }
    let mut e = engine(&cfg);
    let (tokens, cached) = generate(&mut e, "after-restart", &history());
    assert_eq!(tokens, cold_output());
    assert_eq!(cached, ONBOARD_BLOCKS * BS as u32);
    assert_eq!(e.stats().kv_tiers.disk.onboards, u64::from(ONBOARD_BLOCKS));
}

#[test]
fn damaged_disk_blocks_and_a_lost_host_pool_fall_back_to_recompute() {
    let hashes = sequence_hashes(&history(), BS);
    let dir = tempfile::tempdir().unwrap();
    let file = |h: u64| dir.path().join(format!("{h:016x}.kvb"));

    // Disk: block 3 corrupted in its payload → blocks 0..3 onboarded, the rest recomputed.
    let mut e = engine(&tiers(None, Some(&dir)));
    prefill_and_evict(&mut e);
    let mut bytes = std::fs::read(file(hashes[3])).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x10;
    std::fs::write(file(hashes[3]), &bytes).unwrap();
    let (tokens, cached) = generate(&mut e, "corrupt", &history());
    assert_eq!(tokens, cold_output());
    assert_eq!(cached, 3 * BS as u32);
    let disk = e.stats().kv_tiers.disk;
    assert_eq!((disk.onboards, disk.failed_loads), (3, 1));

    // Then block 1 truncated (after another eviction) → only block 0 onboarded.
    generate(&mut e, "evictor-2", &evictor());
    e.flush_kv_tiers();
    let bytes = std::fs::read(file(hashes[1])).unwrap();
    std::fs::write(file(hashes[1]), &bytes[..bytes.len() / 3]).unwrap();
    // (The evictor itself was onboarded from disk: count from here.)
    let before = e.stats().kv_tiers.disk;
    let (tokens, cached) = generate(&mut e, "truncated", &history());
    assert_eq!(tokens, cold_output());
    assert_eq!(cached, BS as u32);
    let disk = e.stats().kv_tiers.disk;
    assert_eq!(
        (
            disk.onboards - before.onboards,
            disk.failed_loads - before.failed_loads
        ),
        (1, 1)
    );
    drop(e);

    // Host: the shared file removed underneath → everything recomputed, counted.
    let shm = ShmName::new("lost");
    let mut e = engine(&tiers(Some(shm.config()), None));
    prefill_and_evict(&mut e);
    std::fs::remove_file(shm.path()).unwrap();
    let (tokens, cached) = generate(&mut e, "lost", &history());
    assert_eq!(tokens, cold_output());
    assert_eq!(cached, 0);
    let host = e.stats().kv_tiers.host;
    assert_eq!(
        (host.onboards, host.failed_loads),
        (0, u64::from(ONBOARD_BLOCKS))
    );
}

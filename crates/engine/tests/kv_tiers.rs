//! Offload tiers (G2 shared host memory, G3 disk) behind the scripted runner's pool: exact
//! block hashes through evict → offload → onboard, per-tier counters, the frequency filter,
//! two engines sharing G2, a restart over G3, fault injection, and a property test.
//!
//! The scripted runner's KV slots hold each position's token, so a block onboarded under a
//! wrong hash (or with wrong bytes) changes the output or fails the step: every output is
//! checked against `ScriptedRunner::greedy_continuation`. Engines are driven step by step
//! (`EngineCore`) so every count is deterministic. Each test has its own /dev/shm name and temp
//! dir, removed at the end.

use std::path::PathBuf;
use std::time::Duration;

use proptest::prelude::*;
use rotor_engine::{
    DiskTierConfig, Engine, EngineConfig, EngineCore, HostTierConfig, KvTiersConfig, ScriptedRunner,
};
use rotor_kv_cache::{decode_kv_block, DiskStore};
use rotor_protocol::{CacheTier, GenerateRequest, KvEventData, SamplingParams, StopConditions};
use rotor_tokens::sequence_hashes;
use tokio::sync::mpsc::unbounded_channel;

const VOCAB: usize = 500;
const CTX: usize = 1024;
const BS: usize = 4;
const NEW_TOKENS: usize = 6;
/// Encoded bytes of one scripted block of 4 tokens: header 64 + ids 16 + payload 32 + sum 8.
const BLOCK_BYTES: u64 = 120;

/// A unique /dev/shm pool name, and its file removed on drop.
struct ShmName(String);

impl ShmName {
    fn new(tag: &str) -> Self {
        let name = format!("test-{tag}-{}", std::process::id());
        let me = Self(name);
        let _ = std::fs::remove_file(me.path());
        me
    }

    fn path(&self) -> PathBuf {
        PathBuf::from(rotor_kv_cache::HOST_POOL_DIR).join(format!("rotor-kv-{}", self.0))
    }

    fn host(&self, blocks: u64) -> HostTierConfig {
        HostTierConfig {
            name: self.0.clone(),
            capacity_bytes: blocks * BLOCK_BYTES.div_ceil(8) * 8,
            dir: PathBuf::from(rotor_kv_cache::HOST_POOL_DIR),
        }
    }
}

impl Drop for ShmName {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(self.path());
    }
}

fn disk(dir: &tempfile::TempDir, blocks: u64, admit_min_uses: u32) -> DiskTierConfig {
    DiskTierConfig {
        dir: dir.path().to_path_buf(),
        capacity_bytes: blocks * BLOCK_BYTES,
        admit_min_uses,
    }
}

fn tiers(host: Option<HostTierConfig>, disk: Option<DiskTierConfig>) -> KvTiersConfig {
    KvTiersConfig {
        host,
        disk,
        ..KvTiersConfig::default()
    }
}

fn config(num_blocks: usize) -> EngineConfig {
    EngineConfig {
        max_num_seqs: 4,
        max_num_batched_tokens: 64,
        max_prefill_chunk_tokens: 64,
        block_size_tokens: BS,
        num_blocks,
        enable_prefix_caching: true,
    }
}

fn core(num_blocks: usize, tiers: &KvTiersConfig) -> EngineCore {
    let cfg = config(num_blocks);
    let runner = ScriptedRunner::for_config(&cfg, VOCAB, CTX);
    EngineCore::with_kv_tiers(Box::new(runner), &cfg, tiers).expect("engine with tiers")
}

/// Runs one request to the end; returns its tokens and the cached prompt tokens it reported.
fn generate(core: &mut EngineCore, id: &str, prompt: &[u32]) -> (Vec<u32>, u32) {
    let (tx, mut rx) = unbounded_channel();
    core.submit(
        GenerateRequest {
            task: Default::default(),
            id: id.into(),
            token_ids: prompt.to_vec(),
            sampling: SamplingParams::greedy(),
            stop: StopConditions {
                max_tokens: NEW_TOKENS as u32,
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
    assert_eq!(
        tokens,
        ScriptedRunner::greedy_continuation(prompt, NEW_TOKENS, VOCAB),
        "request {id}: the output of a cold computation"
    );
    (tokens, cached.unwrap_or(0))
}

/// 18 tokens: four full blocks of 4 and a partial one.
fn prompt_a() -> Vec<u32> {
    (0..18).map(|i| (i * 37 + 11) % VOCAB as u32).collect()
}

/// 26 other tokens: with 6 generated they fill an 8-block pool, evicting everything else.
fn prompt_b() -> Vec<u32> {
    (0..26).map(|i| 300 + i).collect()
}

/// The hashes of the blocks a request leaves cached: its full blocks of prompt + output
/// except the last token (never computed).
fn cached_hashes_after(prompt: &[u32]) -> Vec<u64> {
    let mut all = prompt.to_vec();
    all.extend(ScriptedRunner::greedy_continuation(
        prompt, NEW_TOKENS, VOCAB,
    ));
    all.pop();
    sequence_hashes(&all, BS)
}

#[test]
fn evicted_blocks_go_to_host_memory_and_come_back_as_cached_tokens() {
    let shm = ShmName::new("g2");
    let cfg = tiers(Some(shm.host(16)), None);
    let mut e = core(8, &cfg);
    generate(&mut e, "a", &prompt_a());
    let a_blocks = cached_hashes_after(&prompt_a());
    assert_eq!(a_blocks.len(), 5);
    e.flush_kv_tiers();
    assert_eq!(e.stats().kv_tiers.host.offloads, 0, "nothing evicted yet");

    generate(&mut e, "b", &prompt_b());
    e.flush_kv_tiers();
    let host = e.stats().kv_tiers.host;
    let s = e.stats();
    assert_eq!(s.prefix_cache_evictions, 5);
    assert_eq!((host.offloads, host.blocks_held), (5, 5));
    assert_eq!(host.bytes_held, 5 * BLOCK_BYTES.div_ceil(8) * 8);
    // Exactly A's blocks are in the shared file, each under its own hash.
    let pool = rotor_kv_cache::SharedHostPool::open(&shm.path(), 120, 120).expect("attach");
    for &h in &a_blocks {
        let bytes = pool.get(h).expect("offloaded block present");
        assert_eq!(decode_kv_block(&bytes).unwrap().header.sequence_hash, h);
    }

    let (_, cached) = generate(&mut e, "a2", &prompt_a());
    assert_eq!(cached, 16, "4 onboarded blocks × 4 tokens count as cached");
    let host = e.stats().kv_tiers.host;
    assert_eq!((host.hits, host.onboards, host.failed_loads), (4, 4, 0));
    assert!(host.onboard_time > std::time::Duration::ZERO);
    assert_eq!(e.stats().kv_transfer.imported_blocks, 4);
    assert_eq!(e.stats().blocks_used, 0, "no G1 holder leaked");
}

#[test]
fn host_evictions_fall_to_disk_and_a_prefix_is_onboarded_from_both() {
    let shm = ShmName::new("g2g3");
    let dir = tempfile::tempdir().unwrap();
    let cfg = tiers(Some(shm.host(2)), Some(disk(&dir, 64, 0)));
    let mut e = core(8, &cfg);
    generate(&mut e, "a", &prompt_a());
    generate(&mut e, "b", &prompt_b());
    e.flush_kv_tiers();
    let h = cached_hashes_after(&prompt_a());
    // Eviction order is last block first: h4, h3, h2, h1, h0. G2 (2 slots) keeps the last two
    // written; the three it evicted for them went to G3.
    let t = e.stats().kv_tiers;
    assert_eq!((t.host.offloads, t.host.blocks_held), (5, 2));
    assert_eq!((t.disk.offloads, t.disk.blocks_held), (3, 3));
    let store = DiskStore::open(dir.path(), u64::MAX, 0).unwrap();
    for &x in &h[2..] {
        assert!(store.contains(x));
    }
    assert!(!store.contains(h[0]) && !store.contains(h[1]));

    let (_, cached) = generate(&mut e, "a2", &prompt_a());
    assert_eq!(cached, 16);
    let t = e.stats().kv_tiers;
    assert_eq!((t.host.hits, t.host.onboards), (2, 2));
    assert_eq!((t.disk.hits, t.disk.onboards), (2, 2));
    assert_eq!(t.host.failed_loads + t.disk.failed_loads, 0);
}

/// The tier events of a stream (device events left out), as (kind, tier, hashes).
fn tier_events(events: &[rotor_protocol::KvEvent]) -> Vec<(&'static str, CacheTier, Vec<u64>)> {
    events
        .iter()
        .filter_map(|e| match &e.data {
            KvEventData::Stored { blocks, tier, .. } if *tier != CacheTier::Device => Some((
                "stored",
                *tier,
                blocks.iter().map(|b| b.block_hash).collect(),
            )),
            KvEventData::Removed { block_hashes, tier } if *tier != CacheTier::Device => {
                Some(("removed", *tier, block_hashes.clone()))
            }
            _ => None,
        })
        .collect()
}

#[test]
fn offloads_and_tier_evictions_are_kv_events_of_their_tier() {
    let shm = ShmName::new("events");
    let dir = tempfile::tempdir().unwrap();
    let cfg = tiers(Some(shm.host(2)), Some(disk(&dir, 64, 0)));
    let mut e = core(8, &cfg);
    let mut reader = e.subscribe_kv_events();
    generate(&mut e, "a", &prompt_a());
    generate(&mut e, "b", &prompt_b());
    e.flush_kv_tiers();
    let batch = reader.read();
    assert_eq!(batch.missed, 0);
    let ids: Vec<u64> = batch.events.iter().map(|e| e.event_id).collect();
    assert_eq!(
        ids,
        (0..ids.len() as u64).collect::<Vec<_>>(),
        "gap-free ids"
    );
    let h = cached_hashes_after(&prompt_a());
    let (host, disk) = (CacheTier::Host, CacheTier::Disk);
    // G1 evicts h4..h0 (last block first); G2 holds 2 and pushes its oldest down to G3.
    assert_eq!(
        tier_events(&batch.events),
        vec![
            ("stored", host, vec![h[4]]),
            ("stored", host, vec![h[3]]),
            ("stored", host, vec![h[2]]),
            ("removed", host, vec![h[4]]),
            ("stored", disk, vec![h[4]]),
            ("stored", host, vec![h[1]]),
            ("removed", host, vec![h[3]]),
            ("stored", disk, vec![h[3]]),
            ("stored", host, vec![h[0]]),
            ("removed", host, vec![h[2]]),
            ("stored", disk, vec![h[2]]),
        ]
    );
    // Every block A left G1 with is still somewhere a router can see.
    let device_removed: Vec<u64> = batch
        .events
        .iter()
        .filter_map(|e| match &e.data {
            KvEventData::Removed {
                block_hashes,
                tier: CacheTier::Device,
            } => Some(block_hashes.clone()),
            _ => None,
        })
        .flatten()
        .collect();
    let mut sorted = device_removed.clone();
    sorted.sort_unstable();
    let mut want = h.clone();
    want.sort_unstable();
    assert_eq!(sorted, want, "G1 removed exactly A's blocks");

    // Onboarding A again: G1 stores them anew; a block already in G2 re-offered is re-stated.
    let (_, cached) = generate(&mut e, "a2", &prompt_a());
    assert_eq!(cached, 16);
    e.flush_kv_tiers();
    let later = reader.read();
    assert_eq!(later.missed, 0);
    assert_eq!(
        later.events.first().map(|e| e.event_id),
        Some(ids.len() as u64)
    );
}

#[test]
fn disk_admits_only_blocks_used_again() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = tiers(None, Some(disk(&dir, 64, 1)));
    let mut e = core(8, &cfg);
    generate(&mut e, "a", &prompt_a());
    let (_, cached) = generate(&mut e, "a-again", &prompt_a());
    assert_eq!(cached, 16, "a G1 hit: one use of the 4 prompt blocks");
    generate(&mut e, "b", &prompt_b());
    e.flush_kv_tiers();
    let d = e.stats().kv_tiers.disk;
    // The 4 reused prompt blocks are admitted; the block of prompt + output, never reused, not.
    assert_eq!((d.offloads, d.not_admitted, d.blocks_held), (4, 1, 4));
    let (_, cached) = generate(&mut e, "a3", &prompt_a());
    assert_eq!(cached, 16);
    let d = e.stats().kv_tiers.disk;
    assert_eq!((d.hits, d.onboards, d.failed_loads), (4, 4, 0));
}

#[test]
fn a_second_engine_on_the_same_host_pool_is_served_from_it() {
    let shm = ShmName::new("two");
    let cfg = tiers(Some(shm.host(16)), None);
    let mut a = core(8, &cfg);
    generate(&mut a, "a", &prompt_a());
    generate(&mut a, "b", &prompt_b());
    a.flush_kv_tiers();
    let mut b = core(8, &cfg);
    let (_, cached) = generate(&mut b, "a-on-b", &prompt_a());
    assert_eq!(cached, 16, "B onboarded what A offloaded");
    let host = b.stats().kv_tiers.host;
    assert_eq!((host.hits, host.onboards, host.offloads), (4, 4, 0));
}

#[test]
fn a_restarted_engine_serves_from_the_disk_it_left() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = tiers(None, Some(disk(&dir, 64, 0)));
    {
        let mut e = core(8, &cfg);
        generate(&mut e, "a", &prompt_a());
        generate(&mut e, "b", &prompt_b());
        // Dropping the engine writes what is queued.
    }
    let mut e = core(8, &cfg);
    assert_eq!(
        e.stats().kv_tiers.disk.blocks_held,
        5,
        "index rebuilt by scan"
    );
    let (_, cached) = generate(&mut e, "a", &prompt_a());
    assert_eq!(cached, 16);
    assert_eq!(e.stats().kv_tiers.disk.onboards, 4);
}

#[test]
fn corrupt_and_truncated_disk_blocks_are_recomputed_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = tiers(None, Some(disk(&dir, 64, 0)));
    let mut e = core(8, &cfg);
    generate(&mut e, "a", &prompt_a());
    generate(&mut e, "b", &prompt_b());
    e.flush_kv_tiers();
    let h = cached_hashes_after(&prompt_a());
    let file = |x: u64| dir.path().join(format!("{x:016x}.kvb"));
    // Block 2 corrupted in its payload: blocks 0 and 1 are onboarded, 2 and 3 recomputed.
    let mut bytes = std::fs::read(file(h[2])).unwrap();
    bytes[90] ^= 0x01;
    std::fs::write(file(h[2]), &bytes).unwrap();
    let (_, cached) = generate(&mut e, "a2", &prompt_a());
    assert_eq!(cached, 8);
    let d = e.stats().kv_tiers.disk;
    assert_eq!((d.onboards, d.failed_loads), (2, 1));
    assert!(
        !file(h[2]).exists(),
        "a block failing verification is deleted"
    );

    // Truncated first block: nothing onboarded, everything recomputed.
    generate(&mut e, "b2", &prompt_b());
    e.flush_kv_tiers();
    let bytes = std::fs::read(file(h[0])).unwrap();
    std::fs::write(file(h[0]), &bytes[..50]).unwrap();
    let (_, cached) = generate(&mut e, "a3", &prompt_a());
    assert_eq!(cached, 0);
    assert_eq!(e.stats().kv_tiers.disk.failed_loads, 2);
    assert_eq!(e.stats().blocks_used, 0);
}

#[test]
fn disk_write_errors_are_counted_and_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let blocks_dir = dir.path().join("blocks");
    let cfg = tiers(
        None,
        Some(DiskTierConfig {
            dir: blocks_dir.clone(),
            capacity_bytes: 64 * BLOCK_BYTES,
            admit_min_uses: 0,
        }),
    );
    let mut e = core(8, &cfg);
    // The directory vanishes and a file takes its place: every write fails.
    std::fs::remove_dir(&blocks_dir).unwrap();
    std::fs::write(&blocks_dir, b"not a directory").unwrap();
    generate(&mut e, "a", &prompt_a());
    generate(&mut e, "b", &prompt_b());
    e.flush_kv_tiers();
    let d = e.stats().kv_tiers.disk;
    assert_eq!((d.write_errors, d.offloads, d.blocks_held), (5, 0, 0));
    let (_, cached) = generate(&mut e, "a2", &prompt_a());
    assert_eq!(cached, 0);
}

#[test]
fn a_host_pool_removed_or_corrupted_underneath_is_recomputed_and_counted() {
    let shm = ShmName::new("fault");
    let cfg = tiers(Some(shm.host(16)), None);
    let mut e = core(8, &cfg);
    generate(&mut e, "a", &prompt_a());
    generate(&mut e, "b", &prompt_b());
    e.flush_kv_tiers();
    // Removed: the old mapping's 4 matching blocks are lost, a fresh file is attached.
    std::fs::remove_file(shm.path()).unwrap();
    let (_, cached) = generate(&mut e, "a2", &prompt_a());
    assert_eq!(cached, 0);
    let host = e.stats().kv_tiers.host;
    assert_eq!((host.failed_loads, host.onboards), (4, 0));
    assert!(shm.path().exists(), "a fresh pool file was created");

    // Corrupted in place (same file, data bytes flipped): verification fails at block 0.
    generate(&mut e, "b2", &prompt_b());
    e.flush_kv_tiers();
    let h = cached_hashes_after(&prompt_a());
    assert!(rotor_kv_cache::SharedHostPool::open(&shm.path(), 120, 120)
        .unwrap()
        .contains(h[0]));
    let mut bytes = std::fs::read(shm.path()).unwrap();
    let data_start = 4096;
    for b in &mut bytes[data_start..] {
        *b ^= 0x55;
    }
    std::fs::write(shm.path(), &bytes).unwrap();
    let (_, cached) = generate(&mut e, "a3", &prompt_a());
    assert_eq!(cached, 0);
    assert_eq!(e.stats().kv_tiers.host.failed_loads, 5);

    // Truncated underneath (same file, cut to 100 bytes): never read past its end; the lookup
    // counts a lost block, a fresh pool replaces the damaged file, and the tier works again.
    generate(&mut e, "b3", &prompt_b());
    e.flush_kv_tiers();
    std::fs::OpenOptions::new()
        .write(true)
        .open(shm.path())
        .unwrap()
        .set_len(100)
        .unwrap();
    // (b3 itself found its corrupted blocks of b2 in the pool: count from here.)
    let before = e.stats().kv_tiers.host.failed_loads;
    let (_, cached) = generate(&mut e, "a4", &prompt_a());
    assert_eq!(cached, 0);
    assert_eq!(e.stats().kv_tiers.host.failed_loads, before + 1);
    generate(&mut e, "b4", &prompt_b());
    e.flush_kv_tiers();
    let (_, cached) = generate(&mut e, "a5", &prompt_a());
    assert_eq!(cached, 16, "the replaced pool serves again");
    assert_eq!(e.stats().blocks_used, 0);
}

/// Submits a request; its outputs arrive on the returned receiver.
fn submit(core: &mut EngineCore, id: &str, prompt: &[u32]) -> OutputRx {
    let (tx, rx) = unbounded_channel();
    let req = GenerateRequest {
        task: Default::default(),
        id: id.into(),
        token_ids: prompt.to_vec(),
        sampling: SamplingParams::greedy(),
        stop: StopConditions {
            max_tokens: NEW_TOKENS as u32,
            ..StopConditions::default()
        },
    };
    core.submit(req, tx).expect("submitted");
    rx
}

type OutputRx = tokio::sync::mpsc::UnboundedReceiver<
    Result<rotor_protocol::EngineOutput, rotor_protocol::WireError>,
>;

fn collect(rx: &mut OutputRx) -> (Vec<u32>, u32) {
    let (mut tokens, mut cached) = (Vec::new(), None);
    while let Ok(item) = rx.try_recv() {
        let out = item.expect("no engine error");
        cached = cached.or(out.cached_prompt_tokens);
        tokens.extend(out.token_ids);
    }
    (tokens, cached.unwrap_or(0))
}

#[test]
fn a_running_request_keeps_stepping_while_another_loads_from_a_tier() {
    let shm = ShmName::new("loading");
    let mut e = core(12, &tiers(Some(shm.host(16)), None));
    generate(&mut e, "a", &prompt_a());
    let evictor: Vec<u32> = (0..42).map(|i| 300 + i).collect();
    generate(&mut e, "evict", &evictor);
    e.flush_kv_tiers();

    let short: Vec<u32> = vec![7, 8, 9, 10, 11];
    let mut x = submit(&mut e, "x", &short);
    assert!(e.step(), "x prefills");
    let mut a = submit(&mut e, "a2", &prompt_a());
    assert!(e.step());
    // In this step a2's blocks were only being loaded: x decoded alone, a2 still waits.
    let ids: Vec<&str> = e
        .last_step()
        .chunks
        .iter()
        .map(|c| &*c.request_id)
        .collect();
    assert_eq!(ids, vec!["x"]);
    assert_eq!(e.last_step().chunks[0].len, 1, "a decode step");
    assert_eq!(e.scheduler().num_waiting(), 1);
    assert!(e.kv_loads_pending());
    while e.has_work() {
        if !e.step() {
            e.wait_for_kv_load(Duration::from_secs(5));
        }
    }
    let (x_tokens, _) = collect(&mut x);
    assert_eq!(
        x_tokens,
        ScriptedRunner::greedy_continuation(&short, NEW_TOKENS, VOCAB)
    );
    let (a_tokens, cached) = collect(&mut a);
    assert_eq!(
        a_tokens,
        ScriptedRunner::greedy_continuation(&prompt_a(), NEW_TOKENS, VOCAB)
    );
    assert_eq!(cached, 16);
    assert_eq!(e.stats().kv_tiers.host.onboards, 4);
    assert_eq!(e.stats().blocks_used, 0);
}

#[test]
fn a_request_cancelled_while_loading_leaks_nothing() {
    let shm = ShmName::new("cancel");
    let mut e = core(8, &tiers(Some(shm.host(16)), None));
    generate(&mut e, "a", &prompt_a());
    generate(&mut e, "b", &prompt_b());
    e.flush_kv_tiers();
    let _rx = submit(&mut e, "a2", &prompt_a());
    assert!(!e.step(), "nothing to run while a2 loads");
    assert!(e.kv_loads_pending());
    assert!(e.cancel("a2"));
    e.wait_for_kv_load(Duration::from_secs(5));
    e.step();
    assert!(!e.has_work() && !e.kv_loads_pending());
    assert_eq!(e.stats().blocks_used, 0);
    assert_eq!(
        e.stats().kv_tiers.host.onboards,
        0,
        "the finished load was dropped"
    );
    // The blocks are still in G2 for the next request.
    let (_, cached) = generate(&mut e, "a3", &prompt_a());
    assert_eq!(cached, 16);
}

#[test]
fn an_engine_thread_onboards_from_host_memory_with_cached_tokens() {
    let shm = ShmName::new("thread");
    let cfg = config(8);
    let runner = ScriptedRunner::for_config(&cfg, VOCAB, CTX);
    let engine = Engine::start_with_tiers(Box::new(runner), cfg, &tiers(Some(shm.host(16)), None))
        .expect("engine starts");
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let run = |id: &str, prompt: &[u32]| -> (Vec<u32>, u32) {
        let mut rx = engine
            .submit(GenerateRequest {
                task: Default::default(),
                id: id.into(),
                token_ids: prompt.to_vec(),
                sampling: SamplingParams::greedy(),
                stop: StopConditions {
                    max_tokens: NEW_TOKENS as u32,
                    ..StopConditions::default()
                },
            })
            .expect("submitted");
        let (mut tokens, mut cached) = (Vec::new(), None);
        while let Some(item) = rx.blocking_recv() {
            let out = item.expect("no engine error");
            cached = cached.or(out.cached_prompt_tokens);
            tokens.extend(out.token_ids);
        }
        (tokens, cached.unwrap_or(0))
    };
    run("a", &prompt_a());
    run("b", &prompt_b());
    rt.block_on(engine.flush_kv_tiers()).expect("flushed");
    assert_eq!(engine.stats().kv_tiers.host.offloads, 5);
    let (tokens, cached) = run("a2", &prompt_a());
    assert_eq!(
        tokens,
        ScriptedRunner::greedy_continuation(&prompt_a(), NEW_TOKENS, VOCAB)
    );
    assert_eq!(cached, 16);
    rt.block_on(engine.flush_kv_tiers()).expect("flushed");
    let stats = engine.stats();
    assert_eq!(stats.kv_tiers.host.onboards, 4);
    assert_eq!(stats.blocks_used, 0);
    engine.shutdown();
    engine.join();
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, .. ProptestConfig::default() })]

    /// Prompts sharing prefixes over a small pool with small tiers: every output is the cold
    /// one (no block is ever served under a wrong hash), no G1 block stays held, the tiers stay
    /// within capacity, every block on disk decodes under its file's name and no file is
    /// outside the index.
    #[test]
    fn no_leak_and_no_wrong_block_across_tiers(
        picks in proptest::collection::vec((0usize..4, 1usize..24), 1..14),
        host_blocks in 1u64..6,
        disk_blocks in 1u64..10,
        admit in 0u32..2,
    ) {
        let shm = ShmName::new(&format!("prop{host_blocks}{disk_blocks}{admit}{}", picks.len()));
        let dir = tempfile::tempdir().unwrap();
        let cfg = tiers(Some(shm.host(host_blocks)), Some(disk(&dir, disk_blocks, admit)));
        let mut e = core(8, &cfg);
        let stems: Vec<Vec<u32>> = (0..4u32)
            .map(|s| (0..24).map(|i| (s * 97 + i * 13) % VOCAB as u32).collect())
            .collect();
        for (i, &(stem, len)) in picks.iter().enumerate() {
            generate(&mut e, &format!("r{i}"), &stems[stem][..len]);
        }
        e.flush_kv_tiers();
        let s = e.stats();
        prop_assert_eq!(s.blocks_used, 0);
        prop_assert!(s.kv_tiers.host.blocks_held <= host_blocks);
        prop_assert!(s.kv_tiers.disk.bytes_held <= disk_blocks * BLOCK_BYTES);
        let mut files = 0;
        for entry in std::fs::read_dir(dir.path()).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_stem().unwrap().to_str().unwrap().to_owned();
            let bytes = std::fs::read(&path).unwrap();
            let view = decode_kv_block(&bytes).expect("a disk block decodes");
            prop_assert_eq!(format!("{:016x}", view.header.sequence_hash), name);
            files += 1;
        }
        prop_assert_eq!(files as u64, s.kv_tiers.disk.blocks_held, "no file outside the index");
        // A block can leave a tier between lookup and load (the writer evicts it for a newer
        // one): a failed load, recomputed — but only ever of a block a lookup found.
        for t in [s.kv_tiers.host, s.kv_tiers.disk] {
            prop_assert!(t.failed_loads + t.onboards <= t.hits);
        }
    }
}

//! The engine over the mocker: `Engine::start(MockerRunner)` generates exactly `max_tokens`
//! palette tokens (never a stop token) under any sampling, emits KV events, reuses cached
//! prefixes, preempts under a small pool and still finishes everything, and runs as 16 engines in
//! one process.

use std::time::{Duration, Instant};

use rotor_engine::mocker::{MockerConfig, MockerRunner, MockerTiming};
use rotor_engine::{Engine, EngineConfig, EngineHandle, OutputStream};
use rotor_protocol::{
    FinishReason, GenerateRequest, KvEventData, SamplingParams, StopConditions, StoredBlock,
};
use rotor_tokens::{local_block_hashes, sequence_hashes};

/// SmolLM2-135M's vocabulary and context.
const VOCAB: usize = 49_152;
const CTX: usize = 8192;
/// SmolLM2's `<|endoftext|>` and `<|im_end|>`.
const STOP_IDS: [u32; 2] = [0, 2];
/// Ordinary SmolLM2 tokens.
const PALETTE: [u32; 4] = [260, 314, 335, 1194];

fn engine_cfg(num_blocks: usize, block_size_tokens: usize) -> EngineConfig {
    EngineConfig {
        max_num_seqs: 64,
        max_num_batched_tokens: 512,
        max_prefill_chunk_tokens: 512,
        block_size_tokens,
        num_blocks,
        enable_prefix_caching: true,
    }
}

fn start(engine: EngineConfig, timing: MockerTiming, speedup: f64) -> EngineHandle {
    let mut cfg = MockerConfig::new(timing, &engine, VOCAB, CTX);
    cfg.speedup = speedup;
    cfg.output_token_ids = PALETTE.to_vec();
    let runner = MockerRunner::new(cfg).expect("valid mocker config");
    Engine::start(Box::new(runner), engine).expect("engine starts")
}

fn prompt(salt: u32, len: usize) -> Vec<u32> {
    (0..len as u32)
        .map(|i| 300 + (i * 389 + salt * 7919) % 20_000)
        .collect()
}

/// The default model's recommended sampling: every setting must still yield the palette token.
fn request(id: &str, token_ids: Vec<u32>, max_tokens: u32) -> GenerateRequest {
    GenerateRequest {
        task: Default::default(),
        id: id.into(),
        token_ids,
        sampling: SamplingParams {
            temperature: 0.2,
            top_p: 0.9,
            seed: Some(7),
            ..SamplingParams::default()
        },
        stop: StopConditions {
            max_tokens,
            stop_token_ids: STOP_IDS.to_vec(),
            ..StopConditions::default()
        },
    }
}

/// What the mocker generates after a prompt of `prompt_len` tokens.
fn expected_tokens(prompt_len: usize, n: usize) -> Vec<u32> {
    (prompt_len..prompt_len + n)
        .map(|pos| PALETTE[pos % PALETTE.len()])
        .collect()
}

struct Finished {
    tokens: Vec<u32>,
    finish: Option<FinishReason>,
    cached_prompt_tokens: Option<u32>,
}

fn collect(rx: &mut OutputStream) -> Finished {
    let mut done = Finished {
        tokens: Vec::new(),
        finish: None,
        cached_prompt_tokens: None,
    };
    let mut first = true;
    while let Some(item) = rx.blocking_recv() {
        let out = item.expect("no error expected");
        if first {
            done.cached_prompt_tokens = out.cached_prompt_tokens;
            first = false;
        }
        done.tokens.extend(&out.token_ids);
        if out.finish_reason.is_some() {
            done.finish = out.finish_reason;
            break;
        }
    }
    done
}

/// Waits (bounded) until the engine's published counters show it idle.
fn wait_idle(engine: &EngineHandle) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let s = engine.stats();
        if s.running == 0 && s.waiting == 0 {
            return;
        }
        assert!(Instant::now() < deadline, "engine still busy: {s:?}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn a_request_generates_exactly_max_tokens_palette_tokens_and_never_a_stop_token() {
    let engine = start(engine_cfg(256, 16), MockerTiming::DynamoVllm, 100.0);
    let p = prompt(1, 37);
    let mut rx = engine.submit(request("a", p.clone(), 20)).expect("valid");
    let done = collect(&mut rx);
    assert_eq!(done.finish, Some(FinishReason::Length));
    assert_eq!(done.tokens, expected_tokens(37, 20));
    assert!(done.tokens.iter().all(|t| !STOP_IDS.contains(t)));
    engine.shutdown();
    engine.join();
}

#[test]
fn kv_events_report_the_blocks_the_request_filled() {
    let engine = start(engine_cfg(256, 16), MockerTiming::default_fitted(), 100.0);
    let mut reader = engine.subscribe_kv_events();
    let p = prompt(2, 53);
    let mut rx = engine.submit(request("a", p.clone(), 20)).expect("valid");
    let done = collect(&mut rx);
    // 53 prompt + 19 fed-back outputs = 72 computed positions: 4 full blocks of 16.
    let mut computed = p.clone();
    computed.extend(&done.tokens[..19]);
    let expected: Vec<StoredBlock> = sequence_hashes(&computed, 16)
        .into_iter()
        .zip(local_block_hashes(&computed, 16))
        .map(|(block_hash, tokens_hash)| StoredBlock {
            block_hash,
            tokens_hash,
        })
        .collect();
    assert_eq!(expected.len(), 4);
    let mut stored = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while stored.len() < expected.len() {
        assert!(Instant::now() < deadline, "only {stored:?} stored");
        let batch = reader.read();
        assert_eq!(batch.missed, 0);
        for event in batch.events {
            match event.data {
                KvEventData::Stored { blocks, .. } => stored.extend(blocks),
                other => panic!("unexpected event {other:?}"),
            }
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(stored, expected);
    engine.shutdown();
    engine.join();
}

#[test]
fn a_second_request_sharing_a_three_block_prefix_reports_three_blocks_cached() {
    let engine = start(engine_cfg(256, 16), MockerTiming::DynamoVllm, 100.0);
    let shared = prompt(3, 48);
    let mut a = shared.clone();
    a.extend(prompt(4, 10));
    let mut b = shared.clone();
    b.extend(prompt(5, 7));
    let first = collect(&mut engine.submit(request("a", a, 4)).expect("valid"));
    assert_eq!(first.cached_prompt_tokens, Some(0));
    let second = collect(&mut engine.submit(request("b", b, 4)).expect("valid"));
    assert_eq!(second.cached_prompt_tokens, Some(48));
    assert_eq!(second.tokens, expected_tokens(55, 4));
    engine.shutdown();
    engine.join();
}

#[test]
fn a_small_pool_preempts_and_every_request_still_finishes() {
    // 16 blocks of 4 = 64 tokens; each request needs 10 + 24 = 34 tokens (9 blocks).
    let engine = start(engine_cfg(16, 4), MockerTiming::DynamoVllm, 100.0);
    let mut streams: Vec<(usize, OutputStream)> = (0..8)
        .map(|i| {
            let p = prompt(10 + i as u32, 10);
            let rx = engine
                .submit(request(&format!("r{i}"), p, 24))
                .expect("valid");
            (i, rx)
        })
        .collect();
    for (i, rx) in &mut streams {
        let done = collect(rx);
        assert_eq!(done.finish, Some(FinishReason::Length), "request {i}");
        assert_eq!(done.tokens, expected_tokens(10, 24), "request {i}");
    }
    wait_idle(&engine);
    let stats = engine.stats();
    assert!(stats.preemptions > 0, "{stats:?}");
    assert_eq!(stats.blocks_used, 0);
    engine.shutdown();
    engine.join();
}

#[test]
fn sixteen_mocker_engines_in_one_process_all_complete_a_batch() {
    let engines: Vec<EngineHandle> = (0..16)
        .map(|e| {
            let timing = if e % 2 == 0 {
                MockerTiming::DynamoVllm
            } else {
                MockerTiming::default_fitted()
            };
            start(engine_cfg(512, 16), timing, 50.0)
        })
        .collect();
    let system = prompt(99, 64);
    let mut streams = Vec::new();
    for (e, engine) in engines.iter().enumerate() {
        for r in 0..8u32 {
            let mut p = system.clone();
            p.extend(prompt(e as u32 * 100 + r, 36));
            let rx = engine
                .submit(request(&format!("e{e}-r{r}"), p, 32))
                .expect("valid");
            streams.push((e, r, rx));
        }
    }
    for (e, r, rx) in &mut streams {
        let done = collect(rx);
        assert_eq!(
            done.finish,
            Some(FinishReason::Length),
            "engine {e} request {r}"
        );
        assert_eq!(
            done.tokens,
            expected_tokens(100, 32),
            "engine {e} request {r}"
        );
    }
    for engine in &engines {
        wait_idle(engine);
        assert_eq!(engine.stats().tokens_generated, 8 * 32);
        engine.shutdown();
        engine.join();
    }
}

//! The engine on the real model (SmolLM2-135M-Instruct Q4_1): greedy decoding through the engine
//! equals a plain forward loop, alone and when batched with other requests.
//!
//! The model is found via `ROTOR_TEST_MODEL`, else the default cache path; the test FAILS if it
//! is missing.

mod real_model;

use real_model::{model, CHAT_PROMPT};

use std::sync::Arc;

use rotor_engine::{Engine, EngineConfig, EngineHandle, NativeRunner, OutputStream};
use rotor_model::{KvDtype, KvStorage, LlamaModel, SeqChunk};
use rotor_protocol::{FinishReason, GenerateRequest, SamplingParams, StopConditions};

const NEW_TOKENS: u32 = 24;

/// A ChatML-looking prompt of plausible ids (`<|im_start|>` = 1, newline = 198), varied by `salt`.
fn prompt(salt: u32, len: usize) -> Vec<u32> {
    let mut ids = vec![1, 4093, 198];
    ids.extend((0..len as u32 - 3).map(|i| 300 + (i * 389 + salt * 7919) % 20_000));
    ids
}

fn request(id: &str, token_ids: Vec<u32>) -> GenerateRequest {
    GenerateRequest {
        task: Default::default(),
        id: id.into(),
        token_ids,
        sampling: SamplingParams::greedy(),
        stop: StopConditions {
            max_tokens: NEW_TOKENS,
            ..StopConditions::default()
        },
    }
}

fn collect(rx: &mut OutputStream) -> Vec<u32> {
    let mut tokens = Vec::new();
    let mut finish = None;
    while let Some(item) = rx.blocking_recv() {
        let out = item.expect("no engine error");
        tokens.extend(out.token_ids);
        finish = out.finish_reason;
    }
    assert_eq!(finish, Some(FinishReason::Length));
    tokens
}

/// Greedy decoding with the model's forward directly: whole prompt, then one token per call.
fn reference_greedy(model: &LlamaModel, prompt: &[u32], n: usize) -> Vec<u32> {
    let block = 16;
    let blocks = (prompt.len() + n).div_ceil(block);
    let mut kv = KvStorage::new(model.config(), blocks, block, KvDtype::F32);
    let table: Vec<u32> = (0..blocks as u32).collect();
    let mut logits = Vec::new();
    let mut tokens = prompt.to_vec();
    let mut start = 0;
    while tokens.len() < prompt.len() + n {
        let chunk = SeqChunk {
            tokens: &tokens[start..],
            start_pos: start,
            block_table: &table,
            want_logits: true,
        };
        model
            .forward(&[chunk], &mut kv, &mut logits)
            .expect("forward");
        start = tokens.len();
        tokens.push(rotor_engine::argmax(&logits));
    }
    tokens.split_off(prompt.len())
}

fn start(model: &Arc<LlamaModel>) -> EngineHandle {
    start_with(model, true)
}

fn start_with(model: &Arc<LlamaModel>, enable_prefix_caching: bool) -> EngineHandle {
    let cfg = EngineConfig {
        max_num_seqs: 8,
        max_num_batched_tokens: 64,
        max_prefill_chunk_tokens: 32,
        block_size_tokens: 16,
        num_blocks: 64,
        enable_prefix_caching,
    };
    Engine::start(
        Box::new(NativeRunner::new(model.clone(), &cfg, KvDtype::F32)),
        cfg,
    )
    .expect("engine starts")
}

#[test]
fn greedy_tokens_are_the_same_alone_and_beside_three_other_requests() {
    let model = model();
    let target = CHAT_PROMPT.to_vec();
    let expected = reference_greedy(&model, &target, NEW_TOKENS as usize);
    let distinct: std::collections::HashSet<u32> = expected.iter().copied().collect();
    assert!(
        distinct.len() > 3,
        "a degenerate continuation proves little: {expected:?}"
    );

    let engine = start(&model);
    let alone = collect(
        &mut engine
            .submit(request("alone", target.clone()))
            .expect("valid"),
    );
    assert_eq!(alone, expected, "engine (alone) vs direct forward");

    let mut others: Vec<(Vec<u32>, OutputStream)> = [(1, 9), (2, 57), (3, 23)]
        .into_iter()
        .map(|(salt, len)| {
            let p = prompt(salt, len);
            let rx = engine
                .submit(request(&format!("other{salt}"), p.clone()))
                .expect("valid");
            (p, rx)
        })
        .collect();
    let together = collect(&mut engine.submit(request("together", target)).expect("valid"));
    assert_eq!(
        together, expected,
        "engine (batched with 3 others) vs direct forward"
    );
    for (p, rx) in &mut others {
        assert_eq!(
            collect(rx),
            reference_greedy(&model, p, NEW_TOKENS as usize),
            "prompt of {}",
            p.len()
        );
    }
    // Stats are published after each step, so they may trail the last output briefly.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while engine.stats().running > 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    let stats = engine.stats();
    assert_eq!((stats.running, stats.waiting, stats.blocks_used), (0, 0, 0));
    engine.shutdown();
    engine.join();
}

/// Tokens and the first output's `cached_prompt_tokens`.
fn collect_with_cached(rx: &mut OutputStream) -> (Vec<u32>, Option<u32>) {
    let first = rx
        .blocking_recv()
        .expect("an output")
        .expect("no engine error");
    let mut tokens = first.token_ids.to_vec();
    tokens.extend(collect(rx));
    (tokens, first.cached_prompt_tokens)
}

#[test]
fn a_prompt_served_from_the_prefix_cache_gives_the_same_greedy_tokens() {
    let model = model();
    let p = prompt(5, 40);
    let expected = reference_greedy(&model, &p, NEW_TOKENS as usize);

    let cached = start_with(&model, true);
    let first =
        collect_with_cached(&mut cached.submit(request("first", p.clone())).expect("valid"));
    let second =
        collect_with_cached(&mut cached.submit(request("second", p.clone())).expect("valid"));
    // 40 tokens = two full blocks of 16 + 8: the second request reuses 32 prompt tokens.
    assert_eq!(first, (expected.clone(), Some(0)));
    assert_eq!(second, (expected.clone(), Some(32)));
    cached.shutdown();
    cached.join();
    let stats = cached.stats();
    assert_eq!(
        (
            stats.prefix_cache_queries_tokens,
            stats.prefix_cache_hit_tokens
        ),
        (80, 32)
    );

    let uncached = start_with(&model, false);
    for id in ["third", "fourth"] {
        let got = collect_with_cached(&mut uncached.submit(request(id, p.clone())).expect("valid"));
        assert_eq!(
            got,
            (expected.clone(), Some(0)),
            "{id} without prefix caching"
        );
    }
    uncached.shutdown();
    uncached.join();
}

/// Copy-on-write on the real model: the siblings of an `n > 1` request (announced by the first
/// sequence, sent after its first output) copy the first sequence's partly filled last prompt
/// block and compute only the last prompt token; a repeated prompt that ends on a block boundary
/// copies its cached last block. Either way the greedy tokens are those of a plain forward loop.
#[test]
fn sibling_sequences_copy_the_prompt_blocks_and_decode_the_same_greedy_tokens() {
    let model = model();
    let engine = start(&model);
    let p = prompt(11, 40);
    let expected = reference_greedy(&model, &p, NEW_TOKENS as usize);
    let mut leader_request = request("leader", p.clone());
    leader_request.sampling.siblings = 2;
    let mut leader = engine.submit(leader_request).expect("valid");
    let first = leader
        .blocking_recv()
        .expect("an output")
        .expect("no engine error");
    let mut siblings: Vec<OutputStream> = ["s1", "s2"]
        .iter()
        .map(|id| engine.submit(request(id, p.clone())).expect("valid"))
        .collect();
    let mut leader_tokens = first.token_ids.to_vec();
    leader_tokens.extend(collect(&mut leader));
    assert_eq!(leader_tokens, expected);
    for rx in &mut siblings {
        // Two full blocks cached + 7 of the 8 tokens in the third copied: 39.
        assert_eq!(collect_with_cached(rx), (expected.clone(), Some(39)));
    }
    let stats = engine.stats();
    assert_eq!(
        (stats.kv_copy_on_write_blocks, stats.kv_copy_on_write_tokens),
        (2, 14)
    );

    let aligned = prompt(12, 48);
    let expected = reference_greedy(&model, &aligned, NEW_TOKENS as usize);
    for (id, cached) in [("a1", 0), ("a2", 47)] {
        let got =
            collect_with_cached(&mut engine.submit(request(id, aligned.clone())).expect("valid"));
        assert_eq!(got, (expected.clone(), Some(cached)), "{id}");
    }
    engine.shutdown();
    engine.join();
    let stats = engine.stats();
    assert_eq!(stats.kv_copy_on_write_blocks, 3);
    assert_eq!(
        stats.blocks_used, 0,
        "no block leaked (the kept one was released)"
    );
}

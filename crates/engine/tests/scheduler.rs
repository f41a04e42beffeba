//! Scheduler scenarios driven step by step through `EngineCore` with the scripted runner.

use std::sync::Arc;

use rotor_engine::{ChunkReport, EngineConfig, EngineCore, ScriptedRunner};
use rotor_protocol::{
    EngineOutput, ErrorKind, FinishReason, GenerateRequest, SamplingParams, StopConditions,
    WireError,
};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};

const VOCAB: usize = 1000;
const CTX: usize = 4096;

type Stream = UnboundedReceiver<Result<EngineOutput, WireError>>;

fn core(cfg: &EngineConfig) -> EngineCore {
    EngineCore::new(Box::new(ScriptedRunner::for_config(cfg, VOCAB, CTX)), cfg)
        .expect("valid config")
}

fn prompt(seed: u32, len: usize) -> Vec<u32> {
    (0..len as u32)
        .map(|i| (seed * 131 + i * 7) % VOCAB as u32)
        .collect()
}

fn request(id: &str, prompt: Vec<u32>, max_tokens: u32) -> GenerateRequest {
    GenerateRequest {
        task: Default::default(),
        id: id.into(),
        token_ids: prompt,
        sampling: SamplingParams::greedy(),
        stop: StopConditions {
            max_tokens,
            ..StopConditions::default()
        },
    }
}

fn submit(core: &mut EngineCore, req: GenerateRequest) -> Stream {
    let (tx, rx) = unbounded_channel();
    core.submit(req, tx).expect("request is valid");
    rx
}

/// Everything received so far: tokens, and the finish reason if the stream ended.
fn drain(rx: &mut Stream) -> (Vec<u32>, Option<FinishReason>) {
    let mut tokens = Vec::new();
    let mut finish = None;
    while let Ok(item) = rx.try_recv() {
        let out = item.expect("no error expected");
        assert!(finish.is_none(), "output after the finish");
        tokens.extend(out.token_ids);
        finish = out.finish_reason;
    }
    (tokens, finish)
}

fn run_to_completion(core: &mut EngineCore) -> usize {
    let mut steps = 0;
    while core.has_work() {
        assert!(core.step(), "a core with work must make a step");
        steps += 1;
        assert!(steps < 100_000, "engine does not terminate");
    }
    steps
}

fn chunks(core: &EngineCore) -> Vec<(String, usize, usize, bool)> {
    core.last_step()
        .chunks
        .iter()
        .map(|c: &ChunkReport| (c.request_id.to_string(), c.start_pos, c.len, c.want_logits))
        .collect()
}

fn cfg(budget: usize, chunk: usize, block: usize, blocks: usize, seqs: usize) -> EngineConfig {
    EngineConfig {
        max_num_seqs: seqs,
        max_num_batched_tokens: budget,
        max_prefill_chunk_tokens: chunk,
        block_size_tokens: block,
        num_blocks: blocks,
        enable_prefix_caching: true,
    }
}

#[test]
fn long_prompt_alone_is_prefilled_in_budget_sized_chunks() {
    let mut core = core(&cfg(32, 32, 4, 64, 8));
    let mut rx = submit(&mut core, request("c", prompt(3, 100), 2));
    let mut seen = Vec::new();
    for _ in 0..4 {
        core.step();
        seen.extend(chunks(&core));
    }
    let c = |s, n, w| ("c".to_string(), s, n, w);
    assert_eq!(
        seen,
        vec![
            c(0, 32, false),
            c(32, 32, false),
            c(64, 32, false),
            c(96, 4, true)
        ]
    );
    core.step();
    assert_eq!(chunks(&core), vec![c(100, 1, true)]);
    assert!(!core.has_work());
    assert_eq!(
        drain(&mut rx),
        (
            ScriptedRunner::greedy_continuation(&prompt(3, 100), 2, VOCAB),
            Some(FinishReason::Length)
        )
    );
}

#[test]
fn chunked_prefill_runs_beside_decodes_in_the_same_steps() {
    // Step budget 34, prefill chunks of at most 32: two decodes + one 32-token chunk per step.
    let mut core = core(&cfg(34, 32, 4, 256, 8));
    let mut a = submit(&mut core, request("a", prompt(1, 4), 30));
    let mut b = submit(&mut core, request("b", prompt(2, 4), 30));
    core.step();
    assert_eq!(
        chunks(&core),
        vec![("a".into(), 0, 4, true), ("b".into(), 0, 4, true)]
    );
    let mut c = submit(&mut core, request("c", prompt(3, 100), 3));
    let mut per_step = Vec::new();
    for _ in 0..4 {
        core.step();
        per_step.push(chunks(&core));
    }
    let dec = |id: &str, pos| (id.to_string(), pos, 1, true);
    let pre = |s, n, w| ("c".to_string(), s, n, w);
    assert_eq!(
        per_step,
        vec![
            vec![dec("a", 4), dec("b", 4), pre(0, 32, false)],
            vec![dec("a", 5), dec("b", 5), pre(32, 32, false)],
            vec![dec("a", 6), dec("b", 6), pre(64, 32, false)],
            vec![dec("a", 7), dec("b", 7), pre(96, 4, true)],
        ]
    );
    run_to_completion(&mut core);
    for (rx, seed, plen, n) in [(&mut a, 1, 4, 30), (&mut b, 2, 4, 30), (&mut c, 3, 100, 3)] {
        let expected = ScriptedRunner::greedy_continuation(&prompt(seed, plen), n, VOCAB);
        assert_eq!(drain(rx), (expected, Some(FinishReason::Length)));
    }
    assert_eq!(core.stats().blocks_used, 0);
}

#[test]
fn admission_is_first_come_first_served_within_max_num_seqs() {
    let mut core = core(&cfg(64, 64, 4, 64, 2));
    let mut rxs: Vec<Stream> = (0..4)
        .map(|i| submit(&mut core, request(&format!("r{i}"), prompt(i, 3), 2)))
        .collect();
    core.step();
    assert_eq!(
        chunks(&core),
        vec![("r0".into(), 0, 3, true), ("r1".into(), 0, 3, true)]
    );
    assert_eq!((core.stats().running, core.stats().waiting), (2, 2));
    core.step();
    assert_eq!(
        chunks(&core),
        vec![("r0".into(), 3, 1, true), ("r1".into(), 3, 1, true)]
    );
    // r0 and r1 finished (max_tokens 2); r2 and r3 take their places, in order.
    core.step();
    assert_eq!(
        chunks(&core),
        vec![("r2".into(), 0, 3, true), ("r3".into(), 0, 3, true)]
    );
    run_to_completion(&mut core);
    for (i, rx) in rxs.iter_mut().enumerate() {
        assert_eq!(drain(rx).1, Some(FinishReason::Length), "request r{i}");
    }
}

#[test]
fn admission_stops_at_the_token_budget_and_chunks_the_next_prompt() {
    let mut core = core(&cfg(8, 8, 4, 64, 8));
    let _r: Vec<Stream> = (0..3)
        .map(|i| submit(&mut core, request(&format!("r{i}"), prompt(i, 5), 2)))
        .collect();
    core.step();
    assert_eq!(
        chunks(&core),
        vec![("r0".into(), 0, 5, true), ("r1".into(), 0, 3, false)]
    );
    core.step();
    assert_eq!(
        chunks(&core),
        vec![
            ("r0".into(), 5, 1, true),
            ("r1".into(), 3, 2, true),
            ("r2".into(), 0, 5, true)
        ]
    );
}

#[test]
fn preemption_under_a_tiny_pool_keeps_every_request_exact() {
    // 8 blocks of 4 tokens = 32 tokens; each request grows to 6 + 20 = 26 tokens (7 blocks).
    let prompts: Vec<Vec<u32>> = (0..4).map(|i| prompt(i + 10, 6)).collect();
    let run = |config: EngineConfig| {
        let mut core = core(&config);
        let mut rxs: Vec<Stream> = prompts
            .iter()
            .enumerate()
            .map(|(i, p)| submit(&mut core, request(&format!("r{i}"), p.clone(), 20)))
            .collect();
        let mut max_used = 0;
        while core.has_work() {
            core.step();
            max_used = max_used.max(core.stats().blocks_used);
        }
        let outputs: Vec<_> = rxs.iter_mut().map(drain).collect();
        (outputs, core.stats(), max_used)
    };
    let (tight, tight_stats, max_used) = run(cfg(64, 64, 4, 8, 8));
    let (roomy, roomy_stats, _) = run(cfg(64, 64, 4, 1024, 8));
    assert!(
        tight_stats.preemptions > 0,
        "the tiny pool must force preemption"
    );
    assert_eq!(roomy_stats.preemptions, 0);
    assert!(max_used <= 8);
    assert_eq!(tight, roomy);
    for (p, (tokens, finish)) in prompts.iter().zip(&tight) {
        assert_eq!(tokens, &ScriptedRunner::greedy_continuation(p, 20, VOCAB));
        assert_eq!(*finish, Some(FinishReason::Length));
    }
    assert_eq!(tight_stats.blocks_used, 0);
}

#[test]
fn preempted_request_returns_to_the_front_and_recomputes_prompt_plus_output() {
    // 3 blocks of 4: a (prompt 4) and b (prompt 4) both need a third block at the same time.
    let mut core = core(&cfg(64, 64, 4, 3, 8));
    let mut a = submit(&mut core, request("a", prompt(1, 4), 6));
    let mut b = submit(&mut core, request("b", prompt(2, 4), 6));
    core.step(); // a: 0..4, b: 0..4 (one block each); both sample their first token.
    core.step(); // a@4, b@4 need a block each: a gets block 3 of 3, b is preempted.
    assert_eq!(core.last_step().preempted, vec![Arc::<str>::from("b")]);
    assert_eq!(chunks(&core), vec![("a".into(), 4, 1, true)]);
    assert_eq!((core.stats().running, core.stats().waiting), (1, 1));
    run_to_completion(&mut core);
    assert_eq!(
        drain(&mut a).0,
        ScriptedRunner::greedy_continuation(&prompt(1, 4), 6, VOCAB)
    );
    assert_eq!(
        drain(&mut b).0,
        ScriptedRunner::greedy_continuation(&prompt(2, 4), 6, VOCAB)
    );
}

#[test]
fn cancel_frees_all_blocks_at_once_and_ends_the_stream() {
    let mut core = core(&cfg(64, 64, 4, 64, 8));
    let mut a = submit(&mut core, request("a", prompt(1, 10), 100));
    let mut b = submit(&mut core, request("b", prompt(2, 10), 100));
    for _ in 0..5 {
        core.step();
    }
    // a and b each hold ceil(14 / 4) = 4 blocks.
    assert_eq!(core.stats().blocks_used, 8);
    assert!(core.cancel("a"));
    assert_eq!(core.stats().blocks_used, 4);
    assert_eq!(core.stats().running, 1);
    let (tokens, finish) = drain(&mut a);
    assert_eq!(tokens.len(), 5);
    assert_eq!(finish, Some(FinishReason::Cancelled));
    assert!(!core.cancel("a"), "a second cancel finds nothing");
    core.step();
    assert_eq!(chunks(&core), vec![("b".into(), 14, 1, true)]);
    assert_eq!(drain(&mut b).1, None);
}

#[test]
fn dropping_the_receiver_cancels_within_one_step() {
    let mut core = core(&cfg(64, 64, 4, 64, 8));
    let a = submit(&mut core, request("a", prompt(1, 10), 100));
    let _b = submit(&mut core, request("b", prompt(2, 10), 100));
    let c = submit(&mut core, request("c", prompt(3, 10), 100));
    core.step();
    drop(a);
    drop(c);
    core.step();
    assert_eq!(chunks(&core), vec![("b".into(), 10, 1, true)]);
    assert_eq!(core.stats().running, 1);
    assert_eq!(core.stats().blocks_used, 3);
}

#[test]
fn generation_ends_with_length_when_the_context_window_is_full() {
    let config = cfg(64, 64, 4, 64, 8);
    let mut core = EngineCore::new(
        Box::new(ScriptedRunner::for_config(&config, VOCAB, 20)),
        &config,
    )
    .expect("valid");
    let p = prompt(5, 15);
    let mut rx = submit(&mut core, request("w", p.clone(), 100));
    run_to_completion(&mut core);
    // Window 20, prompt 15: exactly 5 tokens, the last one never fed back.
    assert_eq!(
        drain(&mut rx),
        (
            ScriptedRunner::greedy_continuation(&p, 5, VOCAB),
            Some(FinishReason::Length)
        )
    );
}

#[test]
fn the_kv_pool_bounds_the_window_when_smaller_than_the_model_context() {
    let mut core = core(&cfg(64, 64, 4, 3, 8)); // 12 tokens
    let (tx, _rx) = unbounded_channel();
    let err = core
        .submit(request("big", prompt(1, 12), 1), tx)
        .expect_err("prompt fills the pool");
    assert_eq!(err.kind, ErrorKind::InvalidRequest);
    let mut rx = submit(&mut core, request("ok", prompt(1, 11), 10));
    run_to_completion(&mut core);
    assert_eq!(
        drain(&mut rx),
        (
            ScriptedRunner::greedy_continuation(&prompt(1, 11), 1, VOCAB),
            Some(FinishReason::Length)
        )
    );
}

#[test]
fn stop_tokens_respect_min_tokens_and_ignore_eos() {
    let p = prompt(7, 5);
    let expected = ScriptedRunner::greedy_continuation(&p, 10, VOCAB);
    let stop_at = |stop: StopConditions| {
        let mut core = core(&cfg(64, 64, 4, 64, 8));
        let req = GenerateRequest {
            task: Default::default(),
            stop,
            ..request("s", p.clone(), 10)
        };
        let mut rx = submit(&mut core, req);
        run_to_completion(&mut core);
        drain(&mut rx)
    };
    let stop_ids = vec![expected[2], expected[6]];
    let first = expected
        .iter()
        .position(|t| stop_ids.contains(t))
        .expect("present");
    let got = stop_at(StopConditions {
        max_tokens: 10,
        stop_token_ids: stop_ids.clone(),
        ..Default::default()
    });
    assert_eq!(got, (expected[..=first].to_vec(), Some(FinishReason::Stop)));
    // min_tokens 4 skips the stop at index 2; the next stop id occurrence ends it.
    let later = (4..10)
        .find(|&i| stop_ids.contains(&expected[i]))
        .expect("present");
    let got = stop_at(StopConditions {
        max_tokens: 10,
        stop_token_ids: stop_ids.clone(),
        min_tokens: 4,
        ..Default::default()
    });
    assert_eq!(got, (expected[..=later].to_vec(), Some(FinishReason::Stop)));
    let got = stop_at(StopConditions {
        max_tokens: 10,
        stop_token_ids: stop_ids,
        ignore_eos: true,
        ..Default::default()
    });
    assert_eq!(got, (expected.clone(), Some(FinishReason::Length)));
}

#[test]
fn invalid_requests_are_refused_with_invalid_request() {
    let mut core = core(&cfg(64, 64, 4, 64, 8));
    let cases = [
        request("empty", vec![], 4),
        request("vocab", vec![1, VOCAB as u32], 4),
        request("zero", vec![1], 0),
        GenerateRequest {
            task: Default::default(),
            sampling: SamplingParams {
                temperature: -1.0,
                ..SamplingParams::default()
            },
            ..request("temp", vec![1], 4)
        },
        GenerateRequest {
            task: Default::default(),
            sampling: SamplingParams {
                top_p: 0.0,
                ..SamplingParams::default()
            },
            ..request("topp", vec![1], 4)
        },
    ];
    for req in cases {
        let id = req.id.clone();
        let (tx, _rx) = unbounded_channel();
        let err = core.submit(req, tx).expect_err(&id);
        assert_eq!(err.kind, ErrorKind::InvalidRequest, "{id}: {err}");
    }
    let _a = submit(&mut core, request("dup", vec![1], 4));
    let (tx, _rx) = unbounded_channel();
    assert_eq!(
        core.submit(request("dup", vec![1], 4), tx)
            .expect_err("duplicate")
            .kind,
        ErrorKind::InvalidRequest
    );
}

#[test]
fn first_output_reports_zero_cached_prompt_tokens() {
    let mut core = core(&cfg(64, 64, 4, 64, 8));
    let mut rx = submit(&mut core, request("a", prompt(1, 4), 2));
    run_to_completion(&mut core);
    let first = rx.try_recv().expect("one output").expect("ok");
    let second = rx.try_recv().expect("two outputs").expect("ok");
    assert_eq!(first.cached_prompt_tokens, Some(0));
    assert_eq!(second.cached_prompt_tokens, None);
    assert_eq!(second.finish_reason, Some(FinishReason::Length));
}

//! Prompt scoring and embeddings through the engine on the real model, against llama.cpp's values
//! in crates/model/tests/fixtures/scoring_smollm2_q4_1.json (the tolerances are those of
//! crates/model/tests/scoring_golden.rs): chunked prefill, a prefix already cached, `max_tokens`
//! 0, the KV pool back to its baseline afterwards (cancelled requests included), the counters,
//! and clear refusals from runners that cannot do it.

mod real_model;

use real_model::model;

use rotor_engine::mocker::{MockerConfig, MockerRunner, MockerTiming};
use rotor_engine::{Engine, EngineConfig, EngineCore, NativeRunner, ScriptedRunner};
use rotor_model::KvDtype;
use rotor_protocol::{
    EngineOutput, ErrorKind, FinishReason, GenerateRequest, Pooling, SamplingParams,
    StopConditions, Task, TokenLogprob, WireError,
};
use serde_json::Value;
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};

/// As scoring_golden.rs: cosine to llama.cpp's pooled embedding, |logprob difference|.
const MIN_COSINE: f64 = 0.999;
const LOGPROB_TOLERANCE: f64 = 0.4;
const TOP: u32 = 5;

type Stream = UnboundedReceiver<Result<EngineOutput, WireError>>;

fn fixture() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../model/tests/fixtures/scoring_smollm2_q4_1.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).expect("read fixture")).expect("JSON")
}

struct Text {
    name: String,
    tokens: Vec<u32>,
    fixture: Value,
}

fn texts() -> Vec<Text> {
    fixture()["texts"]
        .as_array()
        .expect("texts")
        .iter()
        .map(|t| Text {
            name: t["name"].as_str().expect("name").into(),
            tokens: t["token_ids"]
                .as_array()
                .expect("ids")
                .iter()
                .map(|x| x.as_u64().expect("id") as u32)
                .collect(),
            fixture: t.clone(),
        })
        .collect()
}

/// Block size 4 and prefill chunks of 5 tokens: every fixture text spans several chunks that
/// do not line up with blocks.
fn cfg(max_prefill_chunk_tokens: usize) -> EngineConfig {
    EngineConfig {
        max_num_seqs: 8,
        max_num_batched_tokens: 64,
        max_prefill_chunk_tokens,
        block_size_tokens: 4,
        num_blocks: 96,
        enable_prefix_caching: true,
    }
}

fn core(cfg: &EngineConfig) -> EngineCore {
    let runner = NativeRunner::new(model(), cfg, KvDtype::F32);
    EngineCore::new(Box::new(runner), cfg).expect("engine core")
}

fn scoring(id: &str, tokens: &[u32], max_tokens: u32) -> GenerateRequest {
    GenerateRequest {
        id: id.into(),
        token_ids: tokens.to_vec(),
        sampling: SamplingParams {
            prompt_logprobs: Some(TOP),
            ..SamplingParams::greedy()
        },
        stop: StopConditions {
            max_tokens,
            ignore_eos: true,
            ..StopConditions::default()
        },
        task: Task::Generate,
    }
}

fn embedding(id: &str, tokens: &[u32], pooling: Pooling) -> GenerateRequest {
    GenerateRequest {
        id: id.into(),
        token_ids: tokens.to_vec(),
        sampling: SamplingParams::greedy(),
        stop: StopConditions {
            max_tokens: 0,
            ..StopConditions::default()
        },
        task: Task::Embed {
            pooling,
            normalize: true,
        },
    }
}

fn submit(core: &mut EngineCore, req: GenerateRequest) -> Stream {
    let (tx, rx) = unbounded_channel();
    core.submit(req, tx).expect("request is valid");
    rx
}

fn run(core: &mut EngineCore) {
    while core.has_work() {
        assert!(core.step(), "the engine made progress");
    }
}

fn outputs(rx: &mut Stream) -> Vec<EngineOutput> {
    std::iter::from_fn(|| rx.try_recv().ok())
        .map(|r| r.expect("no engine error"))
        .collect()
}

/// Compares prompt logprobs to llama.cpp's for one text; returns the worst difference.
fn check_logprobs(text: &Text, got: &[TokenLogprob]) -> f64 {
    let expected = text.fixture["prompt_logprobs"]
        .as_array()
        .expect("logprobs");
    assert_eq!(got.len(), text.tokens.len() - 1, "{}", text.name);
    assert_eq!(expected.len(), got.len());
    let mut worst = 0.0f64;
    for (i, (e, g)) in expected.iter().zip(got).enumerate() {
        assert_eq!(g.token_id, text.tokens[i + 1], "{} entry {i}", text.name);
        let diff = (g.logprob as f64 - e["logprob"].as_f64().expect("logprob")).abs();
        assert!(
            diff < LOGPROB_TOLERANCE,
            "{} position {}: {} vs llama.cpp {e}",
            text.name,
            i + 1,
            g.logprob
        );
        worst = worst.max(diff);
        assert_eq!(g.top.len(), TOP as usize);
        let top = e["top"].as_array().expect("top");
        let (t0, l0, l1) = (
            top[0][0].as_u64().expect("id") as u32,
            top[0][1].as_f64().expect("lp"),
            top[1][1].as_f64().expect("lp"),
        );
        assert!(
            g.top[0].0 == t0 || l0 - l1 < 0.3,
            "{} position {}: our best {:?}, llama.cpp's {t0}",
            text.name,
            i + 1,
            g.top[0]
        );
        assert!((g.top[0].1 as f64 - l0).abs() < LOGPROB_TOLERANCE);
    }
    worst
}

fn cosine(a: &[f32], b: &Value) -> f64 {
    let b: Vec<f64> = b
        .as_array()
        .expect("floats")
        .iter()
        .map(|x| x.as_f64().expect("float"))
        .collect();
    assert_eq!(a.len(), b.len());
    let dot: f64 = a.iter().zip(&b).map(|(&x, y)| x as f64 * y).sum();
    let na = a.iter().map(|&x| (x as f64).powi(2)).sum::<f64>().sqrt();
    let nb = b.iter().map(|y| y * y).sum::<f64>().sqrt();
    dot / (na * nb)
}

fn assert_pool_at_baseline(core: &EngineCore, cfg: &EngineConfig) {
    let kv = core.scheduler().kv_blocks();
    assert_eq!(kv.num_used(), 0, "no block held after every request ended");
    assert_eq!(
        kv.pool().num_free(),
        cfg.num_blocks,
        "every block free again"
    );
    assert_eq!(core.stats().blocks_used, 0);
}

#[test]
fn prompt_logprobs_with_chunked_prefill_match_llama_cpp() {
    let cfg = cfg(5);
    let mut core = core(&cfg);
    let mut worst = 0.0f64;
    for text in texts() {
        let mut rx = submit(&mut core, scoring(&text.name, &text.tokens, 0));
        run(&mut core);
        let outs = outputs(&mut rx);
        assert_eq!(outs.len(), 1, "{}: one output scores the prompt", text.name);
        let out = &outs[0];
        assert!(out.token_ids.is_empty(), "max_tokens 0 generates nothing");
        assert_eq!(out.finish_reason, Some(FinishReason::Length));
        assert_eq!(out.embedding, None);
        let got = out.prompt_logprobs.as_ref().expect("prompt logprobs");
        worst = worst.max(check_logprobs(&text, got));
    }
    eprintln!("worst prompt-logprob difference to llama.cpp through the engine: {worst:.4}");
    let stats = core.stats();
    assert_eq!(stats.prompt_logprob_requests, texts().len() as u64);
    assert_eq!(stats.embedding_requests, 0);
    assert_pool_at_baseline(&core, &cfg);
}

#[test]
fn prompt_logprobs_of_a_cached_prefix_compute_every_position_and_ride_the_first_output() {
    let cfg = cfg(16);
    let mut core = core(&cfg);
    let text = texts()
        .into_iter()
        .find(|t| t.name == "long")
        .expect("long");
    // An earlier plain request caches the prompt's blocks.
    let mut warm = scoring("warm", &text.tokens, 1);
    warm.sampling.prompt_logprobs = None;
    let mut rx = submit(&mut core, warm);
    run(&mut core);
    assert_eq!(outputs(&mut rx).len(), 1);
    let hits_before = core.stats().prefix_cache_hit_tokens;
    let mut again = submit(&mut core, scoring("cached", &text.tokens, 1));
    let mut check = scoring("check", &text.tokens, 1);
    check.sampling.prompt_logprobs = None;
    let mut plain = submit(&mut core, check);
    run(&mut core);
    let outs = outputs(&mut again);
    assert_eq!(outs.len(), 1);
    assert_eq!(
        outs[0].cached_prompt_tokens,
        Some(0),
        "a scored prompt takes no cache hit"
    );
    assert_eq!(outs[0].token_ids.len(), 1, "then it generates as asked");
    check_logprobs(&text, outs[0].prompt_logprobs.as_ref().expect("scores"));
    // The plain request beside it still reuses the cached prefix, and both sample the same token.
    let plain = outputs(&mut plain);
    assert!(plain[0].cached_prompt_tokens.expect("first output") > 0);
    assert_eq!(plain[0].prompt_logprobs, None);
    assert_eq!(plain[0].token_ids, outs[0].token_ids);
    assert!(core.stats().prefix_cache_hit_tokens > hits_before);

    // With several tokens generated, only the first output carries the prompt scores.
    let mut rx = submit(&mut core, scoring("three", &text.tokens, 3));
    run(&mut core);
    let outs = outputs(&mut rx);
    assert_eq!(outs.len(), 3);
    assert!(outs[0].prompt_logprobs.is_some());
    assert!(outs[1..].iter().all(|o| o.prompt_logprobs.is_none()));
    assert_eq!(core.stats().prompt_logprob_requests, 2);
    assert_pool_at_baseline(&core, &cfg);
}

#[test]
fn embeddings_match_llama_cpp_and_free_their_blocks() {
    let cfg = cfg(5);
    let mut core = core(&cfg);
    let mut worst = f64::MAX;
    let texts = texts();
    let mut n = 0;
    for (pooling, key) in [
        (Pooling::Mean, "embedding_mean"),
        (Pooling::Last, "embedding_last"),
    ] {
        // All texts at once: their chunks share steps.
        let mut streams: Vec<Stream> = texts
            .iter()
            .map(|t| {
                submit(
                    &mut core,
                    embedding(&format!("{}-{key}", t.name), &t.tokens, pooling),
                )
            })
            .collect();
        run(&mut core);
        for (text, rx) in texts.iter().zip(&mut streams) {
            let outs = outputs(rx);
            assert_eq!(outs.len(), 1, "one output per embedding");
            let out = &outs[0];
            assert_eq!(out.finish_reason, Some(FinishReason::Stop));
            assert!(out.token_ids.is_empty());
            let e = out.embedding.as_ref().expect("an embedding");
            assert_eq!(e.len(), model().config().embedding_dim);
            let norm = e.iter().map(|&x| (x as f64).powi(2)).sum::<f64>().sqrt();
            assert!((norm - 1.0).abs() < 1e-4, "normalised: {norm}");
            let c = cosine(e, &text.fixture[key]);
            assert!(c >= MIN_COSINE, "{} {key}: cosine {c}", text.name);
            worst = worst.min(c);
            n += 1;
        }
    }
    eprintln!("worst embedding cosine to llama.cpp through the engine: {worst:.6}");
    assert_eq!(core.stats().embedding_requests, n);
    assert_pool_at_baseline(&core, &cfg);
}

#[test]
fn cancelled_scoring_and_embedding_requests_free_their_blocks() {
    let cfg = cfg(5);
    let mut core = core(&cfg);
    let long = texts()
        .into_iter()
        .find(|t| t.name == "long")
        .expect("long");
    let mut embed = submit(&mut core, embedding("embed", &long.tokens, Pooling::Mean));
    let mut score = submit(&mut core, scoring("score", &long.tokens, 0));
    assert!(core.step(), "one prefill chunk each");
    assert!(core.scheduler().kv_blocks().num_used() > 0);
    assert!(core.cancel("embed"));
    assert!(core.cancel("score"));
    for rx in [&mut embed, &mut score] {
        let outs = outputs(rx);
        assert_eq!(outs.len(), 1);
        assert_eq!(outs[0].finish_reason, Some(FinishReason::Cancelled));
        assert_eq!(outs[0].embedding, None);
    }
    // A dropped receiver (client gone) frees its blocks too.
    let rx = submit(&mut core, embedding("dropped", &long.tokens, Pooling::Last));
    assert!(core.step());
    drop(rx);
    run(&mut core);
    let stats = core.stats();
    assert_eq!(
        (stats.embedding_requests, stats.prompt_logprob_requests),
        (0, 0)
    );
    assert_pool_at_baseline(&core, &cfg);
}

#[test]
fn invalid_scoring_requests_are_refused_with_reasons() {
    let cfg = cfg(5);
    let mut core = core(&cfg);
    let refuse = |core: &mut EngineCore, req: GenerateRequest| {
        let (tx, _rx) = unbounded_channel();
        let err = core.submit(req, tx).expect_err("refused");
        assert_eq!(err.kind, ErrorKind::InvalidRequest);
        err.message
    };
    let mut plain = scoring("p", &[1, 2, 3], 0);
    plain.sampling.prompt_logprobs = None;
    let m = refuse(&mut core, plain);
    assert!(m.contains("max_tokens must be at least 1"), "{m}");
    let mut embed = embedding("e", &[1, 2, 3], Pooling::Mean);
    embed.stop.max_tokens = 4;
    let m = refuse(&mut core, embed);
    assert!(m.contains("max_tokens must be 0"), "{m}");
    let mut both = embedding("b", &[1, 2, 3], Pooling::Mean);
    both.sampling.prompt_logprobs = Some(1);
    let m = refuse(&mut core, both);
    assert!(m.contains("cannot also ask for prompt_logprobs"), "{m}");
    let mut many = scoring("m", &[1, 2, 3], 0);
    many.sampling.prompt_logprobs = Some(21);
    let m = refuse(&mut core, many);
    assert!(m.contains("prompt_logprobs asks for 21"), "{m}");
}

#[test]
fn runners_without_prompt_outputs_refuse_scoring_and_embeddings() {
    let cfg = cfg(5);
    // The mocker (through a running engine) and the scripted test runner.
    let mocker = MockerRunner::new(MockerConfig::new(
        MockerTiming::DynamoVllm,
        &cfg,
        49_152,
        8192,
    ))
    .expect("mocker");
    let engine = Engine::start(Box::new(mocker), cfg.clone()).expect("engine");
    for (req, feature) in [
        (scoring("s", &[1, 2, 3], 1), "prompt logprobs"),
        (embedding("e", &[1, 2, 3], Pooling::Mean), "embeddings"),
    ] {
        let err = engine.submit(req.clone()).expect_err("refused");
        assert_eq!(err.kind, ErrorKind::InvalidRequest);
        assert!(
            err.message.contains(&format!("does not support {feature}")),
            "{}",
            err.message
        );
        let mut core =
            EngineCore::new(Box::new(ScriptedRunner::for_config(&cfg, 1000, 4096)), &cfg)
                .expect("core");
        let (tx, _rx) = unbounded_channel();
        let err = core.submit(req, tx).expect_err("refused");
        assert!(err.message.contains(feature), "{}", err.message);
    }
    engine.shutdown();
}

#[test]
fn a_scoring_request_preempted_mid_prefill_is_scored_again_from_the_start() {
    // 24 blocks of 4 tokens: two 73-token prompts (19 blocks each) cannot both be held, so the
    // later one is preempted while prefilling and recomputed, collecting its rows afresh.
    let cfg = EngineConfig {
        num_blocks: 24,
        ..cfg(5)
    };
    let mut core = core(&cfg);
    let long = texts()
        .into_iter()
        .find(|t| t.name == "long")
        .expect("long");
    let mut first = submit(&mut core, scoring("first", &long.tokens, 0));
    let mut second = submit(&mut core, scoring("second", &long.tokens, 0));
    run(&mut core);
    assert!(core.stats().preemptions > 0, "the pool forced a preemption");
    for rx in [&mut first, &mut second] {
        let outs = outputs(rx);
        assert_eq!(outs.len(), 1);
        check_logprobs(&long, outs[0].prompt_logprobs.as_ref().expect("scores"));
    }
    assert_pool_at_baseline(&core, &cfg);
}

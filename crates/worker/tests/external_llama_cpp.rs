//! `ExternalEngine` in front of a real llama.cpp `llama-server` (started here on a free port
//! with the default model): greedy token ids equal llama-server's own, dropping a stream closes
//! the upstream request, a dead engine fails requests with `EngineStopped` (which frontends
//! migrate), bad requests are refused before they leave, and `--engine openai` relays text
//! through llama-server's /v1 API.
//!
//! Needs llama-server: ROTOR_TEST_LLAMA_SERVER, else /work/llama-build/build/bin/llama-server
//! (scripts/build-llama-cpp llama-server builds it; scripts/test does).

use std::process::Command;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use futures::StreamExt;
use rotor_protocol::{ErrorKind, FinishReason, GenerateRequest, SamplingParams, StopConditions};
use rotor_worker::{
    ExternalConfig, ExternalEngine, ExternalKind, GgufModel, ModelSpec, WorkerEngine,
};

use rotor_testing::LlamaServerGuard as LlamaServer;

fn card() -> rotor_protocol::ModelCard {
    let path = rotor_testing::model_path();
    let file = GgufModel::open(&path).unwrap();
    let spec = ModelSpec {
        path,
        name: "smollm2".into(),
        sampling_defaults: Default::default(),
        max_model_len: None,
        chat_template: None,
    };
    file.card(&spec, 2048, None).unwrap()
}

async fn engine(kind: ExternalKind, url: &str) -> ExternalEngine {
    let mut cfg = ExternalConfig::new(kind, url);
    cfg.connect_timeout = Duration::from_secs(30);
    ExternalEngine::start(cfg, card()).await.unwrap()
}

fn greedy(prompt: &[u32], max_tokens: u32) -> GenerateRequest {
    GenerateRequest {
        task: Default::default(),
        id: "t".into(),
        token_ids: prompt.to_vec(),
        sampling: SamplingParams::greedy(),
        stop: StopConditions {
            max_tokens,
            ..StopConditions::default()
        },
    }
}

/// Token ids and finish reason of a whole stream.
async fn collect(
    engine: &ExternalEngine,
    req: GenerateRequest,
) -> Result<(Vec<u32>, FinishReason), rotor_protocol::WireError> {
    let mut stream = engine.generate(req)?;
    let mut ids = Vec::new();
    while let Some(item) = stream.next().await {
        let out = item?;
        ids.extend_from_slice(out.token_ids.as_slice());
        if let Some(f) = out.finish_reason {
            return Ok((ids, f));
        }
    }
    panic!("the stream ended without a finish reason");
}

/// llama-server's own greedy ids for `prompt` (non-streaming /completion).
fn direct(url: &str, prompt: &[u32], n: u32) -> Vec<u32> {
    let body = serde_json::json!({"prompt": prompt, "n_predict": n, "temperature": 0, "return_tokens": true, "cache_prompt": false});
    let out = Command::new("curl")
        .args([
            "-sf",
            &format!("{url}/completion"),
            "-H",
            "Content-Type: application/json",
            "-d",
            &body.to_string(),
        ])
        .output()
        .expect("curl");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON from llama-server");
    v["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_u64().unwrap() as u32)
        .collect()
}

const PROMPT: [u32; 5] = [504, 3575, 282, 4649, 314]; // "The capital of France is"

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn llama_cpp_relay_matches_llama_server_and_handles_failures() {
    let server = LlamaServer::start(&rotor_testing::model_path());
    let engine = engine(ExternalKind::LlamaCpp, &server.url).await;
    // The card's context is llama-server's per-slot context (4096 / 2 slots).
    assert_eq!(engine.card().context_length, 2048);

    // Greedy output equals llama-server's own.
    let (ids, finish) = collect(&engine, greedy(&PROMPT, 12)).await.unwrap();
    assert_eq!(finish, FinishReason::Length);
    assert_eq!(ids.len(), 12);
    assert_eq!(ids, direct(&server.url, &PROMPT, 12));

    // Stop ids end the stream at the first one (kept, as the native engine keeps it).
    let mut req = greedy(&PROMPT, 12);
    req.stop.stop_token_ids = vec![ids[3]];
    let (stopped, finish) = collect(&engine, req).await.unwrap();
    let first_stop = ids.iter().position(|&t| t == ids[3]).unwrap();
    assert_eq!(
        (stopped.as_slice(), finish),
        (&ids[..=first_stop], FinishReason::Stop)
    );

    // Dropping a stream cancels upstream.
    let before = engine.stats().cancelled.load(Ordering::Relaxed);
    let mut long = greedy(&PROMPT, 400);
    long.stop.ignore_eos = true;
    let mut stream = engine.generate(long).unwrap();
    let first = stream.next().await.unwrap().unwrap();
    assert!(!first.token_ids.as_slice().is_empty());
    drop(stream);
    let start = Instant::now();
    while engine.stats().cancelled.load(Ordering::Relaxed) == before {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the relay did not notice the drop"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let start = Instant::now();
    while engine.load().running > 0 {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the cancelled request still counts as running"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Bad requests are refused before anything is sent.
    let relayed = engine.stats().relayed.load(Ordering::Relaxed);
    let err = engine
        .generate(greedy(&[u32::MAX - 1], 4))
        .err()
        .expect("refused");
    assert_eq!(err.kind, ErrorKind::InvalidRequest);
    let mut with_logprobs = greedy(&PROMPT, 4);
    with_logprobs.sampling.logprobs = Some(1);
    assert_eq!(
        engine.generate(with_logprobs).err().unwrap().kind,
        ErrorKind::InvalidRequest
    );
    let mut scoring = greedy(&PROMPT, 0);
    scoring.sampling.prompt_logprobs = Some(0);
    let mut embedding = greedy(&PROMPT, 0);
    embedding.task = rotor_protocol::Task::Embed {
        pooling: rotor_protocol::Pooling::Mean,
        normalize: true,
    };
    for (req, what) in [(scoring, "prompt_logprobs"), (embedding, "embedding")] {
        let err = engine.generate(req).err().expect("refused");
        assert_eq!(err.kind, ErrorKind::InvalidRequest);
        assert!(err.message.contains(what), "{}", err.message);
    }
    assert_eq!(engine.stats().relayed.load(Ordering::Relaxed), relayed);

    // `openai` (text in, text out) through llama-server's /v1 API gives the same text.
    let text_engine = engine_openai(&server.url).await;
    let (text_ids, _) = collect(&text_engine, greedy(&PROMPT, 12)).await.unwrap();
    let tokenizer = rotor_text::Tokenizer::from_spec(&card().tokenizer).unwrap();
    assert_eq!(
        tokenizer.decode(&text_ids, false).unwrap(),
        tokenizer.decode(&ids, false).unwrap()
    );
    assert!(text_engine.stats().completed.load(Ordering::Relaxed) >= 1);

    // The engine dies mid-stream: the stream ends with EngineStopped (migratable).
    let mut long = greedy(&PROMPT, 1000);
    long.stop.ignore_eos = true;
    let mut stream = engine.generate(long).unwrap();
    assert!(stream.next().await.unwrap().is_ok());
    drop(server);
    let mut last = None;
    while let Some(item) = tokio::time::timeout(Duration::from_secs(20), stream.next())
        .await
        .unwrap()
    {
        if let Err(e) = item {
            last = Some(e);
            break;
        }
    }
    assert_eq!(
        last.expect("an error ends the stream").kind,
        ErrorKind::EngineStopped
    );
    // And later requests fail the same way.
    let err = collect(&engine, greedy(&PROMPT, 4)).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::EngineStopped, "{err}");
    assert!(engine.stats().upstream_errors.load(Ordering::Relaxed) >= 2);
    assert!(engine.stats().completed.load(Ordering::Relaxed) >= 2);
    engine.shutdown();
}

async fn engine_openai(url: &str) -> ExternalEngine {
    engine(ExternalKind::OpenAi, url).await
}

#[tokio::test]
async fn an_unreachable_engine_is_a_named_start_error() {
    let port = rotor_testing::free_port();
    let mut cfg = ExternalConfig::new(ExternalKind::LlamaCpp, format!("http://127.0.0.1:{port}"));
    cfg.connect_timeout = Duration::from_millis(300);
    let err = ExternalEngine::start(cfg, card())
        .await
        .err()
        .expect("no engine there");
    let text = err.to_string();
    assert!(
        text.contains(&port.to_string()) && text.contains("is the engine running"),
        "{text}"
    );
    let err = ExternalEngine::start(ExternalConfig::new(ExternalKind::Vllm, "https://x"), card())
        .await
        .err()
        .unwrap();
    assert!(err.to_string().contains("http://"), "{err}");
}

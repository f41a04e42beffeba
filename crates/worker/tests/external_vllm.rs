//! `ExternalEngine` in front of a real vLLM-CPU: token-id prompts relayed with
//! `return_token_ids` give vLLM's own greedy ids, the card's block size comes from vLLM's
//! /metrics, and vLLM's ZMQ KV events for a prompt arrive as Rotor events carrying exactly the
//! router's hashes of that prompt.
//!
//! Ignored by default: vLLM-CPU is a 6 GB install and takes 3-5 min to start. scripts/test runs
//! it with ROTOR_TEST_VLLM=1 (scripts/vllm/setup installs vLLM and converts the model;
//! scripts/vllm/serve starts it). Environment: ROTOR_TEST_VLLM_URL (a running vLLM, e.g.
//! http://127.0.0.1:18000), ROTOR_TEST_VLLM_KV_EVENTS (its --kv-events-config endpoint, e.g.
//! tcp://127.0.0.1:18557, which the test binds), ROTOR_TEST_VLLM_MODEL_DIR (the HF directory it
//! serves, for the tokenizer).

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use futures::StreamExt;
use rotor_protocol::{
    FinishReason, GenerateRequest, KvEventData, ModelCard, SamplingParams, StopConditions,
};
use rotor_worker::{ExternalConfig, ExternalEngine, ExternalKind, WorkerEngine};

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set (see this file's header)"))
}

fn card(dir: &std::path::Path) -> ModelCard {
    let hf = rotor_text::hf_dir::read_hf_dir(dir).unwrap();
    ModelCard {
        embedding_length: None,
        host_id: None,
        kv_host_pool: None,
        name: "smollm2".into(),
        context_length: hf.context_length.unwrap_or(2048) as u32,
        tokenizer: hf.tokenizer,
        chat_template: hf.chat_template,
        created: 0,
        sampling_defaults: Default::default(),
        kv_block_size: None,
        role: Default::default(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a running vLLM-CPU (ROTOR_TEST_VLLM=1 scripts/test)"]
async fn vllm_relay_and_kv_events() {
    let url = env("ROTOR_TEST_VLLM_URL");
    let dir = PathBuf::from(env("ROTOR_TEST_VLLM_MODEL_DIR"));
    // The HF directory's tokenizer is the GGUF's it was converted from, id for id.
    let gguf = rotor_worker::GgufModel::open(&rotor_testing::model_path()).unwrap();
    let from_gguf = rotor_model::card::tokenizer_spec(&gguf.gguf).unwrap();
    let hf = card(&dir).tokenizer;
    assert_eq!(
        (&hf.tokens, &hf.token_types, &hf.merges, &hf.pre),
        (
            &from_gguf.tokens,
            &from_gguf.token_types,
            &from_gguf.merges,
            &from_gguf.pre
        )
    );
    assert_eq!(
        (
            hf.bos_token_id,
            hf.eos_token_id,
            &hf.eot_token_ids,
            hf.add_bos_token
        ),
        (
            from_gguf.bos_token_id,
            from_gguf.eos_token_id,
            &from_gguf.eot_token_ids,
            from_gguf.add_bos_token
        )
    );
    let mut cfg = ExternalConfig::new(ExternalKind::Vllm, &url);
    cfg.kv_events = Some(env("ROTOR_TEST_VLLM_KV_EVENTS"));
    cfg.connect_timeout = Duration::from_secs(600);
    let engine = ExternalEngine::start(cfg, card(&dir)).await.unwrap();
    assert_eq!(
        engine.card().kv_block_size,
        Some(32),
        "block size from vLLM's /metrics"
    );
    let mut events = engine.take_external_kv_events().expect("a KV event stream");

    // A prompt vLLM has not seen (3 full blocks of 32 and a partial one).
    let salt = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
        % 20000) as u32;
    let prompt: Vec<u32> = (0..100).map(|i| 100 + (salt + i * 131) % 40000).collect();
    // vLLM's publisher reconnects to our socket within its reconnect interval; until it has,
    // events are lost, so wait for the first message of a warm-up request.
    let start = Instant::now();
    let mut warm = 0u32;
    while engine.stats().kv_messages.load(Ordering::Relaxed) == 0 {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no KV event message from vLLM"
        );
        let p: Vec<u32> = (0..40)
            .map(|i| 200 + (salt + 7 * warm + i * 17) % 30000)
            .collect();
        warm += 1;
        let mut s = engine.generate(greedy(&p, 1)).unwrap();
        while s.next().await.is_some() {}
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    while events.try_recv().is_ok() {}

    let mut stream = engine.generate(greedy(&prompt, 8)).unwrap();
    let mut ids = Vec::new();
    let mut finish = None;
    while let Some(out) = stream.next().await {
        let out = out.unwrap();
        ids.extend_from_slice(out.token_ids.as_slice());
        finish = out.finish_reason.or(finish);
    }
    assert_eq!(finish, Some(FinishReason::Length));
    assert_eq!(ids, direct(&url, &prompt, 8), "vLLM's own greedy ids");

    let want = rotor_tokens::sequence_hashes(&prompt, 32);
    let mut got = Vec::new();
    let start = Instant::now();
    while got.len() < want.len() {
        let e = tokio::time::timeout(Duration::from_secs(30), events.recv())
            .await
            .expect("KV events")
            .unwrap();
        if let KvEventData::Stored { blocks, .. } = e.data {
            got.extend(
                blocks
                    .iter()
                    .map(|b| b.block_hash)
                    .filter(|h| want.contains(h)),
            );
        }
        assert!(start.elapsed() < Duration::from_secs(60));
    }
    assert_eq!(got, want);
    let snapshot = engine.kv_snapshot().unwrap().await.unwrap();
    assert!(want.iter().all(|h| snapshot.block_hashes.contains(h)));
    assert!(engine.stats().metrics_reads.load(Ordering::Relaxed) >= 1);
    assert!(engine.load().total_blocks > 0, "load from vLLM's /metrics");
    eprintln!("stats: {}", engine.stats().summary());
    engine.shutdown();
}

fn greedy(prompt: &[u32], max_tokens: u32) -> GenerateRequest {
    GenerateRequest {
        task: Default::default(),
        id: "v".into(),
        token_ids: prompt.to_vec(),
        sampling: SamplingParams::greedy(),
        stop: StopConditions {
            max_tokens,
            ignore_eos: true,
            ..StopConditions::default()
        },
    }
}

fn direct(url: &str, prompt: &[u32], n: u32) -> Vec<u32> {
    let body = serde_json::json!({"model": "smollm2", "prompt": prompt, "max_tokens": n, "temperature": 0, "ignore_eos": true, "return_token_ids": true});
    let out = Command::new("curl")
        .args([
            "-sf",
            &format!("{url}/v1/completions"),
            "-H",
            "Content-Type: application/json",
            "-d",
            &body.to_string(),
        ])
        .output()
        .expect("curl");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON from vLLM");
    v["choices"][0]["token_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_u64().unwrap() as u32)
        .collect()
}

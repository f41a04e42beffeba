//! `rotor worker --engine vllm` in front of a real vLLM-CPU, behind `rotor frontend
//! --router-mode kv` over NATS: the official `openai` client streams chat and completions, greedy
//! text equals vLLM's own, and vLLM's KV events reach the frontend's kv router, which then finds
//! a repeated prompt's blocks cached.
//!
//! Ignored by default (vLLM-CPU: 6 GB install, 3-5 min start-up); scripts/test runs it with
//! ROTOR_TEST_VLLM=1 against the vLLM it starts (ROTOR_TEST_VLLM_URL,
//! ROTOR_TEST_VLLM_KV_EVENTS, ROTOR_TEST_VLLM_MODEL_DIR as in
//! crates/worker/tests/external_vllm.rs).

mod cluster;

use std::process::Command;
use std::time::{Duration, Instant};

use cluster::{frontend, post_json, worker};
use rotor_testing::NatsGuard;
use serde_json::json;

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set (see this file's header)"))
}

#[test]
#[ignore = "needs a running vLLM-CPU (ROTOR_TEST_VLLM=1 scripts/test)"]
fn vllm_worker_behind_a_kv_routing_frontend() {
    let (url, events, dir) = (
        env("ROTOR_TEST_VLLM_URL"),
        env("ROTOR_TEST_VLLM_KV_EVENTS"),
        env("ROTOR_TEST_VLLM_MODEL_DIR"),
    );
    let nats = NatsGuard::start().expect("nats-server starts");
    let plane = format!("nats://{}", nats.addr());
    let tmp = tempfile::tempdir().expect("tempdir");
    let discovery = format!("file:{}", tmp.path().display());
    let _w = worker(
        "vllm",
        &discovery,
        &plane,
        &[
            "--engine",
            "vllm",
            "--engine-url",
            &url,
            "--engine-kv-events",
            &events,
            "--tokenizer",
            &dir,
            "--model-name",
            "smollm2",
        ],
    );
    let f = frontend(&discovery, &plane, &["--router-mode", "kv"]);
    f.wait_models(Duration::from_secs(30), "smollm2", |ids| {
        ids.iter().any(|m| m == "smollm2")
    });

    // vLLM's publisher reconnects to the worker's socket; until then its events are lost.
    let start = Instant::now();
    let mut i = 0;
    while f.metric("rotor_frontend_kv_router_events_applied_total", &[]) == 0.0 {
        assert!(
            start.elapsed() < Duration::from_secs(90),
            "no KV event reached the frontend's router"
        );
        i += 1;
        let (status, v) = post_json(
            &f.url("/v1/completions"),
            &json!({"model": "smollm2",
            "prompt": format!("Warm-up {i}: {}", "a b c d e f g h ".repeat(6)), "max_tokens": 1}),
        );
        assert_eq!(status, 200, "{v}");
        std::thread::sleep(Duration::from_millis(500));
    }

    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/python/openai_external_check.py"
    );
    let python = std::env::var("ROTOR_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let out = Command::new(python)
        .arg(script)
        .arg(f.url("/v1"))
        .arg("smollm2")
        .output()
        .expect("python");
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "the openai client check failed");
    let got: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let (status, direct) = post_json(
        &format!("{url}/v1/completions"),
        &json!({"model": "smollm2", "prompt": "The capital of France is", "max_tokens": 16, "temperature": 0}),
    );
    assert_eq!(status, 200);
    assert_eq!(got["completion"], direct["choices"][0]["text"]);

    // A repeated long prompt: the second time its blocks are in the router's index.
    let prompt = format!(
        "Document {}: {}",
        std::process::id(),
        "the quick brown fox jumps over the lazy dog. ".repeat(12)
    );
    let body = json!({"model": "smollm2", "prompt": prompt, "max_tokens": 2, "temperature": 0});
    assert_eq!(post_json(&f.url("/v1/completions"), &body).0, 200);
    std::thread::sleep(Duration::from_secs(2));
    let hits_before = f.metric("rotor_frontend_kv_router_hit_blocks_total", &[]);
    assert_eq!(post_json(&f.url("/v1/completions"), &body).0, 200);
    let hits = f.metric("rotor_frontend_kv_router_hit_blocks_total", &[]) - hits_before;
    assert!(hits >= 2.0, "the repeated prompt hit {hits} indexed blocks");
}

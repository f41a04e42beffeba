//! POST /v1/embeddings end to end on the real model, compared with llama.cpp's pooled
//! embeddings of the same texts (crates/model/tests/fixtures/scoring_smollm2_q4_1.json, cosine
//! ≥ 0.999): `rotor serve` driven by the official `openai` Python client (float, base64, the
//! client's default, mean and last pooling, a list of inputs), and `rotor frontend` + a native
//! `rotor worker` over file discovery (through the router and the request plane), where the
//! rest of the newer API is driven too: `n` > 1 (its shared prefill counted), `echo` prompt
//! scores against llama.cpp's, Anthropic Messages and the Responses API.
//!
//! Needs the model (ROTOR_TEST_MODEL), `curl`, and `python3` with `openai` (ROTOR_TEST_PYTHON).

mod cluster;
#[allow(dead_code)]
mod support;

use std::time::{Duration, Instant};

use cluster::{frontend, native_worker, post_json};
use serde_json::{json, Value};
use support::RotorServer;

const MODEL: &str = "smollm2-135m-instruct";

fn fixture_path() -> &'static str {
    concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../model/tests/fixtures/scoring_smollm2_q4_1.json"
    )
}

fn fixture_texts() -> Vec<Value> {
    let text = std::fs::read_to_string(fixture_path()).expect("read fixture");
    let v: Value = serde_json::from_str(&text).expect("JSON");
    v["texts"].as_array().expect("texts").clone()
}

fn cosine(a: &Value, b: &Value) -> f64 {
    let a: Vec<f64> = a
        .as_array()
        .expect("floats")
        .iter()
        .map(|x| x.as_f64().expect("f"))
        .collect();
    let b: Vec<f64> = b
        .as_array()
        .expect("floats")
        .iter()
        .map(|x| x.as_f64().expect("f"))
        .collect();
    assert_eq!(a.len(), b.len());
    let dot: f64 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
    let na = a.iter().map(|x| x * x).sum::<f64>().sqrt();
    let nb = b.iter().map(|y| y * y).sum::<f64>().sqrt();
    dot / (na * nb)
}

#[test]
fn official_openai_client_embeddings_match_llama_cpp() {
    let server = RotorServer::start(&[]);
    let stdout = support::run_python_check(
        "openai_embeddings_check.py",
        &[server.url("/v1").as_str(), MODEL, fixture_path()],
        "all openai embeddings checks passed",
    );
    eprintln!("{stdout}");
    // Four texts, four requests of them (the last two of one input each → 1 + 1).
    let texts = fixture_texts().len() as f64;
    assert_eq!(
        server.metric("rotor_frontend_embeddings_total"),
        3.0 * texts + 1.0
    );
    assert_eq!(
        server.metric("rotor_engine_embedding_requests_total"),
        3.0 * texts + 1.0
    );
    assert_eq!(server.metric("rotor_kv_cache_blocks_used"), 0.0);
}

#[test]
fn embeddings_and_the_rest_of_the_api_through_frontend_and_worker() {
    let dir = tempfile::tempdir().expect("tempdir");
    let discovery = format!("file:{}", dir.path().display());
    let _worker = native_worker("worker", &discovery, "mem");
    let f = frontend(&discovery, "mem", &[]);
    f.wait_models(Duration::from_secs(60), "the model", |ids| {
        ids == [MODEL.to_string()]
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    while f.metric("rotor_frontend_routable_workers", &[]) < 1.0 {
        assert!(
            Instant::now() < deadline,
            "the worker never became routable"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let texts = fixture_texts();
    let inputs: Vec<&str> = texts
        .iter()
        .map(|t| t["text"].as_str().expect("text"))
        .collect();
    let (status, body) = post_json(
        &f.url("/v1/embeddings"),
        &json!({"model": MODEL, "input": inputs}),
    );
    assert_eq!(status, 200, "{body}");
    let data = body["data"].as_array().expect("data");
    assert_eq!(data.len(), texts.len());
    for (t, d) in texts.iter().zip(data) {
        let c = cosine(&d["embedding"], &t["embedding_mean"]);
        assert!(c >= 0.999, "{}: cosine {c}", t["name"]);
    }
    let tokens: usize = texts
        .iter()
        .map(|t| t["token_ids"].as_array().expect("ids").len())
        .sum();
    assert_eq!(body["usage"]["prompt_tokens"], tokens);
    assert_eq!(
        f.metric("rotor_frontend_embeddings_total", &[]),
        texts.len() as f64
    );

    // The rest of issue 17's API through the same frontend and remote worker.
    // n > 1: three choices, the two extra sequences started on the first's prefill.
    let (status, body) = post_json(
        &f.url("/v1/completions"),
        &json!({"model": MODEL, "prompt": inputs[3], "n": 3, "max_tokens": 4,
                "temperature": 0.8, "seed": 2}),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["choices"].as_array().map(Vec::len), Some(3), "{body}");
    assert_eq!(
        f.metric("rotor_frontend_shared_prompt_sequences_total", &[]),
        2.0
    );
    // echo + logprobs + max_tokens 0: the prompt scored on the worker, as llama.cpp scores it.
    let case = &texts[0];
    let (status, body) = post_json(
        &f.url("/v1/completions"),
        &json!({"model": MODEL, "prompt": case["token_ids"], "echo": true, "logprobs": 1,
                "max_tokens": 0}),
    );
    assert_eq!(status, 200, "{body}");
    let got = &body["choices"][0]["logprobs"]["token_logprobs"];
    for (i, want) in case["prompt_logprobs"]
        .as_array()
        .expect("prompt_logprobs")
        .iter()
        .enumerate()
    {
        let (ours, theirs) = (
            got[i + 1].as_f64().expect("lp"),
            want["logprob"].as_f64().unwrap(),
        );
        assert!(
            (ours - theirs).abs() <= 0.4,
            "token {}: {ours} vs {theirs}",
            i + 1
        );
    }
    // Anthropic Messages and the Responses API.
    let (status, body) = post_json(
        &f.url("/v1/messages"),
        &json!({"model": MODEL, "max_tokens": 8,
                "messages": [{"role": "user", "content": "Say hi."}]}),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["type"], "message");
    assert!(
        body["content"][0]["text"]
            .as_str()
            .is_some_and(|t| !t.is_empty()),
        "{body}"
    );
    let (status, body) = post_json(
        &f.url("/v1/responses"),
        &json!({"model": MODEL, "input": "Say hi.", "max_output_tokens": 8}),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["object"], "response");
    assert!(
        body["id"]
            .as_str()
            .is_some_and(|id| id.starts_with("resp_")),
        "{body}"
    );
}

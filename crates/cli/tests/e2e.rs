//! End to end: the real `rotor` binary serving the real default model, driven by real clients
//! (curl, the official `openai` Python client, raw TCP for disconnects).
//!
//! Needs the model (ROTOR_TEST_MODEL, else the default cache path; `.ci/run` fetches it), `curl`,
//! and `python3` with the `openai` package.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::{curl_json, RotorServer};

const MODEL: &str = "smollm2-135m-instruct";

fn sky() -> Value {
    json!([{"role": "user", "content": "What color is the sky on a clear day?"}])
}

#[test]
fn chat_with_curl_knows_the_sky_is_blue() {
    let server = RotorServer::start(&[]);
    let (status, body) = curl_json(
        &server.url("/v1/chat/completions"),
        &json!({"model": MODEL, "messages": sky(), "max_tokens": 40, "temperature": 0}),
    );
    assert_eq!(status, 200, "{body}");
    let text = body["choices"][0]["message"]["content"]
        .as_str()
        .expect("content");
    assert!(text.to_lowercase().contains("blue"), "answer: {text:?}");
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["model"], MODEL);
    assert!(body["usage"]["prompt_tokens"].as_u64().unwrap() > 10);
}

#[test]
fn streaming_with_curl_ends_with_done() {
    let server = RotorServer::start(&[]);
    let out = Command::new("curl")
        .args(["-sS", "-N", "--max-time", "120", "-H", "Content-Type: application/json", "-d"])
        .arg(json!({"model": MODEL, "messages": sky(), "max_tokens": 24, "stream": true, "temperature": 0}).to_string())
        .arg(server.url("/v1/chat/completions"))
        .output()
        .expect("curl runs");
    let text = String::from_utf8_lossy(&out.stdout);
    let events: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .collect();
    assert!(events.len() > 3, "{text}");
    assert_eq!(*events.last().unwrap(), "[DONE]");
    let first: Value = serde_json::from_str(events[0]).unwrap();
    assert_eq!(first["choices"][0]["delta"]["role"], "assistant");
    let content: String = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str::<Value>(e).unwrap())
        .filter_map(|v| {
            v["choices"][0]["delta"]["content"]
                .as_str()
                .map(String::from)
        })
        .collect();
    assert!(content.to_lowercase().contains("blue"), "{content:?}");
}

#[test]
fn official_openai_python_client() {
    let server = RotorServer::start(&[]);
    support::run_python_check(
        "openai_client_check.py",
        &[server.url("/v1"), MODEL.to_string()],
        "all openai client checks passed",
    );
}

/// Raw bodies of chat (plain, logprobs, tools, streamed), completions, embeddings and the
/// model list validated strictly against the official `openai` package's models.
#[test]
fn bodies_validate_against_the_openai_package_schema() {
    let server = RotorServer::start(&[]);
    support::run_python_check(
        "openai_schema_check.py",
        &[server.url("/v1"), MODEL.to_string()],
        "all openai schema checks passed",
    );
}

#[test]
fn bad_input_gets_openai_errors() {
    let server = RotorServer::start(&[]);
    let url = server.url("/v1/chat/completions");
    let cases: Vec<(&str, String, u16, Option<&str>)> = vec![
        ("malformed json", "{\"model\": ".into(), 400, None),
        ("wrong type", json!({"model": MODEL, "messages": "hi"}).to_string(), 400, Some("messages")),
        ("unknown model", json!({"model": "nope", "messages": sky()}).to_string(), 404, Some("model")),
        ("empty messages", json!({"model": MODEL, "messages": []}).to_string(), 400, Some("messages")),
        ("n too large", json!({"model": MODEL, "messages": sky(), "n": 17}).to_string(), 400, Some("n")),
        ("max_tokens 0", json!({"model": MODEL, "messages": sky(), "max_tokens": 0}).to_string(), 400, Some("max_tokens")),
        (
            "max_tokens beyond context",
            json!({"model": MODEL, "messages": sky(), "max_tokens": 10_000_000}).to_string(),
            400,
            Some("max_tokens"),
        ),
        (
            "prompt over context",
            json!({"model": MODEL, "messages": [{"role": "user", "content": "hello ".repeat(9000)}]}).to_string(),
            400,
            Some("messages"),
        ),
        ("temperature", json!({"model": MODEL, "messages": sky(), "temperature": -1}).to_string(), 400, Some("temperature")),
    ];
    for (what, body, status, param) in cases {
        let (got, json) = support::curl_raw(&url, &body);
        assert_eq!(got, status, "{what}: {json}");
        assert!(
            json["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{what}: {json}"
        );
        assert!(json["error"]["type"].as_str().is_some(), "{what}: {json}");
        if let Some(param) = param {
            assert_eq!(json["error"]["param"], param, "{what}: {json}");
        }
    }
    // The server is still healthy afterwards.
    let (status, _) = curl_json(
        &url,
        &json!({"model": MODEL, "messages": sky(), "max_tokens": 2}),
    );
    assert_eq!(status, 200);
}

/// A client that disconnects mid-stream cancels its generation and frees its KV blocks.
#[test]
fn disconnect_mid_stream_cancels_generation() {
    let server = RotorServer::start(&[]);
    let body = json!({"model": MODEL, "messages": sky(), "max_tokens": 3000, "stream": true, "ignore_eos": true});
    let body = body.to_string();
    let mut sock = TcpStream::connect(server.addr).unwrap();
    write!(
        sock,
        "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{}",
        body.len(),
        body
    )
    .unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let mut seen = String::new();
    let mut buf = [0u8; 4096];
    while seen.matches("data: ").count() < 5 {
        let n = sock.read(&mut buf).expect("stream data");
        assert!(n > 0, "server closed early: {seen}");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert!(server.metric("rotor_engine_running_requests") >= 1.0);
    drop(sock);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let running = server.metric("rotor_engine_running_requests");
        let used = server.metric("rotor_kv_cache_blocks_used");
        if running == 0.0 && used == 0.0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still running={running} blocks_used={used} after disconnect"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let generated = server.metric("rotor_engine_generated_tokens_total");
    assert!(
        generated < 3000.0,
        "generation ran on after the client left: {generated} tokens"
    );
}

/// A long request does not block a short one that arrives after it.
#[test]
fn concurrent_requests_make_progress_together() {
    let server = RotorServer::start(&[]);
    let url = server.url("/v1/completions");
    let long_url = url.clone();
    let long = std::thread::spawn(move || {
        let started = Instant::now();
        let (status, _) = curl_json(
            &long_url,
            &json!({"model": MODEL, "prompt": "Once upon a time", "max_tokens": 400, "ignore_eos": true}),
        );
        (status, started.elapsed())
    });
    // Wait until the long request is running, then send a short one.
    let deadline = Instant::now() + Duration::from_secs(30);
    while server.metric("rotor_engine_running_requests") < 1.0 {
        assert!(Instant::now() < deadline, "long request never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    let started = Instant::now();
    let (status, body) = curl_json(
        &url,
        &json!({"model": MODEL, "prompt": "Hi", "max_tokens": 4, "ignore_eos": true}),
    );
    let short_took = started.elapsed();
    assert_eq!(status, 200, "{body}");
    assert!(
        server.metric("rotor_engine_running_requests") >= 1.0,
        "the long request finished before the short one ({short_took:?}): they did not run together"
    );
    let (status, long_took) = long.join().unwrap();
    assert_eq!(status, 200);
    assert!(short_took < long_took);
}

#[test]
fn chat_template_flag_replaces_the_models_own() {
    let dir = tempfile::tempdir().unwrap();
    let template = dir.path().join("plain.jinja");
    std::fs::write(&template, "{{ 'Q: ' + messages[-1]['content'] + '\\nA:' }}").unwrap();
    let body = json!({"model": MODEL, "messages": sky(), "max_tokens": 4, "temperature": 0});
    let own = RotorServer::start(&[]);
    let (status, with_own) = curl_json(&own.url("/v1/chat/completions"), &body);
    assert_eq!(status, 200, "{with_own}");
    drop(own);
    let custom = RotorServer::start(&["--chat-template", template.to_str().unwrap()]);
    let (status, with_custom) = curl_json(&custom.url("/v1/chat/completions"), &body);
    assert_eq!(status, 200, "{with_custom}");
    let prompt_tokens = |v: &Value| v["usage"]["prompt_tokens"].as_u64().unwrap();
    // SmolLM2's own template wraps the question in a system prompt and ChatML markers (40
    // tokens); "Q: <question>\nA:" is about a third of that.
    assert!(
        prompt_tokens(&with_custom) < 20 && prompt_tokens(&with_own) > 30,
        "own {} vs custom {}",
        prompt_tokens(&with_own),
        prompt_tokens(&with_custom)
    );
}

/// Prompt tokens the engine computed: looked up in the prefix cache at admission, neither found
/// there nor copied from a block another sequence computed.
fn prompt_tokens_computed(server: &RotorServer) -> f64 {
    server.metric("rotor_kv_cache_prefix_queries_tokens_total")
        - server.metric("rotor_kv_cache_prefix_hit_tokens_total")
        - server.metric("rotor_engine_kv_copy_on_write_tokens_total")
}

/// `n` = 4 costs one prefill: the three extra sequences start after the first prefilled the
/// prompt; they find its full blocks in the prefix cache, get a copy of its last, partly filled
/// block (copy-on-write), and compute only the prompt's last token each.
#[test]
fn n_choices_share_one_prefill() {
    let server = RotorServer::start(&["--block-size", "16"]);
    let url = server.url("/v1/completions");
    let prompt = |topic: &str| {
        format!("Here are some notes about {topic}. ").repeat(12) + "To sum up, the main point is"
    };
    let mut computed = Vec::new();
    for (topic, n) in [("rivers", 1), ("mountains", 4)] {
        let before = prompt_tokens_computed(&server);
        let (status, body) = curl_json(
            &url,
            &json!({"model": MODEL, "prompt": prompt(topic), "n": n, "max_tokens": 4,
                    "temperature": 0.8, "seed": 1}),
        );
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["choices"].as_array().map(Vec::len), Some(n), "{body}");
        computed.push(prompt_tokens_computed(&server) - before);
    }
    let (one, four) = (computed[0], computed[1]);
    let copied = server.metric("rotor_engine_kv_copy_on_write_tokens_total");
    eprintln!("prompt tokens computed: n=1 {one}, n=4 {four}; copied {copied}");
    assert!(one > 80.0, "the prompt is long: {one}");
    // The two prompts have the same length (one token per topic word): the three extra
    // sequences compute one token each.
    assert_eq!(four, one + 3.0, "n=1 {one}, n=4 {four}");
    assert_eq!(
        server.metric("rotor_engine_kv_copy_on_write_blocks_total"),
        3.0
    );
    assert_eq!(copied, 3.0 * ((one as u64 - 1) % 16) as f64);
    assert_eq!(
        server.metric("rotor_frontend_shared_prompt_sequences_total"),
        3.0
    );
}

/// With several workers and round-robin routing, the extra sequences of an `n` = 4 request still
/// go to the first one's worker (the other worker would prefill the prompt again): every
/// decision lands on one worker, three of them by sibling affinity, and the three copy the
/// kept block there.
#[test]
fn n_choices_follow_their_first_sequence_to_its_worker() {
    let server = RotorServer::start(&[
        "--num-workers",
        "2",
        "--router-mode",
        "round-robin",
        "--block-size",
        "16",
    ]);
    let prompt = "Here are some notes about harbours. ".repeat(12) + "To sum up, the main point is";
    let (status, body) = curl_json(
        &server.url("/v1/completions"),
        &json!({"model": MODEL, "prompt": prompt, "n": 4, "max_tokens": 4,
                "temperature": 0.8, "seed": 3}),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["choices"].as_array().map(Vec::len), Some(4), "{body}");
    assert_eq!(server.metric("rotor_frontend_sibling_affinity_total"), 3.0);
    assert_eq!(
        server.metric("rotor_engine_kv_copy_on_write_blocks_total"),
        3.0
    );
    // One worker made all four decisions: the per-worker samples are 4 and 0.
    let out = std::process::Command::new("curl")
        .args(["-sS", "--max-time", "10"])
        .arg(server.url("/metrics"))
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut per_worker: Vec<f64> = text
        .lines()
        .filter(|l| l.starts_with("rotor_frontend_router_decisions_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse().ok())
        .collect();
    per_worker.sort_by(f64::total_cmp);
    assert_eq!(per_worker, vec![0.0, 4.0], "{text}");
}

/// `echo` + `logprobs` + `max_tokens: 0` (lm-evaluation-harness's loglikelihood request) scores
/// the prompt on the real model: the values match llama.cpp's on the same file (the scoring
/// fixture, written by scripts/golden/scoring_golden.py) within the tolerance of
/// crates/model/tests/scoring_golden.rs, and the most likely next token agrees wherever
/// llama.cpp's top two are clearly apart.
#[test]
fn echo_scores_the_prompt_like_llama_cpp() {
    const TOLERANCE: f64 = 0.4;
    let fixture: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../model/tests/fixtures/scoring_smollm2_q4_1.json"
        ))
        .expect("read the scoring fixture"),
    )
    .expect("fixture JSON");
    let server = RotorServer::start(&[]);
    let url = server.url("/v1/completions");
    let mut compared = 0;
    for case in fixture["texts"].as_array().expect("texts") {
        let ids = &case["token_ids"];
        let (status, body) = curl_json(
            &url,
            &json!({"model": MODEL, "prompt": ids, "echo": true, "logprobs": 5, "max_tokens": 0}),
        );
        assert_eq!(status, 200, "{body}");
        let choice = &body["choices"][0];
        assert_eq!(choice["text"], case["text"], "{body}");
        assert_eq!(body["usage"]["completion_tokens"], 0);
        let got = &choice["logprobs"];
        assert_eq!(got["token_logprobs"][0], Value::Null);
        let want = case["prompt_logprobs"].as_array().expect("prompt_logprobs");
        assert_eq!(
            got["token_logprobs"].as_array().map(Vec::len),
            Some(want.len() + 1)
        );
        for (i, w) in want.iter().enumerate() {
            let ours = got["token_logprobs"][i + 1].as_f64().expect("logprob");
            let theirs = w["logprob"].as_f64().expect("fixture logprob");
            assert!(
                (ours - theirs).abs() <= TOLERANCE,
                "{}: token {}: ours {ours}, llama.cpp {theirs}",
                case["name"],
                i + 1
            );
            let top = w["top"].as_array().expect("top");
            let gap = top[0][1].as_f64().unwrap() - top[1][1].as_f64().unwrap();
            if gap > 2.0 * TOLERANCE {
                let ours_top = got["top_logprobs"][i + 1].as_object().expect("top");
                let best = ours_top
                    .iter()
                    .max_by(|a, b| a.1.as_f64().unwrap().total_cmp(&b.1.as_f64().unwrap()))
                    .map(|(token, _)| token.clone())
                    .expect("alternatives");
                let (bytes_want, _) = support::curl_raw(
                    &server.url("/detokenize"),
                    &json!({"model": MODEL, "tokens": [top[0][0]]}).to_string(),
                );
                assert_eq!(bytes_want, 200);
                let want_text = support::curl_json(
                    &server.url("/detokenize"),
                    &json!({"model": MODEL, "tokens": [top[0][0]]}),
                )
                .1["prompt"]
                    .as_str()
                    .expect("text")
                    .to_string();
                assert_eq!(best, want_text, "{}: position {}", case["name"], i + 1);
            }
            compared += 1;
        }
    }
    assert!(compared > 100, "{compared}");
    assert_eq!(
        server.metric("rotor_engine_prompt_logprob_requests_total"),
        fixture["texts"].as_array().unwrap().len() as f64
    );
}

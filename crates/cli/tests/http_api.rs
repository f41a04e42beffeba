//! The HTTP server's access flags through the real binary, `rotor serve` and `rotor frontend`
//! alike: API keys (with the official `openai` Python client), CORS, `x-request-id` in answers
//! and logs, the request body limit, /tokenize and /detokenize, and overload protection with a
//! saturated mocker engine (in one process, and over NATS load reports).
//!
//! Needs the default model (its card), `curl`-free: HTTP via reqwest; `python3` with `openai`
//! (ROTOR_TEST_PYTHON) for the client test; `nats-server` for the frontend overload test.

mod cluster;

#[allow(dead_code)] // only its Python runner serves this file
mod support;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use rotor_testing::NatsGuard;
use serde_json::{json, Value};

const MODEL: &str = "smollm2-135m-instruct";

/// A `rotor serve --engine mocker` child (no weights computed: fast and deterministic in
/// scheduling), its address and every stderr line; killed on drop.
struct Serve {
    child: Child,
    addr: SocketAddr,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Serve {
    fn start(extra: &[&str], env: &[(&str, &str)]) -> Serve {
        let mut child = Command::new(env!("CARGO_BIN_EXE_rotor"))
            .args(["serve", "--port", "0", "--engine", "mocker", "--model"])
            .arg(rotor_testing::model_path())
            .args(extra)
            .env_remove("ROTOR_API_KEY")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn rotor serve");
        let stderr = child.stderr.take().expect("stderr");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let kept = Arc::clone(&lines);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("[rotor serve] {line}");
                if let Some(rest) = line.split("on http://").nth(1) {
                    let _ = tx.send(rest.split_whitespace().next().unwrap_or("").to_string());
                }
                kept.lock().expect("lines").push(line);
            }
        });
        let addr = match rx.recv_timeout(Duration::from_secs(120)) {
            Ok(addr) => addr.parse().expect("address"),
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("rotor serve did not report its address within 120 s");
            }
        };
        Serve { child, addr, lines }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn logged(&self, needle: &str) -> bool {
        self.lines
            .lock()
            .expect("lines")
            .iter()
            .any(|l| l.contains(needle))
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn error_of(body: &Value) -> (&str, Option<&str>) {
    (
        body["error"]["type"].as_str().unwrap_or_default(),
        body["error"]["code"].as_str(),
    )
}

/// The value of `name` (summed over its label sets) in a /metrics text.
fn metric(text: &str, name: &str) -> Option<f64> {
    let values: Vec<f64> = text
        .lines()
        .filter(|l| !l.starts_with('#') && l.split([' ', '{']).next() == Some(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse().ok())
        .collect();
    (!values.is_empty()).then(|| values.iter().sum())
}

async fn metrics_text(client: &reqwest::Client, url: &str) -> String {
    client
        .get(url)
        .send()
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("text")
}

fn chat(max_tokens: u32) -> Value {
    json!({"model": MODEL, "max_tokens": max_tokens,
           "messages": [{"role": "user", "content": "What color is the sky?"}]})
}

#[tokio::test]
async fn serve_with_api_keys_refuses_others_and_counts_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("keys.txt");
    std::fs::write(&file, "# operators\nsk-from-file\n\n").expect("write keys");
    let server = Serve::start(
        &[
            "--api-key",
            "sk-flag",
            "--api-key-file",
            file.to_str().unwrap(),
        ],
        &[],
    );
    let client = reqwest::Client::new();
    let models = server.url("/v1/models");

    let resp = client.get(&models).send().await.expect("send");
    assert_eq!(resp.status(), 401);
    assert!(resp.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .starts_with("Bearer"));
    let body: Value = resp.json().await.expect("json");
    assert_eq!(error_of(&body), ("invalid_request_error", None), "{body}");
    let resp = client
        .get(&models)
        .bearer_auth("sk-wrong")
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), 401);
    let body: Value = resp.json().await.expect("json");
    assert_eq!(
        error_of(&body),
        ("invalid_request_error", Some("invalid_api_key"))
    );

    let resp = client
        .get(&models)
        .bearer_auth("sk-flag")
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), 200);
    let resp = client
        .post(server.url("/v1/chat/completions"))
        .header("x-api-key", "sk-from-file")
        .json(&chat(4))
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.expect("json");
    assert_eq!(body["usage"]["completion_tokens"], 4, "{body}");

    for open in ["/health", "/live", "/openapi.json"] {
        let status = client
            .get(server.url(open))
            .send()
            .await
            .expect("send")
            .status();
        assert_eq!(status, 200, "{open}");
    }
    let text = metrics_text(&client, &server.url("/metrics")).await;
    assert_eq!(
        metric(&text, "rotor_frontend_auth_rejected_total"),
        Some(2.0),
        "{text}"
    );

    // The official openai client: AuthenticationError without a good key, normal use with one.
    support::run_python_check(
        "openai_auth_check.py",
        &[server.url("/v1").as_str(), MODEL, "sk-flag"],
        "all openai auth checks passed",
    );
}

#[tokio::test]
async fn api_key_from_the_environment_and_protected_metrics() {
    let server = Serve::start(&["--protect-metrics"], &[("ROTOR_API_KEY", "sk-env")]);
    let client = reqwest::Client::new();
    let resp = client
        .get(server.url("/metrics"))
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), 401);
    let resp = client
        .get(server.url("/metrics"))
        .bearer_auth("sk-env")
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), 200);
    assert!(resp
        .text()
        .await
        .unwrap()
        .contains("rotor_frontend_auth_rejected_total 1\n"));
    assert_eq!(
        client
            .get(server.url("/health"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert!(!server.logged("sk-env"), "the key must never be logged");
}

#[test]
fn bad_access_flags_are_named_cli_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let empty = dir.path().join("keys");
    std::fs::write(&empty, "# none yet\n").expect("write");
    let cases: [(&[&str], &str); 5] = [
        (
            &["serve", "--api-key-file", empty.to_str().unwrap()],
            "has no keys",
        ),
        (
            &["serve", "--protect-metrics"],
            "--protect-metrics needs an API key",
        ),
        (
            &["frontend", "--allowed-origins", "example.com"],
            "--allowed-origins",
        ),
        (
            &["frontend", "--busy-kv-threshold", "2"],
            "--busy-kv-threshold",
        ),
        (&["serve", "--max-request-body", "10"], "--max-request-body"),
    ];
    for (args, said) in cases {
        let out = Command::new(env!("CARGO_BIN_EXE_rotor"))
            .args(args)
            .args(["--port", "0"])
            .env_remove("ROTOR_API_KEY")
            .output()
            .expect("run rotor");
        assert!(!out.status.success(), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(said), "{args:?}: {stderr}");
    }
}

#[tokio::test]
async fn request_id_comes_back_and_is_in_the_logs() {
    let server = Serve::start(&[], &[("ROTOR_LOG", "rotor_frontend=debug")]);
    let client = reqwest::Client::new();
    let resp = client
        .post(server.url("/v1/chat/completions"))
        .header("x-request-id", "trace-7f3a")
        .json(&chat(3))
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-request-id"], "trace-7f3a");
    let body: Value = resp.json().await.expect("json");
    let id = body["id"].as_str().expect("id").to_string();
    assert!(id.starts_with("chatcmpl-trace-7f3a-"), "{id}");
    // The request's log lines carry the id (its span) and name the generation.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !(server.logged("request_id=trace-7f3a") && server.logged(&id)) {
        assert!(
            Instant::now() < deadline,
            "the request id is not in the logs"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let resp = client
        .get(server.url("/v1/models"))
        .send()
        .await
        .expect("send");
    let generated = resp.headers()["x-request-id"].to_str().unwrap().to_string();
    assert!(
        generated.len() == 32 && generated.bytes().all(|b| b.is_ascii_hexdigit()),
        "{generated}"
    );
}

#[tokio::test]
async fn request_body_limit_is_a_413_json() {
    let server = Serve::start(&["--max-request-body", "2KiB"], &[]);
    let client = reqwest::Client::new();
    let mut big = chat(2);
    big["messages"][0]["content"] = json!("x".repeat(4096));
    let resp = client
        .post(server.url("/v1/chat/completions"))
        .json(&big)
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), 413);
    let body: Value = resp.json().await.expect("413 is JSON");
    assert_eq!(
        error_of(&body),
        ("invalid_request_error", Some("request_too_large"))
    );
    let resp = client
        .post(server.url("/v1/chat/completions"))
        .json(&chat(2))
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn tokenize_and_detokenize_round_trip() {
    let server = Serve::start(&[], &[]);
    let client = reqwest::Client::new();
    let post = |path: &str, body: Value| client.post(server.url(path)).json(&body).send();
    let resp = post(
        "/tokenize",
        json!({"model": MODEL, "prompt": "The capital of France is"}),
    )
    .await
    .expect("send");
    assert_eq!(resp.status(), 200);
    let tokens: Value = resp.json().await.expect("json");
    let ids = tokens["tokens"].as_array().expect("tokens").clone();
    assert_eq!(tokens["count"], ids.len());
    assert_eq!(tokens["max_model_len"], 8192);
    let resp = post(
        "/v1/completions",
        json!({"model": MODEL, "prompt": "The capital of France is", "max_tokens": 1}),
    )
    .await
    .expect("send");
    let completion: Value = resp.json().await.expect("json");
    assert_eq!(completion["usage"]["prompt_tokens"], ids.len());
    let resp = post("/detokenize", json!({"model": MODEL, "tokens": ids}))
        .await
        .expect("send");
    let text: Value = resp.json().await.expect("json");
    assert_eq!(text, json!({"prompt": "The capital of France is"}));
    let resp = post("/detokenize", json!({"model": MODEL, "tokens": [99999999]}))
        .await
        .expect("send");
    assert_eq!(resp.status(), 400);
    let resp = post("/tokenize", json!({"model": "nope", "prompt": "x"}))
        .await
        .expect("send");
    assert_eq!(resp.status(), 404);
    let resp = client
        .get(server.url("/v1/models/nope"))
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), 404);
    let body: Value = resp.json().await.expect("json");
    assert_eq!(body["error"]["code"], "model_not_found");
}

/// A long streaming completion, read to its end in a task; aborting the task drops the
/// connection, which cancels the request. Queued requests are answered only once admitted, so
/// nothing here waits for the answer.
fn open_stream(client: &reqwest::Client, url: &str) -> tokio::task::JoinHandle<()> {
    let body = json!({"model": MODEL, "prompt": "Count to a million:", "max_tokens": 4000,
                      "ignore_eos": true, "stream": true});
    let request = client.post(url).json(&body).send();
    tokio::spawn(async move {
        let resp = request.await.expect("send");
        assert_eq!(resp.status(), 200, "a held stream must be admitted");
        let mut body = resp.bytes_stream();
        while body.next().await.is_some() {}
    })
}

/// Sends one-token completions until one is refused (bounded). Each probe gives up after a
/// second: before the frontend knows the worker is full, a probe queues behind the streams,
/// and dropping it cancels it.
async fn first_refusal(client: &reqwest::Client, url: &str, within: Duration) -> reqwest::Response {
    let deadline = Instant::now() + within;
    loop {
        let probe = client
            .post(url)
            .timeout(Duration::from_secs(1))
            .json(&json!({"model": MODEL, "prompt": "Hi", "max_tokens": 1}))
            .send()
            .await;
        match probe {
            Ok(resp) if resp.status() == 503 => return resp,
            Ok(resp) => assert_eq!(resp.status(), 200),
            Err(err) => assert!(err.is_timeout(), "{err}"),
        }
        assert!(Instant::now() < deadline, "never refused within {within:?}");
    }
}

/// Polls /metrics until `name` (summed) equals `want` (bounded).
async fn wait_metric(client: &reqwest::Client, url: &str, name: &str, want: f64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = metrics_text(client, url).await;
        if metric(&text, name) == Some(want) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{name} never reached {want}:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn expect_overloaded(resp: reqwest::Response) {
    assert_eq!(resp.status(), 503);
    assert_eq!(resp.headers()["retry-after"], "1");
    let body: Value = resp.json().await.expect("503 is JSON");
    assert_eq!(
        error_of(&body),
        ("server_error", Some("overloaded")),
        "{body}"
    );
}

/// Two in-process mocker engines that run one sequence each (slowed down so the streams
/// outlast the test): with one stream running and one waiting on each engine, both are busy
/// (`--busy-queue-threshold 0`) and a new request gets 503 at once, until the streams go.
#[tokio::test]
async fn serve_refuses_when_every_engine_is_saturated() {
    let server = Serve::start(
        &[
            "--num-workers",
            "2",
            "--max-num-seqs",
            "1",
            "--mocker-speedup",
            "0.1",
            "--busy-queue-threshold",
            "0",
        ],
        &[],
    );
    let client = reqwest::Client::new();
    let url = server.url("/v1/completions");
    let metrics = server.url("/metrics");
    let text = metrics_text(&client, &metrics).await;
    assert_eq!(
        metric(&text, "rotor_frontend_busy_queue_threshold"),
        Some(0.0)
    );
    assert_eq!(metric(&text, "rotor_frontend_busy_kv_threshold"), None);

    // Round-robin: streams 1 and 2 run on engines 0 and 1, 3 and 4 wait behind them.
    let mut streams = Vec::new();
    for (running, waiting) in [(1.0, 0.0), (2.0, 0.0), (2.0, 1.0), (2.0, 2.0)] {
        streams.push(open_stream(&client, &url));
        wait_metric(&client, &metrics, "rotor_engine_running_requests", running).await;
        wait_metric(&client, &metrics, "rotor_engine_waiting_requests", waiting).await;
    }
    let resp = client
        .post(&url)
        .json(&json!({"model": MODEL, "prompt": "Hi", "max_tokens": 1}))
        .send()
        .await
        .expect("send");
    expect_overloaded(resp).await;
    let text = metrics_text(&client, &metrics).await;
    assert_eq!(
        metric(&text, "rotor_frontend_overload_rejected_total"),
        Some(1.0),
        "{text}"
    );

    for stream in streams {
        stream.abort();
    }
    wait_metric(&client, &metrics, "rotor_engine_running_requests", 0.0).await;
    let resp = client
        .post(&url)
        .json(&json!({"model": MODEL, "prompt": "Hi", "max_tokens": 1}))
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), 200, "served again once the streams went");
}

/// `rotor frontend` over a mocker worker on NATS: the worker's load reports show its queue,
/// and the frontend refuses new requests while it is full; CORS and keys apply as in serve.
#[tokio::test]
async fn frontend_refuses_from_load_reports_and_applies_access_flags() {
    let nats = NatsGuard::start().expect("nats-server starts");
    let events = format!("nats://{}", nats.addr());
    let dir = tempfile::tempdir().expect("tempdir");
    let discovery = format!("file:{}", dir.path().display());
    let _worker = cluster::worker(
        "mocker",
        &discovery,
        &events,
        &[
            "--engine",
            "mocker",
            "--max-num-seqs",
            "1",
            "--mocker-speedup",
            "0.1",
        ],
    );
    let frontend = cluster::frontend(
        &discovery,
        &events,
        &[
            "--busy-queue-threshold",
            "0",
            "--api-key",
            "sk-front",
            "--allowed-origins",
            "http://localhost:5173",
        ],
    );
    let client = reqwest::ClientBuilder::new()
        .default_headers(
            [(
                reqwest::header::AUTHORIZATION,
                "Bearer sk-front".parse().unwrap(),
            )]
            .into_iter()
            .collect(),
        )
        .build()
        .expect("client");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let resp = client
            .get(frontend.url("/v1/models"))
            .send()
            .await
            .expect("send");
        let body: Value = resp.json().await.expect("json");
        if body["data"].as_array().is_some_and(|d| !d.is_empty()) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the worker's model never appeared"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Access flags of the frontend.
    let bare = reqwest::Client::new();
    let resp = bare
        .get(frontend.url("/v1/models"))
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), 401);
    let resp = bare
        .request(reqwest::Method::OPTIONS, frontend.url("/v1/completions"))
        .header("origin", "http://localhost:5173")
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization,content-type",
        )
        .send()
        .await
        .expect("send");
    assert_eq!(
        resp.headers()["access-control-allow-origin"],
        "http://localhost:5173"
    );

    // One stream runs, one waits; once a load report shows the queue, requests are refused.
    let url = frontend.url("/v1/completions");
    let streams = [open_stream(&client, &url), open_stream(&client, &url)];
    let refusal = first_refusal(&client, &url, Duration::from_secs(60)).await;
    expect_overloaded(refusal).await;
    let text = metrics_text(&client, &frontend.url("/metrics")).await;
    assert!(metric(&text, "rotor_frontend_overload_rejected_total").unwrap_or(0.0) >= 1.0);
    for stream in streams {
        stream.abort();
    }
}

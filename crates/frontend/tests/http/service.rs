//! Service behaviour: disconnect cancels, concurrency, models/health, metrics, OpenAPI.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use rotor_frontend::{Frontend, FrontendConfig, ServedModel};
use serde_json::{json, Value};
use tokio::sync::Barrier;

use crate::support::{
    chat_body, smollm2_card, BackendLog, Script, ScriptedBackend, TestServer, MODEL,
};

#[tokio::test]
async fn streaming_disconnect_cancels_backend() {
    let mut script = Script::text(&"tick ".repeat(500));
    script.delay = Duration::from_millis(20);
    let server = TestServer::start(script).await;
    let mut body = chat_body("Go");
    body["stream"] = json!(true);
    let resp = server.post_json("/v1/chat/completions", &body).await;
    assert_eq!(resp.status(), 200);
    let mut stream = resp.bytes_stream();
    let mut seen = String::new();
    while seen.matches("tick").count() < 2 {
        let bytes = stream.next().await.expect("stream open").expect("bytes");
        seen.push_str(std::str::from_utf8(&bytes).expect("utf8"));
    }
    drop(stream);
    server
        .log
        .wait_for("backend stream dropped after disconnect", |log| {
            log.cancelled.load(Ordering::SeqCst) == 1
        })
        .await;
    assert_eq!(server.log.completed.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn non_streaming_disconnect_cancels_backend() {
    let mut script = Script::text("slow");
    script.first_delay = Duration::from_secs(600);
    let server = TestServer::start(script).await;
    let client = server.client.clone();
    let url = server.url("/v1/chat/completions");
    let request = tokio::spawn(async move { client.post(url).json(&chat_body("Go")).send().await });
    server
        .log
        .wait_for("request reached the backend", |log| {
            !log.requests().is_empty()
        })
        .await;
    request.abort();
    server
        .log
        .wait_for("backend stream dropped after disconnect", |log| {
            log.cancelled.load(Ordering::SeqCst) == 1
        })
        .await;
}

#[tokio::test]
async fn two_slow_requests_run_concurrently() {
    // Each stream waits at a two-party barrier before its first token: served one at a time,
    // neither could finish.
    let mut script = Script::text("a b c d");
    script.delay = Duration::from_millis(30);
    script.barrier = Some(Arc::new(Barrier::new(2)));
    let server = TestServer::start(script).await;
    let mut streaming = chat_body("one");
    streaming["stream"] = json!(true);
    let plain = chat_body("two");
    let both = async {
        let (a, b) = tokio::join!(
            server.post_json("/v1/chat/completions", &streaming),
            server.post_json("/v1/chat/completions", &plain),
        );
        (
            a.text().await.expect("a"),
            b.json::<Value>().await.expect("b"),
        )
    };
    let (a, b) = tokio::time::timeout(Duration::from_secs(20), both)
        .await
        .expect("requests ran concurrently");
    assert!(a.ends_with("data: [DONE]\n\n"), "{a}");
    assert_eq!(b["choices"][0]["message"]["content"], "a b c d");
}

#[tokio::test]
async fn models_health_and_live() {
    let frontend = Frontend::new(FrontendConfig::default());
    let log = Arc::new(BackendLog::default());
    let server = TestServer::start_frontend(frontend.clone(), Arc::clone(&log)).await;
    assert_eq!(server.get("/live").await.status(), 200);
    let resp = server.get("/health").await;
    assert_eq!(resp.status(), 503);
    assert_eq!(
        resp.json::<Value>().await.expect("json")["models"],
        json!([])
    );
    let list: Value = server.get("/v1/models").await.json().await.expect("json");
    assert_eq!(list, json!({"object": "list", "data": []}));

    let backend = Arc::new(ScriptedBackend {
        script: Script::text("ok"),
        log,
    });
    frontend
        .add_model(ServedModel {
            card: smollm2_card(),
            backend: backend.clone(),
        })
        .expect("add");
    assert!(
        frontend
            .add_model(ServedModel {
                card: smollm2_card(),
                backend
            })
            .is_err(),
        "duplicate name"
    );
    let resp = server.get("/health").await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.json::<Value>().await.expect("json")["models"],
        json!([MODEL])
    );
    let list: Value = server.get("/v1/models").await.json().await.expect("json");
    let context = smollm2_card().context_length;
    // SmolLM2's template names no tool format: hermes is the fallback; no `<think>`, no
    // reasoning parser.
    let model = json!({"id": MODEL, "object": "model", "created": 1_700_000_000u64, "owned_by": "rotor", "max_model_len": context, "tool_call_parser": "hermes"});
    assert_eq!(list, json!({"object": "list", "data": [model.clone()]}));
    let one: Value = server
        .get(&format!("/v1/models/{MODEL}"))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(one, model);
    assert_eq!(
        server
            .post_json("/v1/chat/completions", &chat_body("x"))
            .await
            .status(),
        200
    );

    frontend.remove_model(MODEL);
    assert_eq!(server.get("/health").await.status(), 503);
    assert_eq!(
        server
            .post_json("/v1/chat/completions", &chat_body("x"))
            .await
            .status(),
        404
    );
}

fn metric_value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test]
async fn metrics_count_requests_tokens_and_latency() {
    let server = TestServer::start(Script::text("one two three")).await;
    let ok: Value = server
        .post_json("/v1/chat/completions", &chat_body("Hi"))
        .await
        .json()
        .await
        .expect("json");
    let mut body = json!({"model": MODEL, "prompt": "Hello", "stream": true});
    let streamed = server
        .post_json("/v1/completions", &body)
        .await
        .text()
        .await
        .expect("text");
    assert!(streamed.ends_with("data: [DONE]\n\n"));
    body["model"] = json!("nope");
    assert_eq!(
        server.post_json("/v1/completions", &body).await.status(),
        404
    );
    assert_eq!(
        server
            .post_json(
                "/v1/chat/completions",
                &json!({"model": MODEL, "messages": []})
            )
            .await
            .status(),
        400
    );

    let resp = server.get("/metrics").await;
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"]
        .to_str()
        .expect("ascii")
        .starts_with("text/plain"));
    let text = resp.text().await.expect("text");
    let value = |series: &str| {
        metric_value(&text, series).unwrap_or_else(|| panic!("missing {series} in\n{text}"))
    };
    assert_eq!(
        value("rotor_frontend_requests_total{endpoint=\"/v1/chat/completions\",status=\"200\"}"),
        1.0
    );
    assert_eq!(
        value("rotor_frontend_requests_total{endpoint=\"/v1/chat/completions\",status=\"400\"}"),
        1.0
    );
    assert_eq!(
        value("rotor_frontend_requests_total{endpoint=\"/v1/completions\",status=\"200\"}"),
        1.0
    );
    assert_eq!(
        value("rotor_frontend_requests_total{endpoint=\"/v1/completions\",status=\"404\"}"),
        1.0
    );
    assert_eq!(value("rotor_frontend_inflight_requests"), 0.0);
    let prompt_tokens = ok["usage"]["prompt_tokens"].as_f64().expect("n")
        + crate::support::encode("Hello").len() as f64;
    assert_eq!(
        value("rotor_frontend_prompt_tokens_total{model=\"smollm2\"}"),
        prompt_tokens
    );
    let completion_tokens = 2.0 * ok["usage"]["completion_tokens"].as_f64().expect("n");
    assert_eq!(
        value("rotor_frontend_completion_tokens_total{model=\"smollm2\"}"),
        completion_tokens
    );
    assert_eq!(
        value("rotor_frontend_time_to_first_token_seconds_count"),
        2.0
    );
    assert_eq!(
        value("rotor_frontend_inter_token_latency_seconds_count"),
        completion_tokens - 2.0
    );
    assert_eq!(value("rotor_frontend_request_duration_seconds_count"), 2.0);
    assert_eq!(
        value("rotor_frontend_request_duration_seconds_bucket{le=\"+Inf\"}"),
        2.0
    );
    for kind in ["counter", "gauge", "histogram"] {
        assert!(text.contains(&format!(" {kind}\n")), "a {kind} TYPE line");
    }
}

#[tokio::test]
async fn openapi_lists_every_route() {
    let server = TestServer::start(Script::text("ok")).await;
    let resp = server.get("/openapi.json").await;
    assert_eq!(resp.status(), 200);
    let doc: Value = resp.json().await.expect("valid JSON");
    // Generated (utoipa) from the request and response types: OpenAPI 3.1.
    assert_eq!(doc["openapi"], "3.1.0");
    // Streaming answers are described as server-sent events of chunks.
    let ok = &doc["paths"]["/v1/chat/completions"]["post"]["responses"]["200"]["content"];
    assert_eq!(
        ok["text/event-stream"]["schema"]["$ref"],
        "#/components/schemas/ChatCompletionChunk"
    );
    assert_eq!(
        ok["application/json"]["schema"]["$ref"],
        "#/components/schemas/ChatCompletionResponse"
    );
    // Only the served model is advertised; the limits are the validator's.
    let chat = &doc["components"]["schemas"]["ChatCompletionRequest"]["properties"];
    assert_eq!(chat["model"]["enum"], json!([MODEL]));
    assert_eq!(chat["n"]["maximum"], json!(16));
    assert_eq!(chat["top_logprobs"]["maximum"], json!(20));
    assert_eq!(chat["top_p"]["exclusiveMinimum"].as_f64(), Some(0.0));
    assert!(chat["tools"].is_object(), "tools are advertised: they work");
    assert!(doc["info"]["title"].is_string());
    let paths = doc["paths"].as_object().expect("paths");
    let expected = [
        ("/v1/chat/completions", "post"),
        ("/v1/completions", "post"),
        ("/v1/embeddings", "post"),
        ("/v1/messages", "post"),
        ("/v1/messages/count_tokens", "post"),
        ("/v1/models", "get"),
        ("/v1/models/{id}", "get"),
        ("/tokenize", "post"),
        ("/detokenize", "post"),
        ("/tokenizer_info", "get"),
        ("/health", "get"),
        ("/live", "get"),
        ("/metrics", "get"),
        ("/openapi.json", "get"),
        ("/v1/responses", "post"),
        ("/v1/responses/{id}", "get"),
        ("/v1/responses/{id}", "delete"),
    ];
    let distinct: std::collections::BTreeSet<&str> = expected.iter().map(|(p, _)| *p).collect();
    assert_eq!(paths.len(), distinct.len());
    for (path, method) in expected {
        assert!(
            paths[path][method]["responses"].is_object(),
            "{method} {path}"
        );
        // Each listed route is really served with that method (not 404/405).
        let status = match method {
            "post" => server
                .client
                .post(server.url(path))
                .json(&json!({}))
                .send()
                .await
                .expect("send")
                .status(),
            "delete" => server
                .client
                .delete(server.url(&path.replace("{id}", MODEL)))
                .send()
                .await
                .expect("send")
                .status(),
            _ => server.get(&path.replace("{id}", MODEL)).await.status(),
        };
        // A response id that is not stored is a 404 of the route itself.
        let unknown_response = path.starts_with("/v1/responses/") && status == 404;
        assert!(
            (status != 404 || unknown_response) && status != 405,
            "{method} {path} -> {status}"
        );
    }
    // Every $ref resolves.
    let text = doc.to_string();
    for piece in text.split("\"$ref\":\"#/components/").skip(1) {
        let target = piece.split('"').next().expect("target");
        let (section, name) = target.split_once('/').expect("section/name");
        assert!(
            doc["components"][section].get(name).is_some(),
            "dangling $ref {target}"
        );
    }
    // API keys are declared, and the routes that stay open say so.
    assert!(doc["components"]["securitySchemes"]["bearerAuth"].is_object());
    assert!(doc["components"]["securitySchemes"]["apiKeyHeader"].is_object());
    for open in ["/health", "/live", "/openapi.json"] {
        assert_eq!(doc["paths"][open]["get"]["security"], json!([]), "{open}");
    }
    assert!(doc["paths"]["/v1/chat/completions"]["post"]["responses"]["401"].is_object());
}

#[tokio::test]
async fn serve_returns_after_shutdown() {
    let frontend = Frontend::new(FrontendConfig::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(rotor_frontend::serve(listener, frontend, async move {
        let _ = rx.await;
    }));
    let resp = reqwest::get(format!("http://{addr}/live"))
        .await
        .expect("live");
    assert_eq!(resp.status(), 200);
    tx.send(()).expect("server still running");
    let result = tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("serve returned");
    result.expect("task").expect("io");
    assert!(
        reqwest::get(format!("http://{addr}/live")).await.is_err(),
        "listener closed"
    );
}

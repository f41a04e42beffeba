//! Every bad request gets a 4xx (or the mapped 5xx for backend errors) with OpenAI's error JSON
//! naming the parameter; the backend is never called for a request that fails validation.

use rotor_frontend::FrontendConfig;
use rotor_protocol::{ErrorKind, WireError};
use serde_json::{json, Value};

use crate::support::{chat_body, smollm2_card, Script, TestServer, MODEL};

/// Asserts status and the error body's type, param and code.
async fn expect_error(
    resp: reqwest::Response,
    status: u16,
    kind: &str,
    param: Option<&str>,
    code: Option<&str>,
) -> Value {
    assert_eq!(resp.status().as_u16(), status, "status");
    let content_type = resp.headers()["content-type"]
        .to_str()
        .expect("ascii")
        .to_string();
    assert!(
        content_type.starts_with("application/json"),
        "content-type {content_type}"
    );
    let body: Value = resp.json().await.expect("error body is JSON");
    let error = &body["error"];
    assert_eq!(error["type"], kind, "{body}");
    assert_eq!(error["param"].as_str(), param, "{body}");
    assert_eq!(error["code"].as_str(), code, "{body}");
    assert!(
        error["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    body
}

const INVALID: &str = "invalid_request_error";

async fn chat_with(server: &TestServer, extra: Value) -> reqwest::Response {
    let mut body = chat_body("Hi");
    for (key, value) in extra.as_object().expect("object") {
        body[key] = value.clone();
    }
    server.post_json("/v1/chat/completions", &body).await
}

#[tokio::test]
async fn malformed_json_is_400_without_param() {
    let server = TestServer::start(Script::text("ok")).await;
    let resp = server
        .client
        .post(server.url("/v1/chat/completions"))
        .header("content-type", "application/json")
        .body("{\"model\": \"smollm2\", \"messages\": [")
        .send()
        .await
        .expect("send");
    expect_error(resp, 400, INVALID, None, Some("invalid_json")).await;
    assert!(server.log.requests().is_empty());
}

#[tokio::test]
async fn wrong_types_name_the_field() {
    let server = TestServer::start(Script::text("ok")).await;
    let cases = [
        (json!({"model": MODEL, "messages": "hi"}), "messages"),
        (
            json!({"model": MODEL, "messages": [{"role": "user", "content": 5}]}),
            "messages[0].content",
        ),
        (
            json!({"model": MODEL, "messages": [{"role": 1, "content": "x"}]}),
            "messages[0].role",
        ),
        (json!({"model": 7, "messages": []}), "model"),
        (
            json!({"messages": [{"role": "user", "content": "x"}]}),
            "model",
        ),
        (
            json!({"model": MODEL, "messages": [{"role": "user", "content": "x"}], "temperature": "hot"}),
            "temperature",
        ),
        (
            json!({"model": MODEL, "messages": [{"role": "user", "content": "x"}], "max_tokens": "ten"}),
            "max_tokens",
        ),
        (
            json!({"model": MODEL, "messages": [{"role": "user", "content": "x"}], "stream": "yes"}),
            "stream",
        ),
        (
            json!({"model": MODEL, "messages": [{"role": "user", "content": "x"}], "stop": 3}),
            "stop",
        ),
    ];
    for (body, param) in cases {
        let resp = server.post_json("/v1/chat/completions", &body).await;
        expect_error(resp, 400, INVALID, Some(param), None).await;
    }
    let resp = server
        .post_json(
            "/v1/completions",
            &json!({"model": MODEL, "prompt": {"a": 1}}),
        )
        .await;
    expect_error(resp, 400, INVALID, Some("prompt"), None).await;
    assert!(server.log.requests().is_empty());
}

#[tokio::test]
async fn wrong_content_type_is_415_json() {
    let server = TestServer::start(Script::text("ok")).await;
    let body = chat_body("Hi").to_string();
    for content_type in [Some("text/plain"), None] {
        let mut req = server
            .client
            .post(server.url("/v1/chat/completions"))
            .body(body.clone());
        if let Some(content_type) = content_type {
            req = req.header("content-type", content_type);
        }
        let resp = req.send().await.expect("send");
        expect_error(resp, 415, INVALID, None, Some("unsupported_media_type")).await;
    }
    // A charset parameter is fine.
    let resp = server
        .client
        .post(server.url("/v1/chat/completions"))
        .header("content-type", "application/json; charset=utf-8")
        .body(body)
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn unknown_model_is_404_model_not_found() {
    let server = TestServer::start(Script::text("ok")).await;
    let resp = server
        .post_json(
            "/v1/chat/completions",
            &json!({"model": "gpt-9", "messages": [{"role": "user", "content": "x"}]}),
        )
        .await;
    expect_error(resp, 404, INVALID, Some("model"), Some("model_not_found")).await;
    let resp = server
        .post_json("/v1/completions", &json!({"model": "gpt-9", "prompt": "x"}))
        .await;
    expect_error(resp, 404, INVALID, Some("model"), Some("model_not_found")).await;
    let resp = server.get("/v1/models/gpt-9").await;
    expect_error(resp, 404, INVALID, Some("model"), Some("model_not_found")).await;
}

#[tokio::test]
async fn empty_messages_and_missing_content() {
    let server = TestServer::start(Script::text("ok")).await;
    let resp = server
        .post_json(
            "/v1/chat/completions",
            &json!({"model": MODEL, "messages": []}),
        )
        .await;
    expect_error(resp, 400, INVALID, Some("messages"), None).await;
    let resp = server
        .post_json(
            "/v1/chat/completions",
            &json!({"model": MODEL, "messages": [{"role": "user"}]}),
        )
        .await;
    expect_error(resp, 400, INVALID, Some("messages[0].content"), None).await;
    let resp = server
        .post_json(
            "/v1/chat/completions",
            &json!({"model": MODEL, "messages": [{"role": "system", "content": "s"}, {"role": "user", "content": null}]}),
        )
        .await;
    expect_error(resp, 400, INVALID, Some("messages[1].content"), None).await;
    let resp = server
        .post_json(
            "/v1/chat/completions",
            &json!({"model": MODEL, "messages": [{"role": "wizard", "content": "x"}]}),
        )
        .await;
    expect_error(resp, 400, INVALID, Some("messages[0].role"), None).await;
    let image = json!([{"type": "image_url", "image_url": {"url": "http://x"}}]);
    let resp = server
        .post_json(
            "/v1/chat/completions",
            &json!({"model": MODEL, "messages": [{"role": "user", "content": image}]}),
        )
        .await;
    expect_error(
        resp,
        400,
        INVALID,
        Some("messages[0].content"),
        Some("unsupported_parameter"),
    )
    .await;
    let resp = server
        .post_json("/v1/completions", &json!({"model": MODEL, "prompt": ""}))
        .await;
    expect_error(resp, 400, INVALID, Some("prompt"), None).await;
    let resp = server
        .post_json("/v1/completions", &json!({"model": MODEL, "prompt": []}))
        .await;
    expect_error(resp, 400, INVALID, Some("prompt"), None).await;
    let resp = server
        .post_json(
            "/v1/completions",
            &json!({"model": MODEL, "prompt": [1, 99999999]}),
        )
        .await;
    expect_error(resp, 400, INVALID, Some("prompt"), None).await;
    assert!(server.log.requests().is_empty());
}

#[tokio::test]
async fn context_length_is_enforced() {
    let mut card = smollm2_card();
    card.context_length = 40;
    let server = TestServer::start_with(Script::text("ok"), card, FrontendConfig::default()).await;
    // The default system message alone is ~30 tokens; this prompt is far over 40.
    let long = "word ".repeat(50);
    let resp = server
        .post_json("/v1/chat/completions", &chat_body(&long))
        .await;
    expect_error(
        resp,
        400,
        INVALID,
        Some("messages"),
        Some("context_length_exceeded"),
    )
    .await;
    let resp = server
        .post_json("/v1/completions", &json!({"model": MODEL, "prompt": long}))
        .await;
    expect_error(
        resp,
        400,
        INVALID,
        Some("prompt"),
        Some("context_length_exceeded"),
    )
    .await;
    // Exactly 40 prompt tokens leaves no room either.
    let ids: Vec<u32> = (100..140).collect();
    let resp = server
        .post_json("/v1/completions", &json!({"model": MODEL, "prompt": ids}))
        .await;
    expect_error(
        resp,
        400,
        INVALID,
        Some("prompt"),
        Some("context_length_exceeded"),
    )
    .await;
    // 30 prompt tokens + 11 > 40; + 10 fits.
    let ids: Vec<u32> = (100..130).collect();
    let resp = server
        .post_json(
            "/v1/completions",
            &json!({"model": MODEL, "prompt": ids, "max_tokens": 11}),
        )
        .await;
    expect_error(
        resp,
        400,
        INVALID,
        Some("max_tokens"),
        Some("context_length_exceeded"),
    )
    .await;
    let resp = server
        .post_json(
            "/v1/completions",
            &json!({"model": MODEL, "prompt": ids, "max_tokens": 10}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(server.log.requests().len(), 1);
    // Without max_tokens the budget is the rest of the context.
    let resp = server
        .post_json("/v1/completions", &json!({"model": MODEL, "prompt": ids}))
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(server.log.last_request().stop.max_tokens, 10);
}

#[tokio::test]
async fn default_max_tokens_is_clamped_by_config() {
    let config = FrontendConfig {
        default_max_tokens_cap: Some(7),
        ..FrontendConfig::default()
    };
    let server = TestServer::start_with(Script::text("ok"), smollm2_card(), config).await;
    let resp = server
        .post_json(
            "/v1/completions",
            &json!({"model": MODEL, "prompt": "Hello"}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(server.log.last_request().stop.max_tokens, 7);
}

#[tokio::test]
async fn parameter_ranges() {
    let server = TestServer::start(Script::text("ok")).await;
    let cases = [
        (json!({"max_tokens": 0}), "max_tokens", None),
        (json!({"max_tokens": -5}), "max_tokens", None),
        (
            json!({"max_completion_tokens": 0}),
            "max_completion_tokens",
            None,
        ),
        (json!({"n": 0}), "n", None),
        (json!({"n": 17}), "n", None),
        (json!({"temperature": -0.1}), "temperature", None),
        (json!({"temperature": 2.5}), "temperature", None),
        (json!({"top_p": 0}), "top_p", None),
        (json!({"top_p": 1.5}), "top_p", None),
        (json!({"frequency_penalty": 3}), "frequency_penalty", None),
        (json!({"presence_penalty": -2.5}), "presence_penalty", None),
        (json!({"top_k": -3}), "top_k", None),
        (json!({"min_p": 1.5}), "min_p", None),
        (json!({"repetition_penalty": 0}), "repetition_penalty", None),
        (json!({"min_tokens": -1}), "min_tokens", None),
        (json!({"stop": ["a", "b", "c", "d", "e"]}), "stop", None),
        (json!({"stop": ""}), "stop", None),
        (
            json!({"stream_options": {"include_usage": true}}),
            "stream_options",
            None,
        ),
        // 49152 tokens in SmolLM2's vocabulary.
        (json!({"logit_bias": {"50256": -100}}), "logit_bias", None),
        (json!({"logit_bias": {"x": 1}}), "logit_bias", None),
        (json!({"logit_bias": {"7": 101}}), "logit_bias", None),
        (json!({"top_logprobs": 2}), "top_logprobs", None),
        (
            json!({"logprobs": true, "top_logprobs": 21}),
            "top_logprobs",
            None,
        ),
        (
            json!({"logprobs": true, "top_logprobs": -1}),
            "top_logprobs",
            None,
        ),
        (
            json!({"tools": [{"type": "function", "function": {"name": "f g"}}]}),
            "tools[0].function.name",
            None,
        ),
        (
            json!({"response_format": {"type": "yaml"}}),
            "response_format.type",
            None,
        ),
    ];
    for (extra, param, code) in cases {
        let resp = chat_with(&server, extra.clone()).await;
        assert_eq!(resp.status(), 400, "{extra}");
        expect_error(resp, 400, INVALID, Some(param), code).await;
    }
    assert!(server.log.requests().is_empty());
    // Accepted: boundaries, logit_bias, logprobs false, user, seed.
    let ok = json!({"temperature": 0, "top_p": 1, "n": 1, "logit_bias": {"49151": -100, "3": 2.5}, "logprobs": false, "user": "u",
                    "seed": 42, "stop": ["a", "b", "c", "d"], "top_k": 5, "min_p": 0.1,
                    "repetition_penalty": 1.1, "min_tokens": 1, "frequency_penalty": 2, "presence_penalty": -2});
    let resp = chat_with(&server, ok).await;
    assert_eq!(resp.status(), 200);
    let req = server.log.last_request();
    assert_eq!(req.sampling.temperature, 0.0);
    assert_eq!(req.sampling.top_k, Some(5));
    assert_eq!(req.sampling.seed, Some(42));
    assert_eq!(req.sampling.min_p, 0.1);
    assert_eq!(req.sampling.repetition_penalty, 1.1);
    assert_eq!(
        (
            req.sampling.frequency_penalty,
            req.sampling.presence_penalty
        ),
        (2.0, -2.0)
    );
    assert_eq!(req.stop.min_tokens, 1);
    assert_eq!(req.sampling.logit_bias, vec![(3, 2.5), (49151, -100.0)]);
    assert_eq!(req.sampling.logprobs, None);
    // SmolLM2's end-of-generation set as llama.cpp has it: `<|endoftext|>` (0), `<|im_end|>` (2,
    // its eos) and `<reponame>` (4, which llama.cpp's vocabulary also marks EOG).
    assert_eq!(req.stop.stop_token_ids, vec![0, 2, 4]);
    // Completions reject their own unsupported fields.
    for (extra, param, code) in [
        (json!({"best_of": 0}), "best_of", None),
        (json!({"best_of": 17}), "best_of", None),
        (json!({"n": 3, "best_of": 2}), "best_of", None),
        (json!({"best_of": 2, "stream": true}), "best_of", None),
        (json!({"prompt": ["a", ""]}), "prompt", None),
        (
            json!({"prompt": vec!["a"; 5], "best_of": 16}),
            "prompt",
            None,
        ),
        (json!({"logprobs": 21}), "logprobs", None),
        (json!({"logprobs": -1}), "logprobs", None),
    ] {
        let mut body = json!({"model": MODEL, "prompt": "x"});
        for (key, value) in extra.as_object().expect("object") {
            body[key] = value.clone();
        }
        let resp = server.post_json("/v1/completions", &body).await;
        expect_error(resp, 400, INVALID, Some(param), code).await;
    }
}

#[tokio::test]
async fn unknown_route_and_wrong_method() {
    let server = TestServer::start(Script::text("ok")).await;
    let resp = server.get("/v2/nothing").await;
    expect_error(resp, 404, INVALID, None, Some("not_found")).await;
    let resp = server.get("/v1/chat/completions").await;
    expect_error(resp, 405, INVALID, None, Some("method_not_allowed")).await;
    let resp = server.post_json("/v1/models", &json!({})).await;
    expect_error(resp, 405, INVALID, None, Some("method_not_allowed")).await;
}

#[tokio::test]
async fn body_over_limit_is_413_json() {
    let config = FrontendConfig {
        body_limit_bytes: 1024,
        ..FrontendConfig::default()
    };
    let server = TestServer::start_with(Script::text("ok"), smollm2_card(), config).await;
    let resp = server
        .post_json("/v1/chat/completions", &chat_body(&"x".repeat(2048)))
        .await;
    expect_error(resp, 413, INVALID, None, Some("request_too_large")).await;
    assert!(server.log.requests().is_empty());
}

#[tokio::test]
async fn backend_error_kinds_map_through_one_table() {
    let cases = [
        (ErrorKind::InvalidRequest, 400, INVALID),
        (ErrorKind::ModelNotFound, 404, INVALID),
        (ErrorKind::Overloaded, 503, "server_error"),
        (ErrorKind::Disconnected, 503, "server_error"),
        (ErrorKind::EngineStopped, 503, "server_error"),
        (ErrorKind::Internal, 500, "server_error"),
    ];
    for (kind, status, error_type) in cases {
        // Refused at once by generate().
        let mut script = Script::text("ok");
        script.refuse = Some(WireError::new(kind, "scripted refusal"));
        let server = TestServer::start(script).await;
        let resp = server
            .post_json("/v1/chat/completions", &chat_body("Hi"))
            .await;
        let body = expect_error(resp, status, error_type, None, Some(code_of(kind))).await;
        assert_eq!(body["error"]["message"], "scripted refusal");
        // Failing as the first stream item, streaming: still an HTTP status.
        let mut script = Script::text("ok");
        script.fail_after = Some((0, WireError::new(kind, "scripted failure")));
        let server = TestServer::start(script).await;
        let mut body = chat_body("Hi");
        body["stream"] = json!(true);
        let resp = server.post_json("/v1/chat/completions", &body).await;
        expect_error(resp, status, error_type, None, Some(code_of(kind))).await;
    }
}

fn code_of(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::InvalidRequest => "invalid_request",
        ErrorKind::ModelNotFound => "model_not_found",
        ErrorKind::Overloaded => "overloaded",
        ErrorKind::Disconnected => "worker_disconnected",
        ErrorKind::EngineStopped => "engine_stopped",
        ErrorKind::Internal => "internal_error",
    }
}

#[tokio::test]
async fn error_mid_stream_sends_error_event_then_done() {
    let mut script = Script::text("one two three four");
    script.fail_after = Some((
        2,
        WireError::new(ErrorKind::EngineStopped, "engine went away"),
    ));
    let server = TestServer::start(script).await;
    let mut body = chat_body("Hi");
    body["stream"] = json!(true);
    let resp = server.post_json("/v1/chat/completions", &body).await;
    assert_eq!(resp.status(), 200);
    let chunks = crate::support::sse_chunks(&resp.text().await.expect("body"));
    let last = chunks.last().expect("chunks");
    assert_eq!(last["error"]["code"], "engine_stopped", "{last}");
    assert_eq!(last["error"]["message"], "engine went away");
}

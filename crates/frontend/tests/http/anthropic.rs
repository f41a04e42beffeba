//! Anthropic's Messages API over HTTP with scripted model output: the request's translation
//! (the prompt equals the equivalent chat request's), the `Message` shape, the event stream's
//! order, every `stop_reason`, count_tokens, Anthropic's error shapes and statuses, `x-api-key`,
//! tool_use round trips, thinking blocks, and the counter on /metrics.

use rotor_frontend::{ApiKeys, FrontendConfig};
use rotor_protocol::{Constraint, ErrorKind, WireError};
use serde_json::{json, Value};

use crate::support::{smollm2_card, tokenizer, Script, TestServer, MODEL};

const CALL: &str = "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\", \"days\": [1, 2]}}\n</tool_call>";

/// Qwen3-style: the reasoning parser is chosen from `<think>` in the template.
const QWEN3_LIKE_TEMPLATE: &str = "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% if enable_thinking is defined and enable_thinking is false %}<think>\n\n</think>\n\n{% endif %}{% endif %}";

fn tools() -> Value {
    json!([
        {"name": "get_weather", "description": "Weather in a city",
         "input_schema": {"type": "object", "properties": {"city": {"type": "string"},
            "days": {"type": "array", "items": {"type": "integer"}}}, "required": ["city"]}},
        {"name": "get_time", "input_schema": {"type": "object", "properties": {"tz": {"type": "string"}}}}
    ])
}

fn body(extra: Value) -> Value {
    let mut body = json!({"model": MODEL, "max_tokens": 64,
        "messages": [{"role": "user", "content": "Hi"}]});
    for (k, v) in extra.as_object().expect("object") {
        body[k] = v.clone();
    }
    body
}

async fn message(server: &TestServer, body: &Value) -> Value {
    let resp = server.post_json("/v1/messages", body).await;
    let status = resp.status();
    let json: Value = resp.json().await.expect("json body");
    assert_eq!(status, 200, "{json}");
    json
}

/// (event name, data) of every SSE event, checking that each data's `type` is its name.
fn events(text: &str) -> Vec<(String, Value)> {
    text.split("\n\n")
        .filter(|e| !e.trim().is_empty() && !e.starts_with(':'))
        .map(|event| {
            let mut name = None;
            let mut data = None;
            for line in event.lines() {
                if let Some(n) = line.strip_prefix("event: ") {
                    name = Some(n.to_string());
                } else if let Some(d) = line.strip_prefix("data: ") {
                    data = Some(serde_json::from_str::<Value>(d).expect("data is JSON"));
                }
            }
            let (name, data) = (name.expect("event name"), data.expect("event data"));
            assert_eq!(data["type"], name.as_str(), "{event}");
            (name, data)
        })
        .collect()
}

async fn stream(server: &TestServer, body: &Value) -> Vec<(String, Value)> {
    let mut body = body.clone();
    body["stream"] = json!(true);
    let resp = server.post_json("/v1/messages", &body).await;
    assert_eq!(resp.status(), 200);
    let content_type = resp.headers()["content-type"].to_str().unwrap().to_string();
    assert!(
        content_type.starts_with("text/event-stream"),
        "{content_type}"
    );
    events(&resp.text().await.expect("body"))
}

/// The blocks a stream builds (as a non-streaming answer has them), and its `message_delta`.
fn reassemble(events: &[(String, Value)]) -> (Vec<Value>, Value) {
    let mut blocks: Vec<Value> = Vec::new();
    let mut json_bufs: Vec<String> = Vec::new();
    let mut delta = Value::Null;
    for (name, data) in events {
        match name.as_str() {
            "content_block_start" => {
                assert_eq!(data["index"], blocks.len(), "{data}");
                blocks.push(data["content_block"].clone());
                json_bufs.push(String::new());
            }
            "content_block_delta" => {
                let i = data["index"].as_u64().unwrap() as usize;
                let d = &data["delta"];
                match d["type"].as_str().unwrap() {
                    "text_delta" => {
                        let text = format!(
                            "{}{}",
                            blocks[i]["text"].as_str().unwrap(),
                            d["text"].as_str().unwrap()
                        );
                        blocks[i]["text"] = json!(text);
                    }
                    "thinking_delta" => {
                        let text = format!(
                            "{}{}",
                            blocks[i]["thinking"].as_str().unwrap(),
                            d["thinking"].as_str().unwrap()
                        );
                        blocks[i]["thinking"] = json!(text);
                    }
                    "input_json_delta" => {
                        json_bufs[i].push_str(d["partial_json"].as_str().unwrap())
                    }
                    other => panic!("unexpected delta {other}"),
                }
            }
            "content_block_stop" => {
                let i = data["index"].as_u64().unwrap() as usize;
                if blocks[i]["type"] == "tool_use" {
                    blocks[i]["input"] = serde_json::from_str(&json_bufs[i]).expect("input JSON");
                }
            }
            "message_delta" => delta = data.clone(),
            _ => {}
        }
    }
    (blocks, delta)
}

fn prompt_text(server: &TestServer) -> String {
    tokenizer()
        .decode(&server.log.last_request().token_ids, false)
        .expect("decode")
}

async fn metrics(server: &TestServer) -> String {
    server.get("/metrics").await.text().await.expect("metrics")
}

async fn server_with_template(script: Script, template: &str) -> TestServer {
    let mut card = smollm2_card();
    card.chat_template = Some(template.to_string());
    TestServer::start_with(script, card, FrontendConfig::default()).await
}

#[tokio::test]
async fn system_and_turns_render_as_the_equivalent_chat_request() {
    let server = TestServer::start(Script::text("Fine.")).await;
    message(
        &server,
        &json!({"model": MODEL, "max_tokens": 7, "temperature": 0.5, "top_p": 0.9, "top_k": 20,
            "metadata": {"user_id": "u-1"},
            "system": [{"type": "text", "text": "Be brief."}, {"type": "text", "text": "Be kind."}],
            "messages": [
                {"role": "user", "content": "Hello"},
                {"role": "assistant", "content": [{"type": "text", "text": "Hi there."}]},
                {"role": "user", "content": [{"type": "text", "text": "How are you?"}]}]}),
    )
    .await;
    let anthropic = server.log.last_request();
    assert_eq!(anthropic.stop.max_tokens, 7);
    assert_eq!(anthropic.sampling.temperature, 0.5);
    assert_eq!(anthropic.sampling.top_p, 0.9);
    assert_eq!(anthropic.sampling.top_k, Some(20));
    assert_eq!(
        prompt_text(&server),
        "<|im_start|>system\nBe brief.\nBe kind.<|im_end|>\n<|im_start|>user\nHello<|im_end|>\n\
         <|im_start|>assistant\nHi there.<|im_end|>\n<|im_start|>user\nHow are you?<|im_end|>\n\
         <|im_start|>assistant\n"
    );
    let resp = server
        .post_json(
            "/v1/chat/completions",
            &json!({"model": MODEL, "max_tokens": 7, "messages": [
                {"role": "system", "content": "Be brief.\nBe kind."},
                {"role": "user", "content": "Hello"},
                {"role": "assistant", "content": "Hi there."},
                {"role": "user", "content": "How are you?"}]}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(server.log.last_request().token_ids, anthropic.token_ids);
}

#[tokio::test]
async fn a_whole_message_has_anthropics_shape() {
    let server = TestServer::start(Script::text("Hello there.")).await;
    let resp = server
        .client
        .post(server.url("/v1/messages"))
        .header("anthropic-version", "2023-06-01")
        .json(&body(json!({})))
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), 200);
    let msg: Value = resp.json().await.expect("json");
    let id = msg["id"].as_str().expect("id");
    assert!(id.starts_with("msg_"), "{id}");
    assert_eq!(msg["type"], "message");
    assert_eq!(msg["role"], "assistant");
    assert_eq!(msg["model"], MODEL);
    assert_eq!(
        msg["content"],
        json!([{"type": "text", "text": "Hello there."}])
    );
    assert_eq!(msg["stop_reason"], "end_turn");
    assert_eq!(msg["stop_sequence"], Value::Null);
    let prompt_tokens = server.log.last_request().token_ids.len();
    let output_tokens = crate::support::encode("Hello there.").len() + 1; // and EOS
    assert_eq!(
        msg["usage"],
        json!({"input_tokens": prompt_tokens, "output_tokens": output_tokens})
    );
}

#[tokio::test]
async fn a_stream_sends_anthropics_events_in_order() {
    let server = TestServer::start(Script::text("Hello there, friend.")).await;
    let events = stream(&server, &body(json!({}))).await;
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    let deltas = names
        .iter()
        .filter(|n| **n == "content_block_delta")
        .count();
    assert!(deltas >= 3, "{names:?}");
    let mut expected = vec!["message_start", "ping", "content_block_start"];
    expected.extend(std::iter::repeat_n("content_block_delta", deltas));
    expected.extend(["content_block_stop", "message_delta", "message_stop"]);
    assert_eq!(names, expected);
    let start = &events[0].1["message"];
    assert!(start["id"].as_str().unwrap().starts_with("msg_"));
    assert_eq!(start["content"], json!([]));
    assert_eq!(start["stop_reason"], Value::Null);
    let prompt_tokens = server.log.last_request().token_ids.len();
    assert_eq!(start["usage"]["input_tokens"], prompt_tokens);
    assert_eq!(
        events[2].1["content_block"],
        json!({"type": "text", "text": ""})
    );
    let (blocks, delta) = reassemble(&events);
    assert_eq!(
        blocks,
        [json!({"type": "text", "text": "Hello there, friend."})]
    );
    let output_tokens = crate::support::encode("Hello there, friend.").len() + 1;
    assert_eq!(
        delta,
        json!({"type": "message_delta",
               "delta": {"stop_reason": "end_turn", "stop_sequence": null},
               "usage": {"output_tokens": output_tokens}})
    );
    assert_eq!(
        server
            .log
            .completed
            .load(std::sync::atomic::Ordering::SeqCst),
        1
    );
}

#[tokio::test]
async fn stop_reasons_map_end_turn_max_tokens_stop_sequence_and_tool_use() {
    let server = TestServer::start(Script::text("Hello there. Bye.")).await;
    let msg = message(&server, &body(json!({}))).await;
    assert_eq!(
        (msg["stop_reason"].as_str(), &msg["stop_sequence"]),
        (Some("end_turn"), &Value::Null)
    );

    let msg = message(&server, &body(json!({"max_tokens": 2}))).await;
    assert_eq!(msg["stop_reason"], "max_tokens");
    assert_eq!(msg["usage"]["output_tokens"], 2);
    let (_, delta) = reassemble(&stream(&server, &body(json!({"max_tokens": 2}))).await);
    assert_eq!(delta["delta"]["stop_reason"], "max_tokens");

    // The second of three stop sequences matches first in the text.
    let stops = json!({"stop_sequences": ["Bye", "there", "zzz"]});
    let msg = message(&server, &body(stops.clone())).await;
    assert_eq!(msg["stop_reason"], "stop_sequence");
    assert_eq!(msg["stop_sequence"], "there");
    assert_eq!(msg["content"][0]["text"], "Hello ");
    assert_eq!(
        server.log.last_request().stop.max_tokens,
        64,
        "stop sequences are the frontend's; the budget is the request's"
    );
    let (blocks, delta) = reassemble(&stream(&server, &body(stops)).await);
    assert_eq!(blocks[0]["text"], "Hello ");
    assert_eq!(
        delta["delta"],
        json!({"stop_reason": "stop_sequence", "stop_sequence": "there"})
    );

    // A stop sequence across a token boundary ("Hello" | " there") is named too.
    let msg = message(&server, &body(json!({"stop_sequences": ["lo th"]}))).await;
    assert_eq!(
        (
            &msg["stop_reason"],
            &msg["stop_sequence"],
            &msg["content"][0]["text"]
        ),
        (&json!("stop_sequence"), &json!("lo th"), &json!("Hel"))
    );

    let server = TestServer::start(Script::text(CALL)).await;
    let msg = message(&server, &body(json!({"tools": tools()}))).await;
    assert_eq!(msg["stop_reason"], "tool_use");
    assert_eq!(msg["stop_sequence"], Value::Null);
}

#[tokio::test]
async fn count_tokens_counts_the_prompt_messages_would_send() {
    let server = TestServer::start(Script::text("ok")).await;
    let request = json!({"model": MODEL, "system": "Be brief.", "tools": tools(),
        "messages": [{"role": "user", "content": "Weather in Paris?"}]});
    let resp = server
        .post_json("/v1/messages/count_tokens", &request)
        .await;
    assert_eq!(resp.status(), 200);
    let counted: Value = resp.json().await.expect("json");
    assert!(
        server.log.requests().is_empty(),
        "counting generates nothing"
    );
    let mut generate = request.clone();
    generate["max_tokens"] = json!(16);
    message(&server, &generate).await;
    let sent = server.log.last_request().token_ids.len();
    assert!(sent > 50, "the tools are in the prompt: {sent}");
    assert_eq!(counted, json!({"input_tokens": sent}));
}

async fn expect_error(resp: reqwest::Response, status: u16, kind: &str) -> Value {
    assert_eq!(resp.status(), status);
    let body: Value = resp.json().await.expect("json error");
    assert_eq!(body["type"], "error", "{body}");
    assert_eq!(body["error"]["type"], kind, "{body}");
    assert!(
        !body["error"]["message"]
            .as_str()
            .expect("message")
            .is_empty(),
        "{body}"
    );
    assert_eq!(body.as_object().unwrap().len(), 2, "{body}");
    body
}

#[tokio::test]
async fn errors_have_anthropics_shape_and_status() {
    let server = TestServer::start(Script::text("ok")).await;
    let no_max = json!({"model": MODEL, "messages": [{"role": "user", "content": "Hi"}]});
    let err = expect_error(
        server.post_json("/v1/messages", &no_max).await,
        400,
        "invalid_request_error",
    )
    .await;
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("max_tokens"),
        "{err}"
    );
    expect_error(
        server
            .post_json("/v1/messages", &body(json!({"model": "nope"})))
            .await,
        404,
        "not_found_error",
    )
    .await;
    expect_error(
        server
            .post_json(
                "/v1/messages/count_tokens",
                &json!({"model": "nope", "messages": []}),
            )
            .await,
        404,
        "not_found_error",
    )
    .await;
    let image = body(json!({"messages": [{"role": "user", "content": [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AA=="}}]}]}));
    let err = expect_error(
        server.post_json("/v1/messages", &image).await,
        400,
        "invalid_request_error",
    )
    .await;
    assert!(
        err["error"]["message"].as_str().unwrap().contains("image"),
        "{err}"
    );
    for bad in [
        body(json!({"temperature": 1.5})),
        body(json!({"max_tokens": 0})),
        body(json!({"messages": [{"role": "system", "content": "x"}]})),
        body(json!({"messages": []})),
        body(json!({"tool_choice": {"type": "tool", "name": "missing"}, "tools": tools()})),
    ] {
        expect_error(
            server.post_json("/v1/messages", &bad).await,
            400,
            "invalid_request_error",
        )
        .await;
    }
    let resp = server
        .client
        .post(server.url("/v1/messages"))
        .header("content-type", "application/json")
        .body("{\"model\": ")
        .send()
        .await
        .expect("send");
    expect_error(resp, 400, "invalid_request_error").await;
    assert!(
        server.log.requests().is_empty(),
        "nothing reached the backend"
    );

    let mut script = Script::text("ok");
    script.refuse = Some(WireError::new(ErrorKind::Overloaded, "scripted overload"));
    let busy = TestServer::start(script).await;
    let resp = busy.post_json("/v1/messages", &body(json!({}))).await;
    assert_eq!(resp.headers()["retry-after"], "1");
    expect_error(resp, 529, "overloaded_error").await;
    let resp = busy
        .post_json("/v1/messages", &body(json!({"stream": true})))
        .await;
    expect_error(resp, 529, "overloaded_error").await;

    let small = FrontendConfig {
        body_limit_bytes: 1024,
        ..FrontendConfig::default()
    };
    let server = TestServer::start_with(Script::text("ok"), smollm2_card(), small).await;
    let long = body(json!({"messages": [{"role": "user", "content": "x".repeat(4096)}]}));
    expect_error(
        server.post_json("/v1/messages", &long).await,
        413,
        "request_too_large",
    )
    .await;
}

#[tokio::test]
async fn a_backend_failure_mid_stream_is_an_error_event() {
    let mut script = Script::text("Hello there, friend.");
    script.fail_after = Some((
        2,
        WireError::new(ErrorKind::EngineStopped, "engine went away"),
    ));
    let server = TestServer::start(script).await;
    let events = stream(&server, &body(json!({}))).await;
    let (name, last) = events.last().expect("events");
    assert_eq!(name, "error");
    assert_eq!(last["error"]["type"], "api_error");
    assert!(events.iter().all(|(n, _)| n != "message_stop"));
}

#[tokio::test]
async fn x_api_key_authenticates_and_refusals_have_anthropics_shape() {
    let config = FrontendConfig {
        api_keys: ApiKeys::new(["sk-ant-test"]).expect("keys"),
        ..FrontendConfig::default()
    };
    let server = TestServer::start_with(Script::text("ok"), smollm2_card(), config).await;
    let send = |key: Option<(&'static str, &'static str)>, path: &'static str| {
        let mut req = server
            .client
            .post(server.url(path))
            .header("anthropic-version", "2023-06-01")
            .json(&body(json!({})));
        if let Some((name, value)) = key {
            req = req.header(name, value);
        }
        req.send()
    };
    let resp = send(Some(("x-api-key", "sk-ant-test")), "/v1/messages")
        .await
        .expect("send");
    assert_eq!(resp.status(), 200);
    let resp = send(
        Some(("authorization", "Bearer sk-ant-test")),
        "/v1/messages",
    )
    .await
    .expect("send");
    assert_eq!(resp.status(), 200);
    let resp = send(
        Some(("x-api-key", "sk-ant-test")),
        "/v1/messages/count_tokens",
    )
    .await
    .expect("send");
    assert_eq!(resp.status(), 200);
    expect_error(
        send(None, "/v1/messages").await.expect("send"),
        401,
        "authentication_error",
    )
    .await;
    expect_error(
        send(Some(("x-api-key", "sk-ant-wrong")), "/v1/messages")
            .await
            .expect("send"),
        401,
        "authentication_error",
    )
    .await;
    // The OpenAI routes keep OpenAI's shape.
    let resp = server
        .post_json("/v1/chat/completions", &crate::support::chat_body("Hi"))
        .await;
    assert_eq!(resp.status(), 401);
    let body: Value = resp.json().await.expect("json");
    assert_eq!(body["error"]["type"], "invalid_request_error");
    assert!(body.get("type").is_none(), "{body}");
}

#[tokio::test]
async fn tool_use_round_trips_whole_and_streamed() {
    let output = format!("Let me check.\n{CALL}");
    let server = TestServer::start(Script::text(&output)).await;
    let request = body(json!({"tools": tools(),
        "messages": [{"role": "user", "content": "Weather in Paris?"}]}));
    let msg = message(&server, &request).await;
    assert_eq!(msg["stop_reason"], "tool_use");
    let content = msg["content"].as_array().expect("content");
    assert_eq!(content.len(), 2, "{msg}");
    assert_eq!(content[0], json!({"type": "text", "text": "Let me check."}));
    let call = &content[1];
    assert_eq!(call["type"], "tool_use");
    let id = call["id"].as_str().expect("id");
    assert!(
        id.starts_with("toolu_") && id.len() == "toolu_".len() + 24,
        "{id}"
    );
    assert_eq!(call["name"], "get_weather");
    assert_eq!(call["input"], json!({"city": "Paris", "days": [1, 2]}));
    assert_eq!(
        server.log.last_request().sampling.constraint,
        None,
        "auto is not forced"
    );

    let events = stream(&server, &request).await;
    let (blocks, delta) = reassemble(&events);
    assert_eq!(delta["delta"]["stop_reason"], "tool_use");
    assert_eq!(blocks.len(), 2, "{blocks:?}");
    assert_eq!(blocks[0], content[0]);
    assert_eq!(blocks[1]["type"], "tool_use");
    assert!(blocks[1]["id"].as_str().unwrap().starts_with("toolu_"));
    assert_eq!(blocks[1]["name"], "get_weather");
    assert_eq!(blocks[1]["input"], call["input"]);
    let tool_start = events
        .iter()
        .find(|(n, d)| n == "content_block_start" && d["content_block"]["type"] == "tool_use")
        .expect("a tool_use block");
    assert_eq!(tool_start.1["content_block"]["input"], json!({}));

    // The answer goes back as tool_use + tool_result; the prompt carries both.
    let follow_up = body(json!({"tools": tools(), "messages": [
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": msg["content"].clone()},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": id, "content": "18 C"}]}]}));
    message(&server, &follow_up).await;
    let prompt = prompt_text(&server);
    assert!(
        prompt.contains("<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\":\"Paris\",\"days\":[1,2]}}\n</tool_call>"),
        "{prompt}"
    );
    assert!(
        prompt.contains("<tool_response>\n18 C\n</tool_response>"),
        "{prompt}"
    );
    assert!(prompt.contains("Let me check."), "{prompt}");
}

#[tokio::test]
async fn tool_choice_tool_and_any_force_a_call() {
    let server = TestServer::start(Script::text(CALL)).await;
    let forced =
        body(json!({"tools": tools(), "tool_choice": {"type": "tool", "name": "get_weather"}}));
    let msg = message(&server, &forced).await;
    assert_eq!(msg["content"][0]["name"], "get_weather");
    let Some(Constraint::Lark { grammar }) = server.log.last_request().sampling.constraint else {
        panic!("a forced call is constrained by a grammar");
    };
    assert!(
        grammar.contains("get_weather") && !grammar.contains("get_time"),
        "{grammar}"
    );
    message(
        &server,
        &body(json!({"tools": tools(), "tool_choice": {"type": "any"}})),
    )
    .await;
    let Some(Constraint::Lark { grammar }) = server.log.last_request().sampling.constraint else {
        panic!("any is constrained by a grammar");
    };
    assert!(grammar.contains("get_time"), "{grammar}");
    // `none`: the tools are not even described.
    message(
        &server,
        &body(json!({"tools": tools(), "tool_choice": {"type": "none"}})),
    )
    .await;
    assert!(!prompt_text(&server).contains("get_weather"));
    let text = metrics(&server).await;
    for choice in ["named", "required", "none"] {
        assert!(
            text.contains(&format!(
                "rotor_frontend_tool_requests_total{{tool_choice=\"{choice}\"}} 1\n"
            )),
            "{text}"
        );
    }
}

#[tokio::test]
async fn reasoning_comes_back_as_a_thinking_block() {
    let output = "<think>\nThe user wants 2+2.\n</think>\n\nThe answer is 4.";
    let server = server_with_template(Script::text(output), QWEN3_LIKE_TEMPLATE).await;
    let msg = message(&server, &body(json!({}))).await;
    assert_eq!(
        msg["content"],
        json!([{"type": "thinking", "thinking": "The user wants 2+2.", "signature": ""},
               {"type": "text", "text": "The answer is 4."}])
    );
    let (blocks, _) = reassemble(&stream(&server, &body(json!({}))).await);
    assert_eq!(Value::Array(blocks), msg["content"]);
}

#[tokio::test]
async fn the_counter_counts_messages_by_stream() {
    let server = TestServer::start(Script::text("ok")).await;
    message(&server, &body(json!({}))).await;
    message(&server, &body(json!({}))).await;
    stream(&server, &body(json!({}))).await;
    // Refused requests are not counted.
    let resp = server
        .post_json("/v1/messages", &body(json!({"max_tokens": 0})))
        .await;
    assert_eq!(resp.status(), 400);
    let text = metrics(&server).await;
    assert!(
        text.contains("rotor_frontend_anthropic_messages_total{stream=\"false\"} 2\n"),
        "{text}"
    );
    assert!(
        text.contains("rotor_frontend_anthropic_messages_total{stream=\"true\"} 1\n"),
        "{text}"
    );
    assert!(
        text.contains(
            "rotor_frontend_requests_total{endpoint=\"/v1/messages\",status=\"200\"} 3\n"
        ),
        "{text}"
    );
}

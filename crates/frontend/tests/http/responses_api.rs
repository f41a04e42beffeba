//! OpenAI's Responses API over HTTP with scripted model output: how input items, instructions
//! and `previous_response_id` render into the prompt, the response object (checked against
//! the fields the OpenResponses compliance suite requires), the streamed event sequence, the
//! store (GET, DELETE, `store: false`, 404s), `max_output_tokens` → incomplete, function calls,
//! reasoning items and the counters.
//!
//! The six OpenResponses compliance tests (basic-response, streaming-response, system-prompt,
//! tool-calling, image-input, multi-turn) send the bodies reproduced in the `compliance_*`
//! tests here, which make the same assertions (schema fields, output, status, events).

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures::StreamExt;

use rotor_frontend::FrontendConfig;
use rotor_protocol::{Constraint, ErrorKind, WireError};
use serde_json::{json, Value};

use crate::support::{encode, smollm2_card, tokenizer, Script, TestServer, MODEL};

const SMOLLM2_SYSTEM: &str = "You are a helpful AI assistant named SmolLM, trained by Hugging Face";

const CALL: &str = "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"location\": \"San Francisco, CA\"}}\n</tool_call>";

/// Qwen3-style (as in tools.rs): its think block makes the frontend pick the qwen3 reasoning parser.
const QWEN3_LIKE_TEMPLATE: &str = "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% if enable_thinking is defined and enable_thinking is false %}<think>\n\n</think>\n\n{% endif %}{% endif %}";

fn turn(role: &str, text: &str) -> String {
    format!("<|im_start|>{role}\n{text}<|im_end|>\n")
}

fn rendered(turns: &[(&str, &str)]) -> String {
    let mut text = String::new();
    if turns.first().map(|t| t.0) != Some("system") {
        text.push_str(&turn("system", SMOLLM2_SYSTEM));
    }
    for (role, content) in turns {
        text.push_str(&turn(role, content));
    }
    text.push_str("<|im_start|>assistant\n");
    text
}

fn weather_tool() -> Value {
    json!({"type": "function", "name": "get_weather",
        "description": "Get the current weather for a location",
        "parameters": {"type": "object", "properties": {"location": {"type": "string",
            "description": "The city and state, e.g. San Francisco, CA"}}, "required": ["location"]}})
}

fn body(input: Value, extra: Value) -> Value {
    let mut body = json!({"model": MODEL, "input": input});
    for (k, v) in extra.as_object().expect("object") {
        body[k] = v.clone();
    }
    body
}

async fn create(server: &TestServer, body: &Value) -> Value {
    let resp = server.post_json("/v1/responses", body).await;
    let status = resp.status();
    let json: Value = resp.json().await.expect("json body");
    assert_eq!(status, 200, "{json}");
    json
}

/// One SSE event: its `event:` name and its JSON data.
fn sse_events(body: &str) -> Vec<(String, Value)> {
    body.split("\n\n")
        .filter(|block| !block.trim().is_empty())
        .map(|block| {
            let mut name = None;
            let mut data = None;
            for line in block.lines() {
                if let Some(rest) = line.strip_prefix("event: ") {
                    name = Some(rest.to_string());
                } else if let Some(rest) = line.strip_prefix("data: ") {
                    data = Some(serde_json::from_str::<Value>(rest).expect("event data is JSON"));
                }
            }
            (
                name.unwrap_or_else(|| panic!("no event line: {block:?}")),
                data.unwrap_or_else(|| panic!("no data line: {block:?}")),
            )
        })
        .collect()
}

async fn create_stream(server: &TestServer, body: &Value) -> Vec<Value> {
    let mut body = body.clone();
    body["stream"] = json!(true);
    let resp = server.post_json("/v1/responses", &body).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["content-type"].to_str().unwrap(),
        "text/event-stream"
    );
    let text = resp.text().await.expect("body");
    assert!(!text.contains("[DONE]"), "no [DONE] in the Responses API");
    let events = sse_events(&text);
    for (i, (name, data)) in events.iter().enumerate() {
        assert_eq!(data["type"], name.as_str(), "event line = type");
        assert_eq!(
            data["sequence_number"], i as u64,
            "sequence numbers count up"
        );
    }
    events.into_iter().map(|(_, data)| data).collect()
}

fn types(events: &[Value]) -> Vec<&str> {
    events
        .iter()
        .map(|e| e["type"].as_str().expect("type"))
        .collect()
}

fn prompt_text(server: &TestServer) -> String {
    tokenizer()
        .decode(&server.log.last_request().token_ids, false)
        .expect("decode")
}

async fn metrics(server: &TestServer) -> String {
    server.get("/metrics").await.text().await.expect("metrics")
}

/// The fields the OpenResponses `responseResource` schema requires, with their JSON types
/// (`null` allowed where the schema allows it).
fn assert_response_resource(r: &Value) {
    let required: &[(&str, &[&str])] = &[
        ("id", &["string"]),
        ("object", &["string"]),
        ("created_at", &["number"]),
        ("completed_at", &["number", "null"]),
        ("status", &["string"]),
        ("incomplete_details", &["object", "null"]),
        ("model", &["string"]),
        ("previous_response_id", &["string", "null"]),
        ("instructions", &["string", "null"]),
        ("output", &["array"]),
        ("error", &["object", "null"]),
        ("tools", &["array"]),
        ("tool_choice", &["string", "object"]),
        ("truncation", &["string"]),
        ("parallel_tool_calls", &["bool"]),
        ("text", &["object"]),
        ("top_p", &["number"]),
        ("presence_penalty", &["number"]),
        ("frequency_penalty", &["number"]),
        ("top_logprobs", &["number"]),
        ("temperature", &["number"]),
        ("reasoning", &["object", "null"]),
        ("usage", &["object", "null"]),
        ("max_output_tokens", &["number", "null"]),
        ("max_tool_calls", &["number", "null"]),
        ("store", &["bool"]),
        ("background", &["bool"]),
        ("service_tier", &["string"]),
        ("metadata", &["object"]),
        ("safety_identifier", &["string", "null"]),
        ("prompt_cache_key", &["string", "null"]),
    ];
    for (field, kinds) in required {
        let value = r
            .get(*field)
            .unwrap_or_else(|| panic!("missing {field}: {r}"));
        let kind = match value {
            Value::Null => "null",
            Value::Bool(_) => "bool",
            Value::Number(_) => "number",
            Value::String(_) => "string",
            Value::Array(_) => "array",
            Value::Object(_) => "object",
        };
        assert!(kinds.contains(&kind), "{field} is {kind}: {r}");
    }
    assert_eq!(r["object"], "response");
    assert!(r["id"].as_str().unwrap().starts_with("resp_"), "{r}");
    for item in r["output"].as_array().unwrap() {
        assert!(
            item["id"].is_string() && item["status"].is_string(),
            "{item}"
        );
        match item["type"].as_str().unwrap() {
            "message" => {
                assert_eq!(item["role"], "assistant");
                for part in item["content"].as_array().unwrap() {
                    assert_eq!(part["type"], "output_text", "{part}");
                    assert!(part["text"].is_string());
                    assert_eq!(part["annotations"], json!([]));
                    assert_eq!(part["logprobs"], json!([]));
                }
            }
            "function_call" => {
                for field in ["call_id", "name", "arguments"] {
                    assert!(item[field].is_string(), "{item}");
                }
            }
            "reasoning" => assert!(item["summary"].is_array(), "{item}"),
            other => panic!("unexpected item type {other}"),
        }
    }
    if let Some(usage) = r["usage"].as_object() {
        assert_eq!(
            usage["total_tokens"].as_u64().unwrap(),
            usage["input_tokens"].as_u64().unwrap() + usage["output_tokens"].as_u64().unwrap()
        );
        assert!(usage["input_tokens_details"]["cached_tokens"].is_number());
        assert!(usage["input_tokens_details"]["cache_write_tokens"].is_number());
        assert!(usage["output_tokens_details"]["reasoning_tokens"].is_number());
    }
}

fn output_text(r: &Value) -> String {
    r["output"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|item| item["type"] == "message")
        .flat_map(|item| item["content"].as_array().unwrap().iter())
        .map(|part| part["text"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn input_forms_render_to_the_same_prompt() {
    let server = TestServer::start(Script::text("4")).await;
    let expected = encode(&rendered(&[("user", "What is 2+2?")]));
    for input in [
        json!("What is 2+2?"),
        json!([{"role": "user", "content": "What is 2+2?"}]),
        json!([{"type": "message", "role": "user", "content": [{"type": "input_text", "text": "What is 2+2?"}]}]),
    ] {
        create(&server, &body(input.clone(), json!({}))).await;
        assert_eq!(
            server.log.last_request().token_ids,
            expected,
            "input {input}"
        );
    }
}

#[tokio::test]
async fn instructions_are_the_system_message_and_developer_is_system() {
    let server = TestServer::start(Script::text("Arr.")).await;
    create(
        &server,
        &body(
            json!("Say hello."),
            json!({"instructions": "Speak like a pirate."}),
        ),
    )
    .await;
    assert_eq!(
        prompt_text(&server),
        rendered(&[("system", "Speak like a pirate."), ("user", "Say hello.")])
    );
    create(
        &server,
        &body(
            json!([{"role": "developer", "content": "Be terse."}, {"role": "user", "content": "Hi"}]),
            json!({}),
        ),
    )
    .await;
    assert_eq!(
        prompt_text(&server),
        rendered(&[("system", "Be terse."), ("user", "Hi")])
    );
}

#[tokio::test]
async fn compliance_basic_response_has_the_resource_shape() {
    let mut script = Script::text("Hello there friend");
    script.cached_prompt_tokens = Some(5);
    let server = TestServer::start(script).await;
    let r = create(
        &server,
        &body(
            json!([{"type": "message", "role": "user", "content": "Say hello in exactly 3 words."}]),
            json!({"metadata": {"k": "v"}, "temperature": 0.5, "top_p": 0.9}),
        ),
    )
    .await;
    assert_response_resource(&r);
    assert_eq!(r["status"], "completed");
    assert_eq!(r["model"], MODEL);
    assert_eq!(r["incomplete_details"], Value::Null);
    assert_eq!(r["metadata"], json!({"k": "v"}));
    assert_eq!(r["temperature"], 0.5);
    assert_eq!(r["top_p"], 0.9);
    assert_eq!(r["store"], true);
    let output = r["output"].as_array().unwrap();
    assert_eq!(output.len(), 1, "{r}");
    assert_eq!(output[0]["type"], "message");
    assert_eq!(output[0]["status"], "completed");
    assert!(output[0]["id"].as_str().unwrap().starts_with("msg_"));
    assert_eq!(output_text(&r), "Hello there friend");
    let prompt_tokens = encode(&rendered(&[("user", "Say hello in exactly 3 words.")])).len();
    assert_eq!(r["usage"]["input_tokens"], prompt_tokens as u64);
    assert_eq!(
        r["usage"]["output_tokens"],
        encode("Hello there friend").len() as u64 + 1,
        "+ EOS"
    );
    assert_eq!(r["usage"]["input_tokens_details"]["cached_tokens"], 5);
    // The scripted engine has no paged KV cache: it writes nothing to a prefix cache.
    assert_eq!(r["usage"]["input_tokens_details"]["cache_write_tokens"], 0);
    let sampling = &server.log.last_request().sampling;
    assert_eq!((sampling.temperature, sampling.top_p), (0.5, 0.9));
}

#[tokio::test]
async fn compliance_system_prompt_and_multi_turn() {
    let server = TestServer::start(Script::text("Ahoy!")).await;
    let r = create(
        &server,
        &body(
            json!([
                {"type": "message", "role": "system", "content": "You are a pirate. Always respond in pirate speak."},
                {"type": "message", "role": "user", "content": "Say hello."}
            ]),
            json!({}),
        ),
    )
    .await;
    assert_response_resource(&r);
    assert_eq!(r["status"], "completed");
    assert!(!r["output"].as_array().unwrap().is_empty());
    assert_eq!(
        prompt_text(&server),
        rendered(&[
            (
                "system",
                "You are a pirate. Always respond in pirate speak."
            ),
            ("user", "Say hello.")
        ])
    );
    let r = create(
        &server,
        &body(
            json!([
                {"type": "message", "role": "user", "content": "My name is Alice."},
                {"type": "message", "role": "assistant", "content": "Hello Alice! Nice to meet you. How can I help you today?"},
                {"type": "message", "role": "user", "content": "What is my name?"}
            ]),
            json!({}),
        ),
    )
    .await;
    assert_response_resource(&r);
    assert_eq!(r["status"], "completed");
    assert_eq!(
        prompt_text(&server),
        rendered(&[
            ("user", "My name is Alice."),
            (
                "assistant",
                "Hello Alice! Nice to meet you. How can I help you today?"
            ),
            ("user", "What is my name?")
        ])
    );
}

#[tokio::test]
async fn compliance_image_input_is_refused_naming_the_part() {
    let server = TestServer::start(Script::text("x")).await;
    let resp = server
        .post_json(
            "/v1/responses",
            &body(
                json!([{"type": "message", "role": "user", "content": [
                    {"type": "input_text", "text": "What do you see in this image?"},
                    {"type": "input_image", "image_url": "data:image/png;base64,iVBORw0KGgo="}
                ]}]),
                json!({}),
            ),
        )
        .await;
    assert_eq!(resp.status(), 400);
    let err: Value = resp.json().await.expect("json");
    assert_eq!(err["error"]["param"], "input[0].content[1]", "{err}");
    assert_eq!(err["error"]["code"], "unsupported_parameter");
    assert!(server.log.requests().is_empty(), "nothing was generated");
}

#[tokio::test]
async fn previous_response_id_prepends_the_stored_turns_but_not_their_instructions() {
    let server = TestServer::start(Script::text("Nice to meet you, Alice.")).await;
    let first = create(
        &server,
        &body(
            json!("My name is Alice."),
            json!({"instructions": "Answer in French."}),
        ),
    )
    .await;
    let id = first["id"].as_str().unwrap();
    let second = create(
        &server,
        &body(
            json!("What is my name?"),
            json!({"previous_response_id": id}),
        ),
    )
    .await;
    assert_eq!(second["previous_response_id"], id);
    assert_eq!(second["instructions"], Value::Null);
    assert_eq!(
        prompt_text(&server),
        rendered(&[
            ("user", "My name is Alice."),
            ("assistant", "Nice to meet you, Alice."),
            ("user", "What is my name?")
        ])
    );
    // A third turn chains through both.
    let second_id = second["id"].as_str().unwrap();
    create(
        &server,
        &body(
            json!("And again?"),
            json!({"previous_response_id": second_id, "instructions": "Be brief."}),
        ),
    )
    .await;
    assert_eq!(
        prompt_text(&server),
        rendered(&[
            ("system", "Be brief."),
            ("user", "My name is Alice."),
            ("assistant", "Nice to meet you, Alice."),
            ("user", "What is my name?"),
            ("assistant", "Nice to meet you, Alice."),
            ("user", "And again?")
        ])
    );
}

#[tokio::test]
async fn stored_responses_are_retrieved_and_deleted_and_unknown_ids_are_404() {
    let server = TestServer::start(Script::text("Stored answer")).await;
    let created = create(&server, &body(json!("Hi"), json!({}))).await;
    let id = created["id"].as_str().unwrap();
    let got = server.get(&format!("/v1/responses/{id}")).await;
    assert_eq!(got.status(), 200);
    let got: Value = got.json().await.expect("json");
    assert_eq!(got, created, "GET returns the created response");
    assert!(metrics(&server)
        .await
        .contains("rotor_frontend_responses_stored 1\n"));
    let url = server.url(&format!("/v1/responses/{id}"));
    let deleted = server.client.delete(&url).send().await.expect("delete");
    assert_eq!(deleted.status(), 200);
    let deleted: Value = deleted.json().await.expect("json");
    assert_eq!(
        deleted,
        json!({"id": id, "object": "response", "deleted": true})
    );
    assert!(metrics(&server)
        .await
        .contains("rotor_frontend_responses_stored 0\n"));
    for resp in [
        server.get(&format!("/v1/responses/{id}")).await,
        server.client.delete(&url).send().await.expect("delete"),
        server.get("/v1/responses/resp_unknown").await,
    ] {
        assert_eq!(resp.status(), 404);
        let err: Value = resp.json().await.expect("json");
        assert_eq!(err["error"]["type"], "invalid_request_error", "{err}");
        assert_eq!(err["error"]["code"], "response_not_found", "{err}");
    }
}

#[tokio::test]
async fn store_false_is_neither_retrievable_nor_a_previous_response() {
    let server = TestServer::start(Script::text("Forget me")).await;
    let created = create(&server, &body(json!("Hi"), json!({"store": false}))).await;
    assert_eq!(created["store"], false);
    let id = created["id"].as_str().unwrap();
    assert_eq!(
        server.get(&format!("/v1/responses/{id}")).await.status(),
        404
    );
    let resp = server
        .post_json(
            "/v1/responses",
            &body(json!("Again"), json!({"previous_response_id": id})),
        )
        .await;
    assert_eq!(resp.status(), 404);
    let err: Value = resp.json().await.expect("json");
    assert_eq!(err["error"]["param"], "previous_response_id", "{err}");
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("store: false"),
        "{err}"
    );
    assert_eq!(
        server.log.requests().len(),
        1,
        "the chained request never ran"
    );
}

#[tokio::test]
async fn the_store_keeps_the_newest_responses() {
    let config = FrontendConfig {
        max_stored_responses: 2,
        ..FrontendConfig::default()
    };
    let server = TestServer::start_with(Script::text("ok"), smollm2_card(), config).await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        let r = create(&server, &body(json!("Hi"), json!({}))).await;
        ids.push(r["id"].as_str().unwrap().to_string());
    }
    let status = |id: &str| {
        let path = format!("/v1/responses/{id}");
        let server = &server;
        async move { server.get(&path).await.status().as_u16() }
    };
    assert_eq!(status(&ids[0]).await, 404, "the oldest was evicted");
    assert_eq!(status(&ids[1]).await, 200);
    assert_eq!(status(&ids[2]).await, 200);
    assert!(metrics(&server)
        .await
        .contains("rotor_frontend_responses_stored 2\n"));
}

#[tokio::test]
async fn compliance_streaming_events_come_in_order_and_rebuild_the_response() {
    let text = "1, 2, 3, 4, 5";
    let server = TestServer::start(Script::text(text)).await;
    let events = create_stream(
        &server,
        &body(
            json!([{"type": "message", "role": "user", "content": "Count from 1 to 5."}]),
            json!({}),
        ),
    )
    .await;
    let kinds = types(&events);
    let deltas = kinds
        .iter()
        .filter(|k| **k == "response.output_text.delta")
        .count();
    assert!(deltas > 1, "{kinds:?}");
    let mut expected = vec![
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ];
    expected.extend(std::iter::repeat_n("response.output_text.delta", deltas));
    expected.extend([
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]);
    assert_eq!(kinds, expected);
    assert_eq!(events[0]["response"]["status"], "in_progress");
    assert_eq!(events[0]["response"]["output"], json!([]));
    let item_id = events[2]["item"]["id"].as_str().unwrap();
    assert_eq!(events[2]["item"]["type"], "message");
    assert_eq!(events[2]["item"]["status"], "in_progress");
    let mut streamed = String::new();
    for event in &events[4..4 + deltas] {
        assert_eq!(event["item_id"], item_id);
        assert_eq!(
            (
                event["output_index"].as_u64(),
                event["content_index"].as_u64()
            ),
            (Some(0), Some(0))
        );
        assert_eq!(event["logprobs"], json!([]));
        streamed.push_str(event["delta"].as_str().unwrap());
    }
    assert_eq!(streamed, text);
    assert_eq!(events[4 + deltas]["text"], text);
    assert_eq!(events[5 + deltas]["part"]["text"], text);
    assert_eq!(events[6 + deltas]["item"]["status"], "completed");
    let last = &events.last().unwrap()["response"];
    assert_response_resource(last);
    assert_eq!(last["status"], "completed");
    assert_eq!(output_text(last), text);
    let id = last["id"].as_str().unwrap();
    let stored: Value = server
        .get(&format!("/v1/responses/{id}"))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(&stored, last, "a finished stream is stored");
}

#[tokio::test]
async fn max_output_tokens_makes_the_response_incomplete() {
    let server = TestServer::start(Script::text("one two three four five six")).await;
    let r = create(
        &server,
        &body(json!("Count"), json!({"max_output_tokens": 3})),
    )
    .await;
    assert_response_resource(&r);
    assert_eq!(r["status"], "incomplete");
    assert_eq!(
        r["incomplete_details"],
        json!({"reason": "max_output_tokens"})
    );
    assert_eq!(r["max_output_tokens"], 3);
    assert_eq!(r["output"][0]["status"], "incomplete");
    assert_eq!(output_text(&r), "one two three");
    assert_eq!(r["usage"]["output_tokens"], 3);
    assert_eq!(server.log.last_request().stop.max_tokens, 3);
    let events = create_stream(
        &server,
        &body(json!("Count"), json!({"max_output_tokens": 3})),
    )
    .await;
    let last = events.last().unwrap();
    assert_eq!(last["type"], "response.incomplete");
    assert_eq!(last["response"]["status"], "incomplete");
    assert_eq!(
        last["response"]["incomplete_details"]["reason"],
        "max_output_tokens"
    );
    let resp = server
        .post_json(
            "/v1/responses",
            &body(json!("Count"), json!({"max_output_tokens": 0})),
        )
        .await;
    assert_eq!(resp.status(), 400);
    let err: Value = resp.json().await.expect("json");
    assert_eq!(err["error"]["param"], "max_output_tokens", "{err}");
}

#[tokio::test]
async fn compliance_tool_calling_gives_function_call_items_whole_and_streamed() {
    let server = TestServer::start(Script::text(CALL)).await;
    let request = body(
        json!([{"type": "message", "role": "user", "content": "What's the weather like in San Francisco?"}]),
        json!({"tools": [weather_tool()]}),
    );
    let r = create(&server, &request).await;
    assert_response_resource(&r);
    assert_eq!(r["status"], "completed");
    let output = r["output"].as_array().unwrap();
    assert_eq!(output.len(), 1, "only the call: {r}");
    let call = &output[0];
    assert_eq!(call["type"], "function_call");
    assert!(call["id"].as_str().unwrap().starts_with("fc_"), "{call}");
    assert!(
        call["call_id"].as_str().unwrap().starts_with("call_"),
        "{call}"
    );
    assert_eq!(call["name"], "get_weather");
    assert_eq!(call["status"], "completed");
    let args: Value = serde_json::from_str(call["arguments"].as_str().unwrap()).expect("JSON");
    assert_eq!(args, json!({"location": "San Francisco, CA"}));
    assert_eq!(r["tools"][0]["name"], "get_weather");
    assert_eq!(r["tools"][0]["type"], "function");
    assert_eq!(r["tool_choice"], "auto");
    assert!(prompt_text(&server).contains("\"name\":\"get_weather\""));
    assert_eq!(server.log.last_request().sampling.constraint, None);

    let events = create_stream(&server, &request).await;
    let kinds = types(&events);
    let added = events
        .iter()
        .find(|e| e["type"] == "response.output_item.added")
        .expect("added");
    assert_eq!(added["item"]["type"], "function_call");
    assert_eq!(added["item"]["arguments"], "");
    let fc_id = added["item"]["id"].as_str().unwrap();
    let deltas: String = events
        .iter()
        .filter(|e| e["type"] == "response.function_call_arguments.delta")
        .inspect(|e| assert_eq!(e["item_id"], fc_id))
        .map(|e| e["delta"].as_str().unwrap())
        .collect();
    let done = events
        .iter()
        .find(|e| e["type"] == "response.function_call_arguments.done")
        .expect("arguments done");
    assert_eq!(done["arguments"], deltas.as_str());
    assert_eq!(done["arguments"], call["arguments"]);
    assert_eq!(done["name"], "get_weather");
    let item_done = events
        .iter()
        .find(|e| e["type"] == "response.output_item.done")
        .expect("item done");
    assert_eq!(item_done["item"]["type"], "function_call");
    assert_eq!(
        kinds.first().copied(),
        Some("response.created"),
        "{kinds:?}"
    );
    assert_eq!(kinds.last().copied(), Some("response.completed"));
    let last = &events.last().unwrap()["response"];
    assert_response_resource(last);
    assert_eq!(last["output"][0]["arguments"], call["arguments"]);
}

#[tokio::test]
async fn a_named_tool_choice_forces_the_call_with_a_grammar() {
    let server = TestServer::start(Script::text(CALL)).await;
    let r = create(
        &server,
        &body(
            json!("Weather?"),
            json!({"tools": [weather_tool()], "tool_choice": {"type": "function", "name": "get_weather"}}),
        ),
    )
    .await;
    assert_eq!(
        r["tool_choice"],
        json!({"type": "function", "name": "get_weather"})
    );
    assert_eq!(r["output"][0]["type"], "function_call");
    let Some(Constraint::Lark { grammar }) = server.log.last_request().sampling.constraint else {
        panic!("a named function sends a Lark grammar");
    };
    assert!(grammar.contains("get_weather"), "{grammar}");
    let resp = server
        .post_json(
            "/v1/responses",
            &body(
                json!("Weather?"),
                json!({"tools": [weather_tool()], "tool_choice": {"type": "function", "name": "nope"}}),
            ),
        )
        .await;
    assert_eq!(resp.status(), 400);
    let err: Value = resp.json().await.expect("json");
    assert_eq!(err["error"]["param"], "tool_choice.name", "{err}");
    let resp = server
        .post_json(
            "/v1/responses",
            &body(json!("Search"), json!({"tools": [{"type": "web_search"}]})),
        )
        .await;
    assert_eq!(resp.status(), 400);
    let err: Value = resp.json().await.expect("json");
    assert_eq!(err["error"]["param"], "tools[0].type", "{err}");
}

#[tokio::test]
async fn function_call_outputs_render_as_tool_turns_and_chain_after_a_call() {
    let server = TestServer::start(Script::text(CALL)).await;
    let first = create(
        &server,
        &body(json!("Weather in SF?"), json!({"tools": [weather_tool()]})),
    )
    .await;
    let call_id = first["output"][0]["call_id"].as_str().unwrap().to_string();
    let first_id = first["id"].as_str().unwrap();
    create(
        &server,
        &body(
            json!([{"type": "function_call_output", "call_id": call_id, "output": "18C and foggy"}]),
            json!({"tools": [weather_tool()], "previous_response_id": first_id}),
        ),
    )
    .await;
    let prompt = prompt_text(&server);
    // SmolLM2's template does not read tools: the call and its result are rewritten into the
    // messages in hermes markup (crate::tool_prompt).
    assert!(
        prompt.contains("<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"location\": \"San Francisco, CA\"}}\n</tool_call>"),
        "{prompt}"
    );
    assert!(prompt.contains("18C and foggy"), "{prompt}");
    let call_at = prompt
        .find("<tool_call>\n{\"name\": \"get_weather\", \"arguments\"")
        .unwrap();
    assert!(
        call_at < prompt.find("18C and foggy").unwrap(),
        "call before its result"
    );
    // The same history sent as items renders the same prompt.
    let chained = prompt;
    create(
        &server,
        &body(
            json!([
                {"role": "user", "content": "Weather in SF?"},
                {"type": "function_call", "call_id": call_id, "name": "get_weather",
                 "arguments": "{\"location\": \"San Francisco, CA\"}"},
                {"type": "function_call_output", "call_id": call_id, "output": "18C and foggy"}
            ]),
            json!({"tools": [weather_tool()]}),
        ),
    )
    .await;
    assert_eq!(prompt_text(&server), chained);
}

#[tokio::test]
async fn reasoning_becomes_a_reasoning_item_before_the_message() {
    let output = "<think>\nThe user wants 2+2.\n</think>\n\nThe answer is 4.";
    let mut card = smollm2_card();
    card.chat_template = Some(QWEN3_LIKE_TEMPLATE.to_string());
    let server =
        TestServer::start_with(Script::text(output), card, FrontendConfig::default()).await;
    let r = create(&server, &body(json!("2+2?"), json!({}))).await;
    assert_response_resource(&r);
    let output_items = r["output"].as_array().unwrap();
    assert_eq!(output_items.len(), 2, "{r}");
    assert_eq!(output_items[0]["type"], "reasoning");
    assert!(output_items[0]["id"].as_str().unwrap().starts_with("rs_"));
    assert_eq!(output_items[0]["content"][0]["text"], "The user wants 2+2.");
    assert_eq!(output_items[1]["type"], "message");
    assert_eq!(output_text(&r), "The answer is 4.");
    let events = create_stream(&server, &body(json!("2+2?"), json!({}))).await;
    let reasoning: String = events
        .iter()
        .filter(|e| e["type"] == "response.reasoning_text.delta")
        .map(|e| e["delta"].as_str().unwrap())
        .collect();
    assert_eq!(reasoning, "The user wants 2+2.");
    let added: Vec<&str> = events
        .iter()
        .filter(|e| e["type"] == "response.output_item.added")
        .map(|e| e["item"]["type"].as_str().unwrap())
        .collect();
    assert_eq!(added, ["reasoning", "message"]);
}

#[tokio::test]
async fn responses_are_counted_by_stream() {
    let server = TestServer::start(Script::text("ok")).await;
    create(&server, &body(json!("a"), json!({}))).await;
    create(&server, &body(json!("b"), json!({}))).await;
    create_stream(&server, &body(json!("c"), json!({}))).await;
    // A refused request is not counted.
    let resp = server
        .post_json("/v1/responses", &body(json!([]), json!({})))
        .await;
    assert_eq!(resp.status(), 400);
    let text = metrics(&server).await;
    assert!(
        text.contains("rotor_frontend_responses_total{stream=\"false\"} 2\n"),
        "{text}"
    );
    assert!(
        text.contains("rotor_frontend_responses_total{stream=\"true\"} 1\n"),
        "{text}"
    );
    assert!(
        text.contains("rotor_frontend_responses_stored 3\n"),
        "{text}"
    );
    assert!(
        text.contains(
            "rotor_frontend_requests_total{endpoint=\"/v1/responses\",status=\"200\"} 3\n"
        ),
        "{text}"
    );
    let ids: BTreeSet<String> = server.log.requests().iter().map(|r| r.id.clone()).collect();
    assert_eq!(ids.len(), 3, "each response has its own id");
    assert!(ids.iter().all(|id| id.starts_with("resp_")), "{ids:?}");
}

#[tokio::test]
async fn a_failure_mid_stream_ends_with_an_error_event_and_is_not_stored() {
    let mut script = Script::text("one two three four");
    script.fail_after = Some((2, WireError::new(ErrorKind::Internal, "scripted failure")));
    let server = TestServer::start(script).await;
    let events = create_stream(&server, &body(json!("Count"), json!({}))).await;
    let last = events.last().unwrap();
    assert_eq!(last["type"], "error", "{events:?}");
    assert_eq!(last["message"], "scripted failure");
    assert_eq!(last["code"], "internal_error");
    assert!(
        !types(&events).contains(&"response.completed"),
        "{events:?}"
    );
    let id = events[0]["response"]["id"].as_str().unwrap();
    assert_eq!(
        server.get(&format!("/v1/responses/{id}")).await.status(),
        404
    );
    assert!(metrics(&server)
        .await
        .contains("rotor_frontend_responses_stored 0\n"));
}

#[tokio::test]
async fn leaving_a_stream_cancels_the_generation_and_stores_nothing() {
    let mut script = Script::text(&"tick ".repeat(500));
    script.delay = Duration::from_millis(20);
    let server = TestServer::start(script).await;
    let resp = server
        .post_json("/v1/responses", &body(json!("Go"), json!({"stream": true})))
        .await;
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
    assert!(metrics(&server)
        .await
        .contains("rotor_frontend_responses_stored 0\n"));
}

#[tokio::test]
async fn text_format_becomes_an_output_constraint() {
    let server = TestServer::start(Script::text("{\"n\": 1}")).await;
    let schema =
        json!({"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]});
    let format =
        json!({"format": {"type": "json_schema", "name": "n", "schema": schema, "strict": true}});
    let r = create(&server, &body(json!("A number"), json!({"text": format}))).await;
    assert_eq!(r["text"], format, "text echoed");
    assert_eq!(
        server.log.last_request().sampling.constraint,
        Some(Constraint::JsonSchema {
            schema: schema.clone(),
            strict: true
        })
    );
    create(
        &server,
        &body(
            json!("JSON"),
            json!({"text": {"format": {"type": "json_object"}}}),
        ),
    )
    .await;
    assert_eq!(
        server.log.last_request().sampling.constraint,
        Some(Constraint::JsonObject)
    );
    create(
        &server,
        &body(
            json!("Plain"),
            json!({"text": {"format": {"type": "text"}}}),
        ),
    )
    .await;
    assert_eq!(server.log.last_request().sampling.constraint, None);
    let resp = server
        .post_json(
            "/v1/responses",
            &body(json!("x"), json!({"text": {"format": {"type": "yaml"}}})),
        )
        .await;
    assert_eq!(resp.status(), 400);
    let err: Value = resp.json().await.expect("json");
    assert_eq!(err["error"]["param"], "text.format.type", "{err}");
}

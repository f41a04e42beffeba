//! Tool calling, reasoning and structured outputs through the HTTP API, with scripted model
//! output: tool markup parsed into `tool_calls` (whole and streamed), `reasoning_content`,
//! the constraints sent to the backend, the 400s, and the counters on /metrics.

use rotor_frontend::{FrontendConfig, ParserSetting};
use rotor_protocol::Constraint;
use serde_json::{json, Value};

use crate::support::{smollm2_card, sse_chunks, tokenizer, Script, TestServer, MODEL};

const QWEN25_TEMPLATE: &str =
    include_str!("../../../text/tests/fixtures/chat_templates/qwen2.5.jinja");

/// Qwen3-style: `enable_thinking=false` closes an empty think block in the prompt.
const QWEN3_LIKE_TEMPLATE: &str = "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% if enable_thinking is defined and enable_thinking is false %}<think>\n\n</think>\n\n{% endif %}{% endif %}";

/// The prompt opens the think block (as DeepSeek-R1 distills' and Qwen3 thinking models' do).
const OPENS_THINK_TEMPLATE: &str = "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n<think>\n{% endif %}";

const CALL: &str = "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\", \"days\": [1, 2]}}\n</tool_call>";

fn weather_tools() -> Value {
    json!([
        {"type": "function", "function": {"name": "get_weather", "description": "Weather in a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"},
                "days": {"type": "array", "items": {"type": "integer"}}}, "required": ["city"]}}},
        {"type": "function", "function": {"name": "get_time",
            "parameters": {"type": "object", "properties": {"tz": {"type": "string"}}}}}
    ])
}

fn tools_body(extra: Value) -> Value {
    let mut body = json!({"model": MODEL, "tools": weather_tools(),
        "messages": [{"role": "user", "content": "Weather in Paris?"}]});
    for (k, v) in extra.as_object().expect("object") {
        body[k] = v.clone();
    }
    body
}

async fn server_with_template(script: Script, template: Option<&str>) -> TestServer {
    let mut card = smollm2_card();
    if let Some(template) = template {
        card.chat_template = Some(template.to_string());
    }
    TestServer::start_with(script, card, FrontendConfig::default()).await
}

async fn chat(server: &TestServer, body: &Value) -> Value {
    let resp = server.post_json("/v1/chat/completions", body).await;
    let status = resp.status();
    let json: Value = resp.json().await.expect("json body");
    assert_eq!(status, 200, "{json}");
    json
}

async fn chat_stream(server: &TestServer, body: &Value) -> Vec<Value> {
    let mut body = body.clone();
    body["stream"] = json!(true);
    let resp = server.post_json("/v1/chat/completions", &body).await;
    assert_eq!(resp.status(), 200);
    sse_chunks(&resp.text().await.expect("body"))
}

/// A streamed call: (id, name, arguments).
type StreamedCall = (String, String, String);

/// Folds stream chunks into (content, reasoning, calls, finish).
fn reassemble(chunks: &[Value]) -> (Option<String>, Option<String>, Vec<StreamedCall>, String) {
    let mut content: Option<String> = None;
    let mut reasoning: Option<String> = None;
    let mut calls: Vec<StreamedCall> = Vec::new();
    let mut finish = String::new();
    for chunk in chunks {
        let choice = &chunk["choices"][0];
        let delta = &choice["delta"];
        if let Some(text) = delta["content"].as_str() {
            if !text.is_empty() {
                content.get_or_insert_with(String::new).push_str(text);
            }
        }
        if let Some(text) = delta["reasoning_content"].as_str() {
            reasoning.get_or_insert_with(String::new).push_str(text);
        }
        if let Some(list) = delta["tool_calls"].as_array() {
            assert_eq!(list.len(), 1, "one call per delta: {chunk}");
            let call = &list[0];
            let index = call["index"].as_u64().expect("index") as usize;
            if let Some(id) = call["id"].as_str() {
                assert_eq!(index, calls.len(), "calls open in index order");
                assert_eq!(call["type"], "function", "{chunk}");
                assert_eq!(
                    call["function"]["arguments"], "",
                    "first delta has empty arguments"
                );
                let name = call["function"]["name"]
                    .as_str()
                    .expect("name on the first delta");
                calls.push((id.to_string(), name.to_string(), String::new()));
            } else {
                assert!(
                    call["function"].get("name").is_none(),
                    "name only once: {chunk}"
                );
                calls[index]
                    .2
                    .push_str(call["function"]["arguments"].as_str().expect("args"));
            }
        }
        if let Some(reason) = choice["finish_reason"].as_str() {
            finish = reason.to_string();
        }
    }
    (content, reasoning, calls, finish)
}

fn prompt_text(server: &TestServer) -> String {
    tokenizer()
        .decode(&server.log.last_request().token_ids, false)
        .expect("decode")
}

async fn metrics(server: &TestServer) -> String {
    server.get("/metrics").await.text().await.expect("metrics")
}

#[tokio::test]
async fn tool_call_is_parsed_into_tool_calls_with_null_content() {
    let server = server_with_template(Script::text(CALL), None).await;
    let body = chat(&server, &tools_body(json!({}))).await;
    let message = &body["choices"][0]["message"];
    assert_eq!(message["content"], Value::Null, "{body}");
    let calls = message["tool_calls"].as_array().expect("tool_calls");
    assert_eq!(calls.len(), 1);
    let id = calls[0]["id"].as_str().expect("id");
    assert!(id.starts_with("call_") && id.len() == 29, "{id}");
    assert_eq!(calls[0]["type"], "function");
    assert_eq!(calls[0]["function"]["name"], "get_weather");
    let args: Value =
        serde_json::from_str(calls[0]["function"]["arguments"].as_str().expect("text"))
            .expect("json");
    assert_eq!(args, json!({"city": "Paris", "days": [1, 2]}));
    assert_eq!(body["choices"][0]["finish_reason"], "tool_calls");
    // SmolLM2's template does not read `tools`: they are described in a system message.
    let prompt = prompt_text(&server);
    assert!(
        prompt.starts_with("<|im_start|>system\n# Tools"),
        "{prompt}"
    );
    assert!(prompt.contains("\"name\":\"get_weather\""), "{prompt}");
    assert!(
        prompt.contains("<tool_call>\n{\"name\": \"function_name\""),
        "{prompt}"
    );
    // Auto choice: no constraint.
    assert_eq!(server.log.last_request().sampling.constraint, None);
    let text = metrics(&server).await;
    assert!(
        text.contains("rotor_frontend_tool_requests_total{tool_choice=\"auto\"} 1\n"),
        "{text}"
    );
    assert!(
        text.contains("rotor_frontend_tool_calls_total{parser=\"hermes\"} 1\n"),
        "{text}"
    );
}

#[tokio::test]
async fn streamed_tool_calls_reassemble_to_the_whole_answer() {
    let output = format!("Let me check.\n{CALL}\n<tool_call>\n{{\"name\": \"get_time\", \"arguments\": {{\"tz\": \"Europe/Paris\"}}}}\n</tool_call>");
    let server = server_with_template(Script::text(&output), None).await;
    let whole = chat(&server, &tools_body(json!({}))).await;
    let message = &whole["choices"][0]["message"];
    assert_eq!(message["content"], "Let me check.");
    let chunks = chat_stream(&server, &tools_body(json!({}))).await;
    for chunk in &chunks {
        let content = chunk["choices"][0]["delta"]["content"]
            .as_str()
            .unwrap_or("");
        assert!(!content.contains('<'), "no markup in content: {chunk}");
    }
    let (content, reasoning, calls, finish) = reassemble(&chunks);
    assert_eq!(content.as_deref(), Some("Let me check."));
    assert_eq!(reasoning, None);
    assert_eq!(finish, "tool_calls");
    let whole_calls = message["tool_calls"].as_array().expect("calls");
    assert_eq!(calls.len(), 2);
    for (streamed, whole) in calls.iter().zip(whole_calls) {
        assert_eq!(streamed.1, whole["function"]["name"].as_str().unwrap());
        assert_eq!(streamed.2, whole["function"]["arguments"].as_str().unwrap());
        assert!(streamed.0.starts_with("call_"));
    }
}

#[tokio::test]
async fn without_parallel_tool_calls_auto_returns_the_first_call_only() {
    let output = format!("{CALL}\n<tool_call>\n{{\"name\": \"get_time\", \"arguments\": {{\"tz\": \"UTC\"}}}}\n</tool_call>");
    let server = server_with_template(Script::text(&output), None).await;
    let body = tools_body(json!({"parallel_tool_calls": false}));
    let whole = chat(&server, &body).await;
    let calls = whole["choices"][0]["message"]["tool_calls"]
        .as_array()
        .expect("calls");
    assert_eq!(calls.len(), 1, "{whole}");
    assert_eq!(calls[0]["function"]["name"], "get_weather");
    assert_eq!(whole["choices"][0]["finish_reason"], "tool_calls");
    // auto is not constrained: the grammar could not make the model stop after one call.
    assert_eq!(server.log.last_request().sampling.constraint, None);
    let (_, _, streamed, finish) = reassemble(&chat_stream(&server, &body).await);
    assert_eq!(streamed.len(), 1);
    assert_eq!(streamed[0].1, "get_weather");
    assert_eq!(finish, "tool_calls");
    let text = metrics(&server).await;
    assert!(
        text.contains("rotor_frontend_tool_calls_dropped_total{parser=\"hermes\"} 2\n"),
        "{text}"
    );
    assert!(
        text.contains("rotor_frontend_tool_calls_total{parser=\"hermes\"} 2\n"),
        "{text}"
    );
}

#[tokio::test]
async fn malformed_markup_stays_content_and_is_counted() {
    let bad = "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {oops}}\n</tool_call>";
    let server = server_with_template(Script::text(bad), None).await;
    let body = chat(&server, &tools_body(json!({}))).await;
    assert_eq!(body["choices"][0]["message"]["content"], bad);
    assert!(
        body["choices"][0]["message"].get("tool_calls").is_none(),
        "{body}"
    );
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    let text = metrics(&server).await;
    assert!(
        text.contains("rotor_frontend_tool_call_parse_failures_total{parser=\"hermes\"} 1\n"),
        "{text}"
    );
}

#[tokio::test]
async fn call_cut_by_max_tokens_is_length_with_the_markup_as_content() {
    let server = server_with_template(Script::text(CALL), None).await;
    // Cut inside the arguments.
    let cut = crate::support::encode(&CALL[..CALL.find("Paris").unwrap()]).len();
    let body = chat(&server, &tools_body(json!({"max_tokens": cut}))).await;
    let choice = &body["choices"][0];
    assert_eq!(choice["finish_reason"], "length");
    assert!(choice["message"].get("tool_calls").is_none(), "{body}");
    let content = choice["message"]["content"].as_str().expect("content");
    assert!(
        CALL.starts_with(content) && content.starts_with("<tool_call>"),
        "{content:?}"
    );
    let chunks = chat_stream(&server, &tools_body(json!({"max_tokens": cut}))).await;
    let (streamed, _, calls, finish) = reassemble(&chunks);
    assert_eq!(
        (streamed.as_deref(), calls.len(), finish.as_str()),
        (Some(content), 0, "length")
    );
}

#[tokio::test]
async fn tool_choice_none_neither_renders_nor_parses() {
    let server = server_with_template(Script::text(CALL), None).await;
    let body = chat(&server, &tools_body(json!({"tool_choice": "none"}))).await;
    assert_eq!(body["choices"][0]["message"]["content"], CALL);
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    assert!(!prompt_text(&server).contains("# Tools"));
    assert_eq!(server.log.last_request().sampling.constraint, None);
}

#[tokio::test]
async fn required_and_named_choices_send_a_call_grammar() {
    let server = server_with_template(Script::text(CALL), None).await;
    chat(&server, &tools_body(json!({"tool_choice": "required"}))).await;
    let Some(Constraint::Lark { grammar }) = server.log.last_request().sampling.constraint else {
        panic!("required sends a Lark grammar");
    };
    assert!(
        grammar.starts_with("start: body\nbody: call (\"\\n\" call)*\n"),
        "{grammar}"
    );
    assert!(
        grammar.contains("\"<tool_call>\\n{\\\"name\\\": \""),
        "{grammar}"
    );
    assert!(
        grammar.contains("\\\"get_weather\\\", \\\"arguments\\\": \" args_0"),
        "{grammar}"
    );
    assert!(grammar.contains("\\\"get_time\\\""), "{grammar}");
    assert!(
        grammar.contains("args_0: %json {\"type\":\"object\",\"properties\":{\"city\""),
        "{grammar}"
    );
    let named = json!({"tool_choice": {"type": "function", "function": {"name": "get_time"}},
        "parallel_tool_calls": false});
    chat(&server, &tools_body(named)).await;
    let Some(Constraint::Lark { grammar }) = server.log.last_request().sampling.constraint else {
        panic!("a named function sends a Lark grammar");
    };
    assert!(
        grammar.contains("get_time") && !grammar.contains("get_weather"),
        "{grammar}"
    );
    assert!(
        grammar.contains("\nbody: call\n"),
        "one call without parallel calls: {grammar}"
    );
    let text = metrics(&server).await;
    assert!(
        text.contains("rotor_frontend_constrained_requests_total{kind=\"tool_call\"} 2\n"),
        "{text}"
    );
    assert!(
        text.contains("rotor_frontend_tool_requests_total{tool_choice=\"named\"} 1\n"),
        "{text}"
    );
    assert!(
        text.contains("rotor_frontend_tool_requests_total{tool_choice=\"required\"} 1\n"),
        "{text}"
    );
}

#[tokio::test]
async fn template_with_tools_gets_them_and_history_renders_like_transformers() {
    let server = server_with_template(Script::text(CALL), Some(QWEN25_TEMPLATE)).await;
    let body = tools_body(json!({"messages": [
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function",
            "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "18 C"}
    ]}));
    let resp = chat(&server, &body).await;
    assert_eq!(resp["choices"][0]["finish_reason"], "tool_calls");
    let prompt = prompt_text(&server);
    assert!(
        prompt.contains("You are Qwen")
            && prompt.contains(
                "<tools>\n{\"type\": \"function\", \"function\": {\"name\": \"get_weather\""
            ),
        "{prompt}"
    );
    assert!(prompt.contains("<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>"), "{prompt}");
    assert!(
        prompt.contains("<tool_response>\n18 C\n</tool_response>"),
        "{prompt}"
    );
    let models: Value = server.get("/v1/models").await.json().await.expect("json");
    assert_eq!(models["data"][0]["tool_call_parser"], "hermes");
    assert!(
        models["data"][0].get("reasoning_parser").is_none(),
        "{models}"
    );
}

#[tokio::test]
async fn reasoning_is_split_into_reasoning_content_whole_and_streamed() {
    let output = "<think>\nThe user wants 2+2.\n</think>\n\nThe answer is 4.";
    let server = server_with_template(Script::text(output), Some(QWEN3_LIKE_TEMPLATE)).await;
    let body = chat(&server, &crate::support::chat_body("2+2?")).await;
    let message = &body["choices"][0]["message"];
    assert_eq!(message["reasoning_content"], "The user wants 2+2.");
    assert_eq!(message["content"], "The answer is 4.");
    let chunks = chat_stream(&server, &crate::support::chat_body("2+2?")).await;
    let (content, reasoning, calls, finish) = reassemble(&chunks);
    assert_eq!(content.as_deref(), Some("The answer is 4."));
    assert_eq!(reasoning.as_deref(), Some("The user wants 2+2."));
    assert!(calls.is_empty());
    assert_eq!(finish, "stop");
    let models: Value = server.get("/v1/models").await.json().await.expect("json");
    assert_eq!(models["data"][0]["reasoning_parser"], "qwen3");
    let text = metrics(&server).await;
    assert!(
        text.contains("rotor_frontend_reasoning_responses_total{parser=\"qwen3\"} 2\n"),
        "{text}"
    );
}

#[tokio::test]
async fn reasoning_opened_by_the_prompt_and_then_a_call() {
    let output = format!("I should call the tool.</think>\n{CALL}");
    let server = server_with_template(Script::text(&output), Some(OPENS_THINK_TEMPLATE)).await;
    let body = chat(&server, &tools_body(json!({}))).await;
    let message = &body["choices"][0]["message"];
    assert_eq!(message["reasoning_content"], "I should call the tool.");
    assert_eq!(message["content"], Value::Null);
    assert_eq!(message["tool_calls"][0]["function"]["name"], "get_weather");
    assert_eq!(body["choices"][0]["finish_reason"], "tool_calls");
    // A forced call starts after the thinking.
    chat(&server, &tools_body(json!({"tool_choice": "required"}))).await;
    let Some(Constraint::Lark { grammar }) = server.log.last_request().sampling.constraint else {
        panic!("Lark grammar");
    };
    assert!(
        grammar.starts_with("start: think_rest WS? body\nthink_rest[lazy]:"),
        "{grammar}"
    );
}

#[tokio::test]
async fn response_formats_and_guided_fields_become_constraints() {
    let server = server_with_template(Script::text("{}"), None).await;
    let schema =
        json!({"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]});
    let cases = [
        (
            json!({"response_format": {"type": "json_object"}}),
            Constraint::JsonObject,
            "json_object",
        ),
        (
            json!({"response_format": {"type": "json_schema", "json_schema": {"name": "n", "schema": schema, "strict": true}}}),
            Constraint::JsonSchema {
                schema: schema.clone(),
                strict: true,
            },
            "json_schema",
        ),
        (
            json!({"guided_regex": "[a-z]+"}),
            Constraint::Regex {
                pattern: "[a-z]+".into(),
            },
            "regex",
        ),
        (
            json!({"guided_choice": ["yes", "no"]}),
            Constraint::Choice {
                choices: vec!["yes".into(), "no".into()],
            },
            "choice",
        ),
        (
            json!({"guided_grammar": "root ::= \"a\""}),
            Constraint::Gbnf {
                grammar: "root ::= \"a\"".into(),
            },
            "gbnf",
        ),
        (
            json!({"structured_outputs": {"grammar": "start: \"a\""}}),
            Constraint::Lark {
                grammar: "start: \"a\"".into(),
            },
            "lark",
        ),
    ];
    for (extra, want, kind) in cases {
        let mut body = crate::support::chat_body("hi");
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        chat(&server, &body).await;
        assert_eq!(
            server.log.last_request().sampling.constraint,
            Some(want),
            "{extra}"
        );
        let text = metrics(&server).await;
        assert!(
            text.contains(&format!(
                "rotor_frontend_constrained_requests_total{{kind=\"{kind}\"}} 1\n"
            )),
            "{text}"
        );
    }
    // Text completions take them too.
    let resp = server
        .post_json(
            "/v1/completions",
            &json!({"model": MODEL, "prompt": "x", "guided_json": schema}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        server.log.last_request().sampling.constraint,
        Some(Constraint::JsonSchema {
            schema: schema.clone(),
            strict: false
        })
    );
    // With a reasoning parser the schema applies after the thinking.
    let server = server_with_template(Script::text("{}"), Some(QWEN3_LIKE_TEMPLATE)).await;
    let mut body = crate::support::chat_body("hi");
    body["response_format"] =
        json!({"type": "json_schema", "json_schema": {"name": "n", "schema": schema}});
    chat(&server, &body).await;
    let Some(Constraint::Lark { grammar }) = server.log.last_request().sampling.constraint else {
        panic!("Lark grammar after reasoning");
    };
    assert!(
        grammar.starts_with("start: (think_full WS?)? body\n"),
        "{grammar}"
    );
    assert!(
        grammar.contains("body: %json {\"type\":\"object\",\"properties\":{\"n\""),
        "{grammar}"
    );
}

#[tokio::test]
async fn invalid_tool_and_format_requests_are_named_400s() {
    let server = server_with_template(Script::text("x"), None).await;
    let cases = [
        (
            json!({"tool_choice": {"type": "function", "function": {"name": "nope"}}}),
            "tool_choice.function.name",
        ),
        (json!({"tool_choice": "sometimes"}), "tool_choice"),
        (
            json!({"tools": [{"type": "function", "function": {"name": "bad name"}}]}),
            "tools[0].function.name",
        ),
        (
            json!({"tools": [{"type": "function", "function": {"name": "f", "parameters": [1]}}]}),
            "tools[0].function.parameters",
        ),
        (
            json!({"tools": [{"type": "retrieval", "function": {"name": "f"}}]}),
            "tools[0].type",
        ),
        (
            json!({"tools": [], "tool_choice": "required"}),
            "tool_choice",
        ),
        (
            json!({"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": "nope"}}}),
            "response_format.json_schema.schema",
        ),
        (
            json!({"guided_regex": "a", "guided_choice": ["b"]}),
            "guided_choice",
        ),
        (
            json!({"tool_choice": "required", "response_format": {"type": "json_object"}}),
            "tool_choice",
        ),
        (
            json!({"messages": [{"role": "user", "content": null}]}),
            "messages[0].content",
        ),
        (
            json!({"messages": [{"role": "user", "content": "x", "tool_calls": [{"id": "a", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}]}),
            "messages[0].tool_calls",
        ),
    ];
    for (extra, param) in cases {
        let body = tools_body(extra.clone());
        let resp = server.post_json("/v1/chat/completions", &body).await;
        assert_eq!(resp.status(), 400, "{extra}");
        let err: Value = resp.json().await.expect("json");
        assert_eq!(err["error"]["param"], param, "{extra}: {err}");
        assert_eq!(err["error"]["type"], "invalid_request_error");
    }
    // Forcing a call in a format whose arguments are not JSON.
    let config = FrontendConfig {
        tool_call_parser: ParserSetting::Named(rotor_text::ToolParserKind::Pythonic),
        ..FrontendConfig::default()
    };
    let server = TestServer::start_with(Script::text("x"), smollm2_card(), config).await;
    let resp = server
        .post_json(
            "/v1/chat/completions",
            &tools_body(json!({"tool_choice": "required"})),
        )
        .await;
    assert_eq!(resp.status(), 400);
    let err: Value = resp.json().await.expect("json");
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("pythonic"),
        "{err}"
    );
    // Tool calling switched off.
    let config = FrontendConfig {
        tool_call_parser: ParserSetting::Off,
        ..FrontendConfig::default()
    };
    let server = TestServer::start_with(Script::text("x"), smollm2_card(), config).await;
    let resp = server
        .post_json("/v1/chat/completions", &tools_body(json!({})))
        .await;
    assert_eq!(resp.status(), 400);
    let err: Value = resp.json().await.expect("json");
    assert_eq!(err["error"]["param"], "tools", "{err}");
    let models: Value = server.get("/v1/models").await.json().await.expect("json");
    assert!(
        models["data"][0].get("tool_call_parser").is_none(),
        "{models}"
    );
}

#[tokio::test]
async fn llama3_json_parser_from_the_flag() {
    let output = "{\"name\": \"get_time\", \"parameters\": {\"tz\": \"UTC\"}}";
    let config = FrontendConfig {
        tool_call_parser: ParserSetting::Named(rotor_text::ToolParserKind::Llama3Json),
        ..FrontendConfig::default()
    };
    let server = TestServer::start_with(Script::text(output), smollm2_card(), config).await;
    let body = chat(&server, &tools_body(json!({}))).await;
    let call = &body["choices"][0]["message"]["tool_calls"][0];
    assert_eq!(call["function"]["name"], "get_time");
    assert_eq!(call["function"]["arguments"], "{\"tz\": \"UTC\"}");
    assert!(prompt_text(&server).contains("{\"name\": \"function_name\", \"parameters\": "));
    let text = metrics(&server).await;
    assert!(
        text.contains("rotor_frontend_tool_calls_total{parser=\"llama3_json\"} 1\n"),
        "{text}"
    );
}

//! OpenAI's Responses API end to end: the real `rotor` binary serving the real default model,
//! driven by the official `openai` Python client (tests/python/openai_responses_check.py).
//!
//! Needs the model (ROTOR_TEST_MODEL, else the default cache path) and `python3` with the
//! `openai` package (ROTOR_TEST_PYTHON).

mod support;

use serde_json::json;
use support::{curl_json, RotorServer};

const MODEL: &str = "smollm2-135m-instruct";

#[test]
fn official_openai_client_drives_the_responses_api() {
    let server = RotorServer::start(&[]);
    support::run_python_check(
        "openai_responses_check.py",
        &[server.url("/v1"), MODEL.to_string()],
        "all openai responses checks passed",
    );
    // Every request above went through /v1/responses and was counted.
    assert!(
        server.metric("rotor_frontend_responses_total") == 13.0,
        "thirteen responses were created"
    );
}

/// The six OpenResponses compliance scenarios on the real model, every body and streamed event
/// validated strictly against the official `openai` package's Responses API models
/// (tests/python/openresponses_scenarios_check.py says why not the project's own runner).
#[test]
fn openresponses_scenarios_validate_against_the_openai_schema() {
    let server = RotorServer::start(&[]);
    support::run_python_check(
        "openresponses_scenarios_check.py",
        &[server.url("/v1"), MODEL.to_string()],
        "all openresponses scenario checks passed",
    );
    // Nine responses created: basic twice, streamed text, system prompt with and without,
    // tool call plain and streamed, multi-turn and its last turn alone; the image input was
    // refused before one was made.
    assert_eq!(server.metric("rotor_frontend_responses_total"), 9.0);
}

#[test]
fn curl_gets_a_response_object_and_openai_errors() {
    let server = RotorServer::start(&[]);
    let url = server.url("/v1/responses");
    let (status, body) = curl_json(
        &url,
        &json!({"model": MODEL, "input": "What is 2+2?", "max_output_tokens": 40, "temperature": 0}),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["object"], "response");
    assert_eq!(body["status"], "completed", "{body}");
    assert_eq!(body["output"][0]["type"], "message");
    let text = body["output"][0]["content"][0]["text"]
        .as_str()
        .expect("text");
    assert!(text.contains('4'), "{text:?}");
    let (status, body) = curl_json(
        &url,
        &json!({"model": MODEL, "input": "Again", "previous_response_id": "resp_nope"}),
    );
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"]["param"], "previous_response_id");
}

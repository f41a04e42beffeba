//! OpenAI's Responses API end to end: the real `rotor` binary serving the real default model,
//! driven by the official `openai` Python client (tests/python/openai_responses_check.py).
//!
//! Needs the model (ROTOR_TEST_MODEL, else the default cache path) and `python3` with the
//! `openai` package (ROTOR_TEST_PYTHON).

mod support;

use std::process::Command;

use serde_json::json;
use support::{curl_json, RotorServer};

const MODEL: &str = "smollm2-135m-instruct";

#[test]
fn official_openai_client_drives_the_responses_api() {
    let server = RotorServer::start(&[]);
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/python/openai_responses_check.py"
    );
    let python = std::env::var("ROTOR_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let out = Command::new(&python)
        .arg(script)
        .arg(server.url("/v1"))
        .arg(MODEL)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {python}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "openai responses checks failed (is the `openai` package installed?)\n{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains("all openai responses checks passed"),
        "{stdout}"
    );
    // Every request above went through /v1/responses and was counted.
    assert!(
        server.metric("rotor_frontend_responses_total") == 13.0,
        "thirteen responses were created"
    );
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

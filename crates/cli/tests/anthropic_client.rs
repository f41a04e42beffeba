//! Anthropic's Messages API end to end: `rotor serve` with the default model, an API key, and
//! the official `anthropic` Python client (non-streaming and streamed messages, system prompts,
//! multi-turn, stop sequences, max_tokens, greedy determinism, count_tokens, errors, and a
//! forced tool_use whose input is checked against the tool's schema here).
//!
//! Needs the model, and a python with `anthropic` (ROTOR_TEST_PYTHON; scripts/test installs it).

#[allow(dead_code)] // the curl helpers serve other tests
mod support;

use serde_json::Value;
use support::RotorServer;

const MODEL: &str = "smollm2-135m-instruct";
const KEY: &str = "sk-ant-rotor-e2e";

#[test]
fn official_anthropic_python_client() {
    let server = RotorServer::start(&["--api-key", KEY]);
    let dir = tempfile::tempdir().expect("tempdir");
    let results_path = dir.path().join("results.json");
    support::run_python_check(
        "anthropic_client_check.py",
        &[
            server.url("").as_str(),
            MODEL,
            KEY,
            results_path.to_str().expect("utf-8 path"),
        ],
        "all anthropic client checks passed",
    );
    // The forced call's input follows the tool's schema.
    let results: Value =
        serde_json::from_str(&std::fs::read_to_string(&results_path).expect("results"))
            .expect("json");
    let validator = jsonschema::validator_for(&results["schema"]).expect("schema compiles");
    let input = &results["input"];
    let errors: Vec<String> = validator
        .iter_errors(input)
        .map(|e| e.to_string())
        .collect();
    assert!(
        errors.is_empty(),
        "input {input} breaks the schema: {errors:?}"
    );
    // Every accepted /v1/messages request was counted.
    let counted = server.metric("rotor_frontend_anthropic_messages_total");
    let sent = results["messages_sent"].as_f64().expect("messages_sent");
    assert_eq!(counted, sent, "rotor_frontend_anthropic_messages_total");
}

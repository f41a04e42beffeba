//! Anthropic's Messages API end to end: `rotor serve` with the default model, an API key, and
//! the official `anthropic` Python client (non-streaming and streamed messages, system prompts,
//! multi-turn, stop sequences, max_tokens, greedy determinism, count_tokens, errors, and a
//! forced tool_use whose input is checked against the tool's schema here).
//!
//! Needs the model, and a python with `anthropic` (ROTOR_TEST_PYTHON; scripts/test installs it).

#[allow(dead_code)] // the curl helpers serve other tests
mod support;

use std::process::Command;

use serde_json::Value;
use support::RotorServer;

const MODEL: &str = "smollm2-135m-instruct";
const KEY: &str = "sk-ant-rotor-e2e";

#[test]
fn official_anthropic_python_client() {
    let server = RotorServer::start(&["--api-key", KEY]);
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/python/anthropic_client_check.py"
    );
    let python = std::env::var("ROTOR_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let dir = tempfile::tempdir().expect("tempdir");
    let results_path = dir.path().join("results.json");
    let out = Command::new(&python)
        .arg(script)
        .arg(server.url(""))
        .arg(MODEL)
        .arg(KEY)
        .arg(&results_path)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {python}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "anthropic client checks failed (is the `anthropic` package installed?)\n{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains("all anthropic client checks passed"),
        "{stdout}"
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

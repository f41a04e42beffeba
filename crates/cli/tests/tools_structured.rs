//! Tools and structured outputs end to end: `rotor serve` with the default model (whose chat
//! template knows nothing of tools: the frontend describes them and parses hermes markup),
//! driven by the official `openai` Python client. Forced calls (`tool_choice: "required"`, a
//! named function) and `json_schema` answers are constrained by the engine, so even the 135M
//! model's calls parse and their arguments validate against the tools' schemas (checked here
//! with the `jsonschema` crate).
//!
//! Needs the model, `curl`, and `python3` with `openai` (ROTOR_TEST_PYTHON).

#[allow(dead_code)] // the curl helpers serve other tests
mod support;

use std::process::Command;

use serde_json::Value;
use support::RotorServer;

const MODEL: &str = "smollm2-135m-instruct";

#[test]
fn openai_client_tools_and_json_schema_validate() {
    let server = RotorServer::start(&[]);
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/python/openai_tools_check.py"
    );
    let python = std::env::var("ROTOR_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let dir = tempfile::tempdir().expect("tempdir");
    let results_path = dir.path().join("results.json");
    let out = Command::new(&python)
        .arg(script)
        .arg(server.url("/v1"))
        .arg(MODEL)
        .arg(&results_path)
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../engine/tests/fixtures/schemas.json"
        ))
        .output()
        .unwrap_or_else(|e| panic!("cannot run {python}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "openai tool checks failed\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("all openai tool checks passed"), "{stdout}");
    let results: Value =
        serde_json::from_str(&std::fs::read_to_string(&results_path).expect("results"))
            .expect("json");
    let calls = results["calls"].as_array().expect("calls");
    assert!(calls.len() >= 2, "{results}");
    for call in calls {
        let name = call["name"].as_str().expect("name");
        let schema = &results["tools"][name];
        let args: Value = serde_json::from_str(call["arguments"].as_str().expect("text"))
            .unwrap_or_else(|e| panic!("{name} arguments are not JSON ({e}): {call}"));
        let validator = jsonschema::validator_for(schema).expect("schema compiles");
        let errors: Vec<String> = validator
            .iter_errors(&args)
            .map(|e| e.to_string())
            .collect();
        assert!(
            errors.is_empty(),
            "{name}({args}) does not validate: {errors:?}"
        );
    }
    let validator = jsonschema::validator_for(&results["schema"]).expect("schema compiles");
    for doc in results["documents"].as_array().expect("documents") {
        let value: Value = serde_json::from_str(doc.as_str().expect("text"))
            .unwrap_or_else(|e| panic!("json_schema answer is not JSON ({e}): {doc}"));
        let errors: Vec<String> = validator
            .iter_errors(&value)
            .map(|e| e.to_string())
            .collect();
        assert!(errors.is_empty(), "{value} does not validate: {errors:?}");
    }
    // The 51-schema suite through the client: every answer finished by itself, parses and
    // validates (formats included).
    let suite = results["suite"].as_array().expect("suite");
    assert!(suite.len() >= 50, "{} schemas", suite.len());
    let mut failures = Vec::new();
    for answer in suite {
        let name = answer["name"].as_str().expect("name");
        let validator = jsonschema::options()
            .should_validate_formats(true)
            .build(&answer["schema"])
            .expect("fixture schema compiles");
        let text = answer["content"].as_str().unwrap_or_default();
        match serde_json::from_str::<Value>(text) {
            Ok(value) if answer["finish_reason"] == "stop" => {
                let errors: Vec<String> = validator
                    .iter_errors(&value)
                    .map(|e| e.to_string())
                    .collect();
                if !errors.is_empty() {
                    failures.push(format!("{name}: {value} does not validate: {errors:?}"));
                }
            }
            Ok(_) => failures.push(format!("{name}: finish_reason {}", answer["finish_reason"])),
            Err(e) => failures.push(format!("{name}: not JSON ({e}): {text:?}")),
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
    assert!(server.metric("rotor_frontend_tool_calls_total") >= 3.0);
    assert!(server.metric("rotor_frontend_constrained_requests_total") >= 7.0 + 50.0);
    // required (twice), named, none; the refused request is not counted.
    assert_eq!(server.metric("rotor_frontend_tool_requests_total"), 4.0);
    eprintln!("{stdout}");
}

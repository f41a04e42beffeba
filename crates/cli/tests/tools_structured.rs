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

use serde_json::Value;
use support::RotorServer;

const MODEL: &str = "smollm2-135m-instruct";

#[test]
fn openai_client_tools_and_json_schema_validate() {
    let server = RotorServer::start(&[]);
    let dir = tempfile::tempdir().expect("tempdir");
    let results_path = dir.path().join("results.json");
    let stdout = support::run_python_check(
        "openai_tools_check.py",
        &[
            server.url("/v1").as_str(),
            MODEL,
            results_path.to_str().expect("utf-8 path"),
            concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../engine/tests/fixtures/schemas.json"
            ),
        ],
        "all openai tool checks passed",
    );
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

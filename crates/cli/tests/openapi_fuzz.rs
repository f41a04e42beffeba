//! The OpenAPI description against tools Rotor did not write: `openapi-spec-validator` checks that
//! /openapi.json is valid OpenAPI, then `schemathesis` fuzzes every operation it describes on a
//! real `rotor serve` (the real model, a 256-token context so that every generation is short),
//! bounded in examples per operation: no 5xx, and every answer's status, content type, headers
//! and body as described.
//!
//! Needs ROTOR_TEST_PYTHON with `openapi-spec-validator` and `schemathesis` (scripts/test
//! installs both into its venv).

#[allow(dead_code)]
mod support;

use std::process::Command;

use support::RotorServer;

fn python() -> String {
    std::env::var("ROTOR_TEST_PYTHON").unwrap_or_else(|_| "python3".into())
}

#[test]
fn openapi_is_valid_and_survives_schemathesis() {
    let server = RotorServer::start(&["--max-model-len", "256"]);
    let spec = server.url("/openapi.json");
    let check = Command::new(python())
        .args([
            "-c",
            "import json, sys, urllib.request\n\
             from openapi_spec_validator import validate\n\
             doc = json.load(urllib.request.urlopen(sys.argv[1]))\n\
             validate(doc)\n\
             print('valid', doc['openapi'])",
        ])
        .arg(&spec)
        .output()
        .expect("run python");
    let out = String::from_utf8_lossy(&check.stdout);
    assert!(
        check.status.success() && out.contains("valid 3.1"),
        "openapi-spec-validator: {out}\n{}",
        String::from_utf8_lossy(&check.stderr)
    );

    let schemathesis = std::path::Path::new(&python()).with_file_name("schemathesis");
    let dir = tempfile::tempdir().expect("tempdir");
    let run = Command::new(&schemathesis)
        .current_dir(dir.path())
        .args(["run", &spec])
        .args([
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,\
             response_schema_conformance,response_headers_conformance",
            "--max-examples",
            "20",
            "--request-timeout",
            "60",
            "--seed",
            "1",
            "--generation-database",
            "none",
            "--phases",
            "coverage,fuzzing",
        ])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", schemathesis.display()));
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "schemathesis found problems:\n{stdout}\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    // It really tested every operation it selected (all of them) and generated cases.
    let field = |name: &str| {
        stdout
            .lines()
            .find_map(|l| l.trim().strip_prefix(name).map(|v| v.trim().to_string()))
            .unwrap_or_default()
    };
    let tested = field("Tested:");
    assert!(
        !tested.is_empty() && field("Selected:") == format!("{tested}/{tested}"),
        "{stdout}"
    );
    let cases: u64 = stdout
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_suffix(" passed")?
                .split(" generated, ")
                .nth(1)?
                .parse()
                .ok()
        })
        .unwrap_or(0);
    assert!(cases >= 300, "too few cases passed: {stdout}");
}

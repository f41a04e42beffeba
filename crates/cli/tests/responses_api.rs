//! OpenAI's Responses API end to end: the real `rotor` binary serving the real default model,
//! driven by the official `openai` Python client (tests/python/openai_responses_check.py).
//!
//! Needs the model (ROTOR_TEST_MODEL, else the default cache path) and `python3` with the
//! `openai` package (ROTOR_TEST_PYTHON).

mod support;

use std::process::Command;

use support::RotorServer;

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

//! lm-evaluation-harness against Rotor: its `local-completions` model runs a small loglikelihood
//! task (eight hand-written multiple-choice items, no dataset download) through `/v1/completions`
//! with `echo` + `logprobs`, tokenizing through Rotor's `/tokenizer_info` and `/tokenize`; its
//! choices and loglikelihoods must match llama.cpp's server on the same GGUF file
//! (crates/cli/tests/python/lm_eval_check.py says how llama.cpp's are computed).
//!
//! Needs the model, llama-server (ROTOR_TEST_LLAMA_SERVER; scripts/test builds it) and
//! ROTOR_TEST_PYTHON with `lm_eval[api]` (scripts/test installs it).

#[allow(dead_code)] // only the server and the Python runner serve this file
mod support;

use rotor_testing::LlamaServerGuard;
use support::RotorServer;

const MODEL: &str = "smollm2-135m-instruct";

#[test]
fn lm_eval_loglikelihood_choices_match_llama_cpp() {
    let server = RotorServer::start(&[]);
    let llama = LlamaServerGuard::start(&support::model_path());
    let dir = tempfile::tempdir().expect("tempdir");
    let stdout = support::run_python_check(
        "lm_eval_check.py",
        &[
            server.url("").as_str(),
            MODEL,
            llama.url.as_str(),
            dir.path().to_str().expect("utf-8 path"),
        ],
        "all lm-eval checks passed",
    );
    eprintln!("{stdout}");
    // 8 items × 4 choices, each one scored prompt.
    assert_eq!(
        server.metric("rotor_engine_prompt_logprob_requests_total"),
        32.0
    );
    assert!(server.metric("rotor_frontend_sampling_options_total") >= 32.0);
}

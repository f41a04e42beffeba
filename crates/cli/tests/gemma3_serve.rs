//! End to end on a second real model: `rotor serve` on Gemma 3 270M Q4_K_M (architecture
//! `gemma3`, K-quant tensors, a SentencePiece vocabulary, no chat template in the file), driven
//! over HTTP with curl.
//!
//! The greedy continuation is llama.cpp's, from the golden fixture `gemma3_real` checks logits
//! against (scripts/golden/gemma3_golden.py). Needs the model (ROTOR_TEST_GEMMA, else the cache;
//! `scripts/test` fetches it).

#[allow(dead_code)] // `start` and the /metrics helper serve e2e.rs
mod support;

use serde_json::{json, Value};
use support::{curl_json, RotorServer};

const MODEL: &str = "gemma-3-270m";

fn golden() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../model/tests/fixtures/golden_gemma3_270m.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).expect("fixture")).expect("fixture JSON")
}

fn template() -> String {
    concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../text/tests/fixtures/chat_templates/gemma3.jinja"
    )
    .to_string()
}

#[test]
fn completions_match_llama_cpp_greedy_and_chat_needs_a_template() {
    let server = RotorServer::start_model(&rotor_testing::gemma3_path(), &["--model-name", MODEL]);
    let want: Vec<u64> = golden()["greedy"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    // The fixture's prompt is `<bos>` + these words; the tokens go in as ids so the prompt is
    // exactly llama.cpp's.
    let prompt: Vec<u64> = golden()["prompt_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    let (status, body) = curl_json(
        &server.url("/v1/completions"),
        &json!({"model": MODEL, "prompt": "The capital of France is", "max_tokens": 5,
                "temperature": 0}),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["usage"]["prompt_tokens"].as_u64(),
        Some(prompt.len() as u64),
        "BOS + five words, as llama.cpp tokenizes them: {body}"
    );
    assert_eq!(body["usage"]["completion_tokens"], 5, "{body}");
    let text = body["choices"][0]["text"].as_str().expect("text");
    // llama.cpp's first five greedy tokens (506 5279 529 506 2891) read " the capital of the
    // country"; checked here as text, since the completion returns text.
    assert_eq!(want[..5], [506, 5279, 529, 506, 2891]);
    assert_eq!(text, " the capital of the country", "{body}");

    // The file has no chat template: chat is refused with a 400 that names the flag.
    let (status, body) = curl_json(
        &server.url("/v1/chat/completions"),
        &json!({"model": MODEL, "messages": [{"role": "user", "content": "Hi"}]}),
    );
    assert_eq!(status, 400, "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("--chat-template"), "{body}");
}

/// The 270M file is the pretrained (not instruction-tuned) model: given a chat prompt it repeats
/// the question, and llama.cpp does exactly the same (greedy, prompt tokenized with specials:
/// `<bos><start_of_turn>user\nWhat is the capital of France?<end_of_turn>\n<start_of_turn>model\n`,
/// 16 tokens). So this checks the template is applied and rendered as llama.cpp's tokens, and the
/// greedy answer is llama.cpp's; the stop at `<end_of_turn>` is checked on the frontend's stop set
/// (frontend tests, `stop_set_is_llama_cpps_end_of_generation_set`).
#[test]
fn chat_with_a_template_matches_llama_cpp() {
    let server = RotorServer::start_model(
        &rotor_testing::gemma3_path(),
        &["--model-name", MODEL, "--chat-template", &template()],
    );
    let (status, body) = curl_json(
        &server.url("/v1/chat/completions"),
        &json!({"model": MODEL, "max_tokens": 9, "temperature": 0,
                "messages": [{"role": "user", "content": "What is the capital of France?"}]}),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["usage"]["prompt_tokens"], 16, "{body}");
    let choice = &body["choices"][0];
    // llama.cpp 0.3.36 (llama-cpp-python), same file, same prompt: 3689 563 506 5279 529 7001
    // 236881 217716 107.
    assert_eq!(
        choice["message"]["content"], "What is the capital of France? mendatang\n",
        "{body}"
    );
    assert_eq!(choice["finish_reason"], "length", "{body}");
}

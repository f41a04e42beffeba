//! Happy paths: prompt construction, non-streaming and streaming bodies, usage, finish reasons,
//! stop strings and hidden EOS.

use serde_json::{json, Value};

use crate::support::{
    chat_body, encode, smollm2_card, sse_chunks, tokenizer, Script, TestServer, EOS, MODEL,
};
use rotor_frontend::FrontendConfig;

const SMOLLM2_SYSTEM: &str = "You are a helpful AI assistant named SmolLM, trained by Hugging Face";

fn rendered_chat(user: &str) -> String {
    format!(
        "<|im_start|>system\n{SMOLLM2_SYSTEM}<|im_end|>\n<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n"
    )
}

#[tokio::test]
async fn chat_prompt_is_rendered_template_tokenized_with_specials() {
    let server = TestServer::start(Script::text("Hello!")).await;
    let resp = server
        .post_json("/v1/chat/completions", &chat_body("What is 2+2?"))
        .await;
    assert_eq!(resp.status(), 200);
    let req = server.log.last_request();
    let expected = encode(&rendered_chat("What is 2+2?"));
    assert_eq!(req.token_ids, expected);
    assert_eq!(
        req.token_ids[0], 1,
        "<|im_start|> parsed as one special token"
    );
    assert_eq!(
        req.token_ids.iter().filter(|id| **id == 1).count(),
        3,
        "no extra BOS"
    );
    // llama.cpp's end-of-generation set of SmolLM2: `<|endoftext|>`, `<|im_end|>` (EOS), `<reponame>`.
    assert_eq!(req.stop.stop_token_ids, vec![0, EOS, 4]);
}

#[tokio::test]
async fn bos_is_added_only_when_missing() {
    let mut card = smollm2_card();
    card.tokenizer.add_bos_token = true; // BOS is <|im_start|> (id 1)
    let server = TestServer::start_with(Script::text("x"), card, FrontendConfig::default()).await;
    let resp = server
        .post_json("/v1/chat/completions", &chat_body("Hi"))
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        server.log.last_request().token_ids,
        encode(&rendered_chat("Hi")),
        "rendered text starts with BOS"
    );
    let resp = server
        .post_json(
            "/v1/completions",
            &json!({"model": MODEL, "prompt": "Hello"}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let mut expected = vec![1];
    expected.extend(encode("Hello"));
    assert_eq!(server.log.last_request().token_ids, expected);
}

#[tokio::test]
async fn non_streaming_chat_body() {
    let mut script = Script::text("The capital of France is Paris.");
    script.cached_prompt_tokens = Some(16);
    let server = TestServer::start(script).await;
    let resp = server
        .post_json("/v1/chat/completions", &chat_body("Capital of France?"))
        .await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.expect("json");
    assert!(
        body["id"].as_str().expect("id").starts_with("chatcmpl-"),
        "{body}"
    );
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["model"], MODEL);
    assert!(body["created"].as_u64().expect("created") > 1_700_000_000);
    let choice = &body["choices"][0];
    assert_eq!(choice["index"], 0);
    assert_eq!(choice["message"]["role"], "assistant");
    assert_eq!(
        choice["message"]["content"], "The capital of France is Paris.",
        "EOS text hidden"
    );
    assert_eq!(choice["finish_reason"], "stop");
    let prompt_tokens = encode(&rendered_chat("Capital of France?")).len() as u64;
    let completion_tokens = encode("The capital of France is Paris.").len() as u64 + 1; // + EOS
    assert_eq!(body["usage"]["prompt_tokens"], prompt_tokens);
    assert_eq!(body["usage"]["completion_tokens"], completion_tokens);
    assert_eq!(
        body["usage"]["total_tokens"],
        prompt_tokens + completion_tokens
    );
    assert_eq!(body["usage"]["prompt_tokens_details"]["cached_tokens"], 16);
}

#[tokio::test]
async fn finish_reason_length_at_max_tokens() {
    let server = TestServer::start(Script::text("one two three four five six")).await;
    let mut body = chat_body("Count");
    body["max_tokens"] = json!(3);
    let resp: Value = server
        .post_json("/v1/chat/completions", &body)
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(resp["choices"][0]["finish_reason"], "length");
    assert_eq!(resp["choices"][0]["message"]["content"], "one two three");
    assert_eq!(resp["usage"]["completion_tokens"], 3);
    assert_eq!(server.log.last_request().stop.max_tokens, 3);
    // max_completion_tokens wins over max_tokens.
    body["max_completion_tokens"] = json!(2);
    let resp: Value = server
        .post_json("/v1/chat/completions", &body)
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(resp["choices"][0]["message"]["content"], "one two");
}

#[tokio::test]
async fn streaming_chat_format() {
    let server = TestServer::start(Script::text("Hi there, friend.")).await;
    let mut body = chat_body("Hello");
    body["stream"] = json!(true);
    let resp = server.post_json("/v1/chat/completions", &body).await;
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"]
        .to_str()
        .expect("ascii")
        .starts_with("text/event-stream"));
    let chunks = sse_chunks(&resp.text().await.expect("body"));
    let first = &chunks[0];
    assert_eq!(first["object"], "chat.completion.chunk");
    assert_eq!(
        first["choices"][0]["delta"]["role"], "assistant",
        "role delta first: {first}"
    );
    let id = first["id"].as_str().expect("id");
    assert!(id.starts_with("chatcmpl-"));
    for chunk in &chunks {
        assert_eq!(chunk["id"], id, "one id per stream");
        assert_eq!(chunk["model"], MODEL);
        assert!(
            chunk.get("usage").is_none(),
            "no usage unless asked: {chunk}"
        );
    }
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(text, "Hi there, friend.");
    let last = chunks.last().expect("last");
    assert_eq!(last["choices"][0]["finish_reason"], "stop");
    let finishes = chunks
        .iter()
        .filter(|c| !c["choices"][0]["finish_reason"].is_null())
        .count();
    assert_eq!(finishes, 1);
    // One chunk per generated token (no batching of tokens into fewer events).
    assert_eq!(chunks.len(), 1 + encode("Hi there, friend.").len() + 1);
}

#[tokio::test]
async fn streaming_usage_chunk_when_asked() {
    let mut script = Script::text("a b c");
    script.cached_prompt_tokens = Some(4);
    let server = TestServer::start(script).await;
    let mut body = chat_body("Hello");
    body["stream"] = json!(true);
    body["stream_options"] = json!({"include_usage": true});
    let chunks = sse_chunks(
        &server
            .post_json("/v1/chat/completions", &body)
            .await
            .text()
            .await
            .expect("body"),
    );
    let usage_chunk = chunks.last().expect("last");
    assert_eq!(usage_chunk["choices"], json!([]));
    let prompt_tokens = encode(&rendered_chat("Hello")).len() as u64;
    let completion_tokens = encode("a b c").len() as u64 + 1;
    assert_eq!(
        usage_chunk["usage"],
        json!({"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
               "total_tokens": prompt_tokens + completion_tokens,
               "prompt_tokens_details": {"cached_tokens": 4}})
    );
    assert_eq!(
        chunks[chunks.len() - 2]["choices"][0]["finish_reason"],
        "stop"
    );
}

#[tokio::test]
async fn completions_streaming_and_not() {
    let server = TestServer::start(Script::text(" jumped over the lazy dog")).await;
    let body = json!({"model": MODEL, "prompt": "The quick brown fox", "max_tokens": 50});
    let resp: Value = server
        .post_json("/v1/completions", &body)
        .await
        .json()
        .await
        .expect("json");
    assert!(resp["id"].as_str().expect("id").starts_with("cmpl-"));
    assert_eq!(resp["object"], "text_completion");
    assert_eq!(resp["choices"][0]["text"], " jumped over the lazy dog");
    assert_eq!(resp["choices"][0]["finish_reason"], "stop");
    assert_eq!(
        resp["usage"]["prompt_tokens"],
        encode("The quick brown fox").len() as u64
    );
    assert_eq!(
        server.log.last_request().token_ids,
        encode("The quick brown fox")
    );

    let mut body = body;
    body["stream"] = json!(true);
    body["stream_options"] = json!({"include_usage": true});
    let chunks = sse_chunks(
        &server
            .post_json("/v1/completions", &body)
            .await
            .text()
            .await
            .expect("body"),
    );
    assert!(chunks.iter().all(|c| c["object"] == "text_completion"));
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["text"].as_str())
        .collect();
    assert_eq!(text, " jumped over the lazy dog");
    assert_eq!(chunks.last().expect("usage")["choices"], json!([]));
    assert_eq!(
        chunks[chunks.len() - 2]["choices"][0]["finish_reason"],
        "stop"
    );

    // Token-id prompts, alone or as a list of one, go through unchanged.
    let ids = vec![504u32, 2365, 6354];
    for prompt in [json!(ids), json!([ids])] {
        let resp = server
            .post_json(
                "/v1/completions",
                &json!({"model": MODEL, "prompt": prompt}),
            )
            .await;
        assert_eq!(resp.status(), 200);
        assert_eq!(server.log.last_request().token_ids, ids);
    }
}

/// Text whose tokens split the stop string: the stop and anything after it never appear, and
/// no chunk shows a prefix of it that later turned out to be the stop.
#[tokio::test]
async fn stop_string_split_across_tokens_never_leaks() {
    let script_text = "The answer is 42. Done here.";
    let tokens = encode(script_text);
    let pieces: Vec<String> = tokens
        .iter()
        .map(|t| tokenizer().decode(&[*t], false).expect("decode"))
        .collect();
    assert!(
        !pieces.iter().any(|p| p.contains("is 4")),
        "stop must span tokens: {pieces:?}"
    );
    let server = TestServer::start(Script::text(script_text)).await;

    let mut body = chat_body("Q");
    body["stop"] = json!(["is 4", "never"]);
    let resp: Value = server
        .post_json("/v1/chat/completions", &body)
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(resp["choices"][0]["message"]["content"], "The answer ");
    assert_eq!(resp["choices"][0]["finish_reason"], "stop");

    body["stream"] = json!(true);
    let chunks = sse_chunks(
        &server
            .post_json("/v1/chat/completions", &body)
            .await
            .text()
            .await
            .expect("body"),
    );
    let deltas: Vec<&str> = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(deltas.concat(), "The answer ");
    assert!(deltas.iter().all(|d| !d.contains("is")), "{deltas:?}");
    assert_eq!(
        chunks.last().expect("last")["choices"][0]["finish_reason"],
        "stop"
    );

    // A string stop works the same; the backend was cancelled (not run to the end) both times.
    body["stop"] = json!("42");
    let chunks = sse_chunks(
        &server
            .post_json("/v1/chat/completions", &body)
            .await
            .text()
            .await
            .expect("body"),
    );
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(text, "The answer is ");
    server
        .log
        .wait_for("three stopped streams cancelled", |log| {
            log.cancelled.load(std::sync::atomic::Ordering::SeqCst) == 3
        })
        .await;
    assert_eq!(
        server
            .log
            .completed
            .load(std::sync::atomic::Ordering::SeqCst),
        0
    );
}

#[tokio::test]
async fn partial_stop_prefix_is_released_at_the_end() {
    // "Done." ends with "Do" … the stop "Done!" never completes, so everything is shown.
    let server = TestServer::start(Script::text("All Done.")).await;
    let mut body = chat_body("Q");
    body["stop"] = json!(["Done!"]);
    body["stream"] = json!(true);
    let chunks = sse_chunks(
        &server
            .post_json("/v1/chat/completions", &body)
            .await
            .text()
            .await
            .expect("body"),
    );
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(text, "All Done.");
}

#[tokio::test]
async fn ignore_eos_and_min_tokens_reach_the_backend() {
    let server = TestServer::start(Script::text("x")).await;
    let mut body = chat_body("Q");
    body["ignore_eos"] = json!(true);
    body["min_tokens"] = json!(2);
    body["max_tokens"] = json!(5);
    let resp = server.post_json("/v1/chat/completions", &body).await;
    assert_eq!(resp.status(), 200);
    let req = server.log.last_request();
    assert!(req.stop.ignore_eos);
    assert_eq!(req.stop.min_tokens, 2);
    assert!(req.stop.stop_token_ids.is_empty());
}

#[tokio::test]
async fn template_exception_is_400_on_messages() {
    let mut card = smollm2_card();
    card.chat_template =
        Some("{{ raise_exception('Conversation roles must alternate') }}".to_string());
    let server = TestServer::start_with(Script::text("x"), card, FrontendConfig::default()).await;
    let resp = server
        .post_json("/v1/chat/completions", &chat_body("Hi"))
        .await;
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.expect("json");
    assert_eq!(body["error"]["param"], "messages");
    let message = body["error"]["message"].as_str().expect("message");
    assert!(
        message.contains("Conversation roles must alternate"),
        "{message}"
    );
    assert!(server.log.requests().is_empty());
}

#[tokio::test]
async fn card_without_template_refuses_chat_and_serves_completions() {
    let mut card = smollm2_card();
    card.chat_template = None;
    let server = TestServer::start_with(Script::text("x"), card, FrontendConfig::default()).await;
    let resp = server
        .post_json("/v1/chat/completions", &chat_body("Hi"))
        .await;
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.expect("json");
    assert_eq!(body["error"]["param"], "messages");
    let message = body["error"]["message"].as_str().expect("message");
    assert!(
        message.contains("no chat template") && message.contains("--chat-template FILE"),
        "{message}"
    );
    assert!(
        server.log.requests().is_empty(),
        "nothing reached the engine"
    );
    let completion = json!({"model": MODEL, "prompt": "Hi", "max_tokens": 1});
    assert_eq!(
        server
            .post_json("/v1/completions", &completion)
            .await
            .status(),
        200
    );
    assert_eq!(server.log.requests().len(), 1);
}

/// Gemma 3's GGUF names only `<eos>` (1) as eos, but its chat turns end with `<end_of_turn>`
/// (106): the frontend asks the engine to stop at llama.cpp's whole end-of-generation set, so a
/// Gemma answer ends where llama.cpp's does instead of running on to `max_tokens`.
#[tokio::test]
async fn stop_set_is_llama_cpps_end_of_generation_set() {
    let gguf = rotor_model::GgufFile::open(&rotor_testing::gemma3_path()).expect("open Gemma");
    let card = rotor_protocol::ModelCard {
        embedding_length: None,
        host_id: None,
        kv_host_pool: None,
        tokenizer: rotor_model::card::tokenizer_spec(&gguf).expect("tokenizer spec"),
        chat_template: None,
        ..smollm2_card()
    };
    let server = TestServer::start_with(Script::text(""), card, FrontendConfig::default()).await;
    let resp = server
        .post_json(
            "/v1/completions",
            &json!({"model": MODEL, "prompt": "Hi", "max_tokens": 4}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    // 1 `<eos>`, 106 `<end_of_turn>`, 212 `</s>`: the ids llama.cpp's vocabulary marks EOG.
    assert_eq!(
        server.log.last_request().stop.stop_token_ids,
        vec![1, 106, 212]
    );
    let ignore = server
        .post_json(
            "/v1/completions",
            &json!({"model": MODEL, "prompt": "Hi", "max_tokens": 4, "ignore_eos": true}),
        )
        .await;
    assert_eq!(ignore.status(), 200);
    assert!(server.log.last_request().stop.stop_token_ids.is_empty());
}

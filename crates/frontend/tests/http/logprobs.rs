//! Logprobs in both APIs (chat: `logprobs` + `top_logprobs`; completions: integer `logprobs`),
//! whole and streamed, against a backend that scripts them: the n-th generated token has logprob
//! -n/10 and its alternatives are the token itself and the next ids, each 1 lower.

use serde_json::{json, Value};

use crate::support::{chat_body, encode, sse_chunks, tokenizer, Script, TestServer, MODEL};

const TEXT: &str = "The sky is blue today.";

fn token_text(id: u32) -> String {
    String::from_utf8_lossy(&tokenizer().decode_bytes(&[id], false).expect("token")).into_owned()
}

fn approx(a: &Value, b: f32) -> bool {
    (a.as_f64().expect("number") as f32 - b).abs() < 1e-6
}

/// Checks a chat `logprobs.content` list against the scripted tokens of `TEXT`.
fn check_chat_content(content: &[Value], top: usize) {
    let ids = encode(TEXT);
    assert_eq!(
        content.len(),
        ids.len(),
        "one entry per shown token: {content:?}"
    );
    for (n, (entry, &id)) in content.iter().zip(&ids).enumerate() {
        let text = token_text(id);
        assert_eq!(entry["token"], text.as_str(), "{entry}");
        assert!(
            approx(&entry["logprob"], -((n + 1) as f32) / 10.0),
            "{entry}"
        );
        let bytes: Vec<u8> = serde_json::from_value(entry["bytes"].clone()).expect("bytes");
        assert_eq!(String::from_utf8_lossy(&bytes), text);
        let alternatives = entry["top_logprobs"].as_array().expect("top_logprobs");
        assert_eq!(alternatives.len(), top, "{entry}");
        for (i, alt) in alternatives.iter().enumerate() {
            assert_eq!(alt["token"], token_text(id + i as u32).as_str());
            assert!(approx(&alt["logprob"], -((n + 1) as f32) / 10.0 - i as f32));
        }
    }
    let joined: String = content
        .iter()
        .map(|e| e["token"].as_str().unwrap())
        .collect();
    assert_eq!(joined, TEXT);
}

#[tokio::test]
async fn chat_logprobs_whole_and_streamed_agree_and_end_of_generation_is_left_out() {
    let server = TestServer::start(Script::text(TEXT)).await;
    let mut body = chat_body("Colour?");
    body["logprobs"] = json!(true);
    body["top_logprobs"] = json!(2);
    let resp = server.post_json("/v1/chat/completions", &body).await;
    assert_eq!(resp.status(), 200);
    let whole: Value = resp.json().await.expect("json");
    assert_eq!(server.log.last_request().sampling.logprobs, Some(2));
    assert_eq!(whole["choices"][0]["message"]["content"], TEXT);
    let content = whole["choices"][0]["logprobs"]["content"]
        .as_array()
        .expect("logprobs.content")
        .clone();
    check_chat_content(&content, 2);

    body["stream"] = json!(true);
    let resp = server.post_json("/v1/chat/completions", &body).await;
    let chunks = sse_chunks(&resp.text().await.expect("body"));
    let streamed: Vec<Value> = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["logprobs"]["content"].as_array())
        .flatten()
        .cloned()
        .collect();
    assert_eq!(streamed, content, "streamed entries equal the whole body's");
    // Each entry rides on the chunk that carries its text.
    for chunk in &chunks {
        let delta = chunk["choices"][0]["delta"]["content"]
            .as_str()
            .unwrap_or("");
        let tokens: String = chunk["choices"][0]["logprobs"]["content"]
            .as_array()
            .map(|entries| {
                entries
                    .iter()
                    .map(|e| e["token"].as_str().unwrap())
                    .collect()
            })
            .unwrap_or_default();
        assert_eq!(delta, tokens, "{chunk}");
    }

    // Without logprobs: null, and the engine is not asked for them.
    let resp = server
        .post_json("/v1/chat/completions", &chat_body("Colour?"))
        .await;
    let plain: Value = resp.json().await.expect("json");
    assert_eq!(plain["choices"][0]["logprobs"], Value::Null);
    assert_eq!(server.log.last_request().sampling.logprobs, None);

    let metrics = server.get("/metrics").await.text().await.expect("metrics");
    for line in [
        "rotor_frontend_sampling_options_total{option=\"logprobs\"} 2",
        "rotor_frontend_sampling_options_total{option=\"top_logprobs\"} 2",
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line}\n{metrics}");
    }
}

#[tokio::test]
async fn chat_logprobs_without_top_logprobs_list_no_alternatives() {
    let server = TestServer::start(Script::text(TEXT)).await;
    let mut body = chat_body("Colour?");
    body["logprobs"] = json!(true);
    let whole: Value = server
        .post_json("/v1/chat/completions", &body)
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(server.log.last_request().sampling.logprobs, Some(0));
    let content = whole["choices"][0]["logprobs"]["content"]
        .as_array()
        .expect("content");
    check_chat_content(content, 0);
}

#[tokio::test]
async fn completion_logprobs_have_tokens_offsets_and_top_maps_also_when_a_stop_string_cuts() {
    let server = TestServer::start(Script::text(TEXT)).await;
    let body = json!({"model": MODEL, "prompt": "x", "logprobs": 3});
    let whole: Value = server
        .post_json("/v1/completions", &body)
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(server.log.last_request().sampling.logprobs, Some(3));
    let lp = &whole["choices"][0]["logprobs"];
    let ids = encode(TEXT);
    let tokens: Vec<String> = serde_json::from_value(lp["tokens"].clone()).expect("tokens");
    assert_eq!(
        tokens,
        ids.iter().map(|&id| token_text(id)).collect::<Vec<_>>()
    );
    let offsets: Vec<usize> = serde_json::from_value(lp["text_offset"].clone()).expect("offsets");
    let mut at = 0;
    for (token, offset) in tokens.iter().zip(&offsets) {
        assert_eq!(*offset, at, "{lp}");
        at += token.chars().count();
    }
    for (n, (value, top)) in lp["token_logprobs"]
        .as_array()
        .expect("token_logprobs")
        .iter()
        .zip(lp["top_logprobs"].as_array().expect("top_logprobs"))
        .enumerate()
    {
        assert!(approx(value, -((n + 1) as f32) / 10.0));
        let top = top.as_object().expect("a map of token to logprob");
        assert!(!top.is_empty() && top.len() <= 3, "{top:?}");
        assert!(approx(&top[&tokens[n]], -((n + 1) as f32) / 10.0));
    }

    // A stop string inside the text: the entries run up to the token that completed it.
    let body =
        json!({"model": MODEL, "prompt": "x", "logprobs": 0, "stop": "blue", "stream": true});
    let resp = server.post_json("/v1/completions", &body).await;
    let chunks = sse_chunks(&resp.text().await.expect("body"));
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["text"].as_str())
        .collect();
    assert_eq!(text, "The sky is ");
    let streamed: Vec<String> = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["logprobs"]["tokens"].as_array())
        .flatten()
        .map(|t| t.as_str().unwrap().to_string())
        .collect();
    let joined: String = streamed.concat();
    assert!(
        joined.starts_with("The sky is ") && joined.contains("blue") && joined.len() < TEXT.len(),
        "{streamed:?}"
    );
    assert!(chunks
        .iter()
        .filter_map(|c| c["choices"][0]["logprobs"]["top_logprobs"].as_array())
        .flatten()
        .all(|m| m.as_object().is_some_and(|m| m.is_empty())));
}

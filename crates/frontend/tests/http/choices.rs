//! Several choices in one response: `n` (chat and completions), lists of prompts, `best_of` and
//! `echo`, whole and streamed, against the scripted backend (every request answers `TEXT`; with
//! logprobs, the n-th token's logprob is -n/10 minus `seed % 4`).

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::{json, Value};

use crate::support::{chat_body, encode, sse_chunks, Script, TestServer, MODEL};

const TEXT: &str = "Blue sky.";

fn metric(text: &str, line_start: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(line_start))
        .and_then(|rest| rest.trim().parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test]
async fn chat_n_gives_numbered_choices_from_one_prefill_per_prompt() {
    let server = TestServer::start(Script::text(TEXT)).await;
    let mut body = chat_body("Colour?");
    body["n"] = json!(3);
    body["seed"] = json!(5);
    let resp = server.post_json("/v1/chat/completions", &body).await;
    assert_eq!(resp.status(), 200);
    let whole: Value = resp.json().await.expect("json");
    let choices = whole["choices"].as_array().expect("choices");
    assert_eq!(choices.len(), 3, "{whole}");
    for (i, choice) in choices.iter().enumerate() {
        assert_eq!(choice["index"], i, "{whole}");
        assert_eq!(choice["message"]["content"], TEXT);
        assert_eq!(choice["finish_reason"], "stop");
    }
    let requests = server.log.requests();
    assert_eq!(requests.len(), 3);
    // One prompt, sent three times under distinct ids with distinct seeds.
    assert!(requests
        .iter()
        .all(|r| r.token_ids == requests[0].token_ids));
    let ids: std::collections::BTreeSet<_> = requests.iter().map(|r| r.id.clone()).collect();
    assert_eq!(ids.len(), 3, "{ids:?}");
    let seeds: Vec<_> = requests.iter().map(|r| r.sampling.seed).collect();
    assert_eq!(seeds, [Some(5), Some(6), Some(7)]);
    // The followers were sent only after the leader had produced output (its prefill done).
    let before = server.log.outputs_before.lock().expect("lock").clone();
    assert_eq!(before[0], 0);
    assert!(before[1..].iter().all(|&b| b >= 1), "{before:?}");
    // Usage: the prompt once, every choice's tokens.
    let prompt = requests[0].token_ids.len() as u64;
    let per_choice = encode(TEXT).len() as u64 + 1; // + the hidden end-of-generation token
    assert_eq!(whole["usage"]["prompt_tokens"], prompt);
    assert_eq!(whole["usage"]["completion_tokens"], 3 * per_choice);
    assert_eq!(whole["usage"]["total_tokens"], prompt + 3 * per_choice);
    let metrics = server.get("/metrics").await.text().await.expect("metrics");
    assert_eq!(
        metric(
            &metrics,
            "rotor_frontend_sampling_options_total{option=\"n\"}"
        ),
        1.0
    );
    assert_eq!(
        metric(&metrics, "rotor_frontend_shared_prompt_sequences_total"),
        2.0
    );
}

#[tokio::test]
async fn streamed_choices_interleave_with_their_index_and_usage_comes_last() {
    let mut script = Script::text(TEXT);
    script.delay = Duration::from_millis(2);
    let server = TestServer::start(script).await;
    let mut body = chat_body("Colour?");
    body["n"] = json!(2);
    body["stream"] = json!(true);
    body["stream_options"] = json!({"include_usage": true});
    let resp = server.post_json("/v1/chat/completions", &body).await;
    assert_eq!(resp.status(), 200);
    let chunks = sse_chunks(&resp.text().await.expect("body"));
    let mut text: BTreeMap<u64, String> = BTreeMap::new();
    let mut roles = BTreeMap::new();
    let mut finishes = BTreeMap::new();
    let (usage, choice_chunks) = chunks.split_last().expect("chunks");
    for chunk in choice_chunks {
        let choice = &chunk["choices"][0];
        let index = choice["index"].as_u64().expect("index");
        if choice["delta"]["role"] == "assistant" {
            *roles.entry(index).or_insert(0) += 1;
        }
        if let Some(piece) = choice["delta"]["content"].as_str() {
            text.entry(index).or_default().push_str(piece);
        }
        if let Some(reason) = choice["finish_reason"].as_str() {
            finishes.insert(index, reason.to_string());
        }
    }
    assert_eq!(roles, BTreeMap::from([(0, 1), (1, 1)]), "one opening each");
    assert_eq!(text[&0], TEXT);
    assert_eq!(text[&1], TEXT);
    assert_eq!(finishes.len(), 2);
    assert_eq!(usage["choices"], json!([]));
    let per_choice = encode(TEXT).len() as u64 + 1;
    assert_eq!(usage["usage"]["completion_tokens"], 2 * per_choice);
}

#[tokio::test]
async fn leaving_a_stream_of_choices_cancels_every_sequence() {
    let mut script = Script::text("one two three four five six seven eight nine ten");
    script.delay = Duration::from_millis(50);
    let server = TestServer::start(script).await;
    let body = json!({"model": MODEL, "prompt": "Count:", "n": 3, "stream": true});
    let mut resp = server.post_json("/v1/completions", &body).await;
    assert_eq!(resp.status(), 200);
    let first = resp.chunk().await.expect("read").expect("a first chunk");
    assert!(!first.is_empty());
    server
        .log
        .wait_for("three sequences started", |log| log.requests().len() == 3)
        .await;
    drop(resp);
    server
        .log
        .wait_for("every sequence cancelled", |log| {
            log.cancelled.load(Ordering::SeqCst) == 3
        })
        .await;
}

#[tokio::test]
async fn a_list_of_prompts_gives_choices_numbered_by_prompt_then_sequence() {
    let server = TestServer::start(Script::text(TEXT)).await;
    let body = json!({"model": MODEL, "prompt": ["Hello there", "Goodbye now, friend"], "n": 2});
    let resp = server.post_json("/v1/completions", &body).await;
    assert_eq!(resp.status(), 200);
    let whole: Value = resp.json().await.expect("json");
    let choices = whole["choices"].as_array().expect("choices");
    assert_eq!(choices.len(), 4, "{whole}");
    for (i, choice) in choices.iter().enumerate() {
        assert_eq!(choice["index"], i);
        assert_eq!(choice["text"], TEXT);
    }
    let mut prompts: Vec<Vec<u32>> = server
        .log
        .requests()
        .iter()
        .map(|r| r.token_ids.clone())
        .collect();
    prompts.sort();
    prompts.dedup();
    let mut want = vec![encode("Hello there"), encode("Goodbye now, friend")];
    want.sort();
    assert_eq!(prompts, want);
    let prompt_tokens = (encode("Hello there").len() + encode("Goodbye now, friend").len()) as u64;
    assert_eq!(whole["usage"]["prompt_tokens"], prompt_tokens);
    // Token-id prompts too, streamed.
    let body = json!({"model": MODEL, "prompt": [encode("a b"), encode("c")], "stream": true});
    let resp = server.post_json("/v1/completions", &body).await;
    let chunks = sse_chunks(&resp.text().await.expect("body"));
    let mut text: BTreeMap<u64, String> = BTreeMap::new();
    for chunk in &chunks {
        let index = chunk["choices"][0]["index"].as_u64().expect("index");
        text.entry(index)
            .or_default()
            .push_str(chunk["choices"][0]["text"].as_str().expect("text"));
    }
    assert_eq!(
        text,
        BTreeMap::from([(0, TEXT.to_string()), (1, TEXT.to_string())])
    );
    let metrics = server.get("/metrics").await.text().await.expect("metrics");
    assert_eq!(
        metric(
            &metrics,
            "rotor_frontend_sampling_options_total{option=\"prompt_list\"}"
        ),
        2.0
    );
}

#[tokio::test]
async fn best_of_keeps_the_sequences_with_the_highest_cumulative_logprob() {
    let server = TestServer::start(Script::text(TEXT)).await;
    // Seeds 10..13 lower every logprob by 2, 3, 0, 1: sequences 2 then 3 are the best.
    let body = json!({"model": MODEL, "prompt": "Sky?", "n": 2, "best_of": 4, "seed": 10,
                      "logprobs": 0});
    let resp = server.post_json("/v1/completions", &body).await;
    assert_eq!(resp.status(), 200);
    let whole: Value = resp.json().await.expect("json");
    let choices = whole["choices"].as_array().expect("choices");
    assert_eq!(choices.len(), 2, "{whole}");
    let first_logprob = |c: &Value| c["logprobs"]["token_logprobs"][0].as_f64().expect("lp");
    assert_eq!(choices[0]["index"], 0);
    assert_eq!(choices[1]["index"], 1);
    assert!((first_logprob(&choices[0]) + 0.1).abs() < 1e-5, "{whole}");
    assert!((first_logprob(&choices[1]) + 1.1).abs() < 1e-5, "{whole}");
    assert_eq!(server.log.requests().len(), 4);
    // Every generated token counts, also those of the sequences not returned.
    let per_choice = encode(TEXT).len() as u64 + 1;
    assert_eq!(whole["usage"]["completion_tokens"], 4 * per_choice);

    // Without `logprobs` the ranking still asks the engine for them, and shows none.
    let body = json!({"model": MODEL, "prompt": "Sky?", "best_of": 3});
    let whole: Value = server
        .post_json("/v1/completions", &body)
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(whole["choices"].as_array().expect("choices").len(), 1);
    assert_eq!(whole["choices"][0]["logprobs"], Value::Null);
    assert_eq!(server.log.last_request().sampling.logprobs, Some(0));
}

#[tokio::test]
async fn echo_puts_the_prompt_before_the_text() {
    let server = TestServer::start(Script::text(TEXT)).await;
    let body = json!({"model": MODEL, "prompt": "The sky:", "echo": true, "n": 2});
    let whole: Value = server
        .post_json("/v1/completions", &body)
        .await
        .json()
        .await
        .expect("json");
    for choice in whole["choices"].as_array().expect("choices") {
        assert_eq!(choice["text"], format!("The sky:{TEXT}"));
    }
    // Token ids are echoed as their text; streamed, the prompt comes first.
    let body = json!({"model": MODEL, "prompt": encode("Hello world"), "echo": true,
                      "stream": true});
    let resp = server.post_json("/v1/completions", &body).await;
    let chunks = sse_chunks(&resp.text().await.expect("body"));
    assert_eq!(chunks[0]["choices"][0]["text"], "Hello world");
    let text: String = chunks
        .iter()
        .map(|c| c["choices"][0]["text"].as_str().expect("text"))
        .collect();
    assert_eq!(text, format!("Hello world{TEXT}"));
}

#[tokio::test]
async fn echo_with_logprobs_scores_the_prompt_and_max_tokens_0_only_scores() {
    let server = TestServer::start(Script::text(TEXT)).await;
    let prompt = encode("The sky is blue");
    // lm-evaluation-harness's loglikelihood request: echo, logprobs, max_tokens 0.
    let body = json!({"model": MODEL, "prompt": prompt, "echo": true, "logprobs": 1,
                      "max_tokens": 0, "temperature": 0});
    let resp = server.post_json("/v1/completions", &body).await;
    assert_eq!(resp.status(), 200);
    let whole: Value = resp.json().await.expect("json");
    let choice = &whole["choices"][0];
    assert_eq!(choice["text"], "The sky is blue");
    assert_eq!(choice["finish_reason"], "length");
    assert_eq!(whole["usage"]["completion_tokens"], 0);
    let lp = &choice["logprobs"];
    let tokens = lp["tokens"].as_array().expect("tokens");
    assert_eq!(tokens.len(), prompt.len());
    let joined: String = tokens.iter().map(|t| t.as_str().expect("token")).collect();
    assert_eq!(joined, "The sky is blue");
    // The first token has no logprob; token i has the scripted -i/100.
    assert_eq!(lp["token_logprobs"][0], Value::Null);
    assert_eq!(lp["top_logprobs"][0], Value::Null);
    for i in 1..prompt.len() {
        let got = lp["token_logprobs"][i].as_f64().expect("logprob");
        assert!((got + i as f64 / 100.0).abs() < 1e-6, "{lp}");
        assert_eq!(lp["top_logprobs"][i].as_object().expect("top").len(), 1);
    }
    let offsets: Vec<u64> = serde_json::from_value(lp["text_offset"].clone()).expect("offsets");
    assert_eq!(offsets[0], 0);
    assert!(offsets.windows(2).all(|w| w[0] < w[1]), "{offsets:?}");
    let request = server.log.last_request();
    assert_eq!(request.sampling.prompt_logprobs, Some(1));
    assert_eq!(request.stop.max_tokens, 0);

    // Echo and generation: prompt entries, then the generated ones, offsets continuing.
    let body = json!({"model": MODEL, "prompt": "The sky is blue", "echo": true, "logprobs": 0,
                      "max_tokens": 3});
    for stream in [false, true] {
        let mut body = body.clone();
        body["stream"] = json!(stream);
        let resp = server.post_json("/v1/completions", &body).await;
        let (text, tokens, offsets) = if stream {
            let chunks = sse_chunks(&resp.text().await.expect("body"));
            let mut text = String::new();
            let (mut tokens, mut offsets) = (Vec::new(), Vec::new());
            for chunk in &chunks {
                let choice = &chunk["choices"][0];
                text.push_str(choice["text"].as_str().expect("text"));
                for t in choice["logprobs"]["tokens"]
                    .as_array()
                    .into_iter()
                    .flatten()
                {
                    tokens.push(t.as_str().expect("token").to_string());
                }
                for o in choice["logprobs"]["text_offset"]
                    .as_array()
                    .into_iter()
                    .flatten()
                {
                    offsets.push(o.as_u64().expect("offset"));
                }
            }
            (text, tokens, offsets)
        } else {
            let whole: Value = resp.json().await.expect("json");
            let lp = &whole["choices"][0]["logprobs"];
            (
                whole["choices"][0]["text"]
                    .as_str()
                    .expect("text")
                    .to_string(),
                serde_json::from_value(lp["tokens"].clone()).expect("tokens"),
                serde_json::from_value(lp["text_offset"].clone()).expect("offsets"),
            )
        };
        assert!(text.starts_with("The sky is blue"), "{text}");
        assert_eq!(tokens.len(), prompt.len() + 3, "{tokens:?}");
        assert_eq!(tokens.concat(), text, "stream {stream}");
        let mut at = 0;
        for (token, offset) in tokens.iter().zip(&offsets) {
            assert_eq!(
                *offset, at as u64,
                "stream {stream}: {tokens:?} {offsets:?}"
            );
            at += token.chars().count();
        }
    }
    // max_tokens 0 without echo is still refused.
    let body = json!({"model": MODEL, "prompt": "x", "max_tokens": 0});
    assert_eq!(
        server.post_json("/v1/completions", &body).await.status(),
        400
    );
}

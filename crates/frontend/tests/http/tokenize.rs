//! POST /tokenize and POST /detokenize (vLLM's shapes) and GET /v1/models/{id}: the ids are the
//! served tokenizer's, a chat is rendered with the served template, bad input is a 4xx JSON.

use rotor_frontend::{Frontend, FrontendConfig, ServedModel};
use serde_json::{json, Value};

use crate::support::{
    encode, smollm2_card, tokenizer, BackendLog, Script, ScriptedBackend, TestServer, MODEL,
};

async fn post(server: &TestServer, path: &str, body: Value) -> (u16, Value) {
    let resp = server.post_json(path, &body).await;
    let status = resp.status().as_u16();
    (status, resp.json().await.expect("JSON body"))
}

fn assert_error(
    status: u16,
    body: &Value,
    want_status: u16,
    param: Option<&str>,
    code: Option<&str>,
) {
    assert_eq!(status, want_status, "{body}");
    assert_eq!(body["error"]["param"].as_str(), param, "{body}");
    assert_eq!(body["error"]["code"].as_str(), code, "{body}");
    assert!(body["error"]["message"]
        .as_str()
        .is_some_and(|m| !m.is_empty()));
}

#[tokio::test]
async fn tokenize_a_prompt_as_completions_would() {
    let server = TestServer::start(Script::text("ok")).await;
    let text = "Hello world, it's 2024! <|im_start|>";
    let (status, body) = post(
        &server,
        "/tokenize",
        json!({"model": MODEL, "prompt": text}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let ids = encode(text);
    assert_eq!(
        body,
        json!({"count": ids.len(), "max_model_len": smollm2_card().context_length,
               "tokens": ids, "token_strs": null})
    );
    // The same prompt sent to /v1/completions reaches the backend as those ids.
    let resp = server
        .post_json("/v1/completions", &json!({"model": MODEL, "prompt": text}))
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(server.log.last_request().token_ids, ids);

    // `model` may be left out when one model is served; token strings on request.
    let (status, body) = post(
        &server,
        "/tokenize",
        json!({"prompt": "Hello world", "return_token_strs": true}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let ids = encode("Hello world");
    let strs: Vec<String> = ids
        .iter()
        .map(|&id| tokenizer().token_text(id).unwrap().to_string())
        .collect();
    assert_eq!(body["tokens"], json!(ids));
    assert_eq!(body["token_strs"], json!(strs));
    assert_eq!(strs, ["Hello", "Ġworld"]);
}

#[tokio::test]
async fn tokenize_messages_with_the_served_template() {
    let server = TestServer::start(Script::text("ok")).await;
    let messages = json!([{"role": "user", "content": "What color is the sky?"}]);
    let (status, body) = post(
        &server,
        "/tokenize",
        json!({"model": MODEL, "messages": messages}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    // The chat endpoint sends exactly these ids (generation prompt included by default).
    let resp = server
        .post_json(
            "/v1/chat/completions",
            &json!({"model": MODEL, "messages": messages}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let chat_ids = server.log.last_request().token_ids;
    assert_eq!(body["tokens"], json!(chat_ids));
    assert_eq!(body["count"], chat_ids.len());
    let rendered = tokenizer().decode(&chat_ids, false).expect("decode");
    assert!(
        rendered.ends_with("<|im_start|>assistant\n"),
        "{rendered:?}"
    );

    let (status, without) = post(
        &server,
        "/tokenize",
        json!({"model": MODEL, "messages": messages, "add_generation_prompt": false}),
    )
    .await;
    assert_eq!(status, 200, "{without}");
    let without: Vec<u32> = serde_json::from_value(without["tokens"].clone()).expect("ids");
    assert_eq!(without[..], chat_ids[..without.len()]);
    assert_eq!(
        tokenizer()
            .decode(&chat_ids[without.len()..], false)
            .unwrap(),
        "<|im_start|>assistant\n"
    );
}

#[tokio::test]
async fn add_special_tokens_adds_bos_where_the_model_wants_it() {
    let mut card = smollm2_card();
    card.tokenizer.add_bos_token = true;
    card.tokenizer.bos_token_id = Some(1);
    let server = TestServer::start_with(Script::text("ok"), card, FrontendConfig::default()).await;
    let ids = encode("Hi there");
    let (_, body) = post(&server, "/tokenize", json!({"prompt": "Hi there"})).await;
    let mut with_bos = vec![1];
    with_bos.extend(&ids);
    assert_eq!(body["tokens"], json!(with_bos));
    let (_, body) = post(
        &server,
        "/tokenize",
        json!({"prompt": "Hi there", "add_special_tokens": false}),
    )
    .await;
    assert_eq!(body["tokens"], json!(ids));
}

#[tokio::test]
async fn detokenize_round_trips_and_keeps_special_tokens() {
    let server = TestServer::start(Script::text("ok")).await;
    let text = "<|im_start|>user\nHello, wörld! 12345<|im_end|>";
    let (status, body) = post(
        &server,
        "/detokenize",
        json!({"model": MODEL, "tokens": encode(text)}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, json!({"prompt": text}));
    let (status, body) = post(&server, "/detokenize", json!({"tokens": []})).await;
    assert_eq!((status, body), (200, json!({"prompt": ""})));
}

#[tokio::test]
async fn bad_tokenize_input_is_a_clear_4xx() {
    let server = TestServer::start(Script::text("ok")).await;
    let vocab = tokenizer().vocab_size();
    let cases = [
        (
            "/tokenize",
            json!({"model": "nope", "prompt": "x"}),
            404,
            Some("model"),
            Some("model_not_found"),
        ),
        (
            "/detokenize",
            json!({"model": "nope", "tokens": [1]}),
            404,
            Some("model"),
            Some("model_not_found"),
        ),
        (
            "/tokenize",
            json!({"model": MODEL}),
            400,
            Some("prompt"),
            None,
        ),
        (
            "/tokenize",
            json!({"prompt": "x", "messages": []}),
            400,
            Some("prompt"),
            None,
        ),
        (
            "/tokenize",
            json!({"messages": []}),
            400,
            Some("messages"),
            None,
        ),
        (
            "/tokenize",
            json!({"messages": [{"role": "wizard", "content": "x"}]}),
            400,
            Some("messages[0].role"),
            None,
        ),
        ("/tokenize", json!({"prompt": 5}), 400, Some("prompt"), None),
        (
            "/tokenize",
            json!({"messages": [{"role": "user", "content": "x"}], "continue_final_message": true}),
            400,
            Some("continue_final_message"),
            Some("unsupported_parameter"),
        ),
        (
            "/detokenize",
            json!({"tokens": [1, vocab]}),
            400,
            Some("tokens"),
            None,
        ),
        (
            "/detokenize",
            json!({"tokens": [-1]}),
            400,
            Some("tokens[0]"),
            None,
        ),
        (
            "/detokenize",
            json!({"tokens": [1, 2.5]}),
            400,
            Some("tokens[1]"),
            None,
        ),
        (
            "/detokenize",
            json!({"tokens": [4294967296u64]}),
            400,
            Some("tokens[0]"),
            None,
        ),
        ("/detokenize", json!({}), 400, Some("tokens"), None),
    ];
    for (path, body, status, param, code) in cases {
        let (got, answer) = post(&server, path, body.clone()).await;
        assert_eq!(got, status, "{path} {body}: {answer}");
        assert_error(got, &answer, status, param, code);
    }
    let resp = server
        .client
        .post(server.url("/tokenize"))
        .body("{\"prompt\": ")
        .header("content-type", "application/json")
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), 400);
    let resp = server.get("/tokenize").await;
    assert_eq!(resp.status(), 405);
    assert!(server.log.requests().is_empty(), "no generation started");
}

#[tokio::test]
async fn model_must_be_named_when_several_are_served() {
    let frontend = Frontend::new(FrontendConfig::default());
    let log = std::sync::Arc::new(BackendLog::default());
    for name in ["a", "b"] {
        let mut card = smollm2_card();
        card.name = name.to_string();
        frontend
            .add_model(ServedModel {
                card,
                backend: std::sync::Arc::new(ScriptedBackend {
                    script: Script::text("ok"),
                    log: log.clone(),
                }),
            })
            .expect("add");
    }
    let server = TestServer::start_frontend(frontend, log).await;
    let (status, body) = post(&server, "/tokenize", json!({"prompt": "x"})).await;
    assert_error(status, &body, 400, Some("model"), None);
    assert!(body["error"]["message"].as_str().unwrap().contains("a, b"));
    let (status, _) = post(&server, "/tokenize", json!({"model": "b", "prompt": "x"})).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn unknown_model_id_is_a_404_json() {
    let server = TestServer::start(Script::text("ok")).await;
    for id in ["nope", "org/nope", "smollm2x"] {
        let resp = server.get(&format!("/v1/models/{id}")).await;
        let status = resp.status().as_u16();
        let body: Value = resp.json().await.expect("JSON");
        assert_error(status, &body, 404, Some("model"), Some("model_not_found"));
        assert!(body["error"]["message"].as_str().unwrap().contains(id));
    }
}

#[tokio::test]
async fn tokenizer_info_names_the_special_tokens_and_limits() {
    let server = TestServer::start(Script::text("ok")).await;
    for path in ["/tokenizer_info", "/tokenizer_info?model=smollm2"] {
        let resp = server.get(path).await;
        assert_eq!(resp.status(), 200, "{path}");
        let info: serde_json::Value = resp.json().await.expect("json");
        assert_eq!(info["eos_token"], "<|im_end|>", "{info}");
        assert_eq!(info["model_max_length"], 8192);
        assert_eq!(info["vocab_size"], 49152);
        assert_eq!(info["add_bos_token"], false);
        assert!(info["chat_template"]
            .as_str()
            .is_some_and(|t| t.contains("im_start")));
    }
    assert_eq!(server.get("/tokenizer_info?model=nope").await.status(), 404);
}

//! POST /v1/embeddings against the scripted backend (its embedding of a prompt is
//! `support::scripted_embedding`): input shapes, what reaches the backend, base64, validation,
//! the counter.

use rotor_protocol::{Pooling, Task};
use serde_json::{json, Value};

use crate::support::{encode, scripted_embedding, Script, TestServer, MODEL};

fn floats(v: &Value) -> Vec<f32> {
    v.as_array()
        .expect("a float list")
        .iter()
        .map(|x| x.as_f64().expect("number") as f32)
        .collect()
}

fn decode_base64(text: &str) -> Vec<f32> {
    let value = |c: u8| -> u32 {
        match c {
            b'A'..=b'Z' => (c - b'A') as u32,
            b'a'..=b'z' => (c - b'a') as u32 + 26,
            b'0'..=b'9' => (c - b'0') as u32 + 52,
            b'+' => 62,
            b'/' => 63,
            _ => panic!("not base64: {c}"),
        }
    };
    let mut bytes = Vec::new();
    for quad in text.as_bytes().chunks(4) {
        let pad = quad.iter().filter(|&&c| c == b'=').count();
        let n = quad
            .iter()
            .map(|&c| if c == b'=' { 0 } else { value(c) })
            .fold(0u32, |n, v| (n << 6) | v);
        bytes.extend_from_slice(&n.to_be_bytes()[1..4 - pad]);
    }
    bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

async fn post(server: &TestServer, body: Value) -> (u16, Value) {
    let resp = server.post_json("/v1/embeddings", &body).await;
    let status = resp.status().as_u16();
    (status, resp.json().await.expect("JSON"))
}

#[tokio::test]
async fn a_string_gets_one_mean_pooled_normalised_embedding() {
    let server = TestServer::start(Script::text("unused")).await;
    let (status, body) = post(&server, json!({"model": MODEL, "input": "Hello world"})).await;
    assert_eq!(status, 200, "{body}");
    let ids = encode("Hello world");
    assert_eq!(body["object"], "list");
    assert_eq!(body["model"], MODEL);
    assert_eq!(body["usage"]["prompt_tokens"], ids.len());
    assert_eq!(body["usage"]["total_tokens"], ids.len());
    let data = body["data"].as_array().expect("data");
    assert_eq!(data.len(), 1);
    assert_eq!(data[0]["object"], "embedding");
    assert_eq!(data[0]["index"], 0);
    assert_eq!(floats(&data[0]["embedding"]), scripted_embedding(&ids));
    let req = server.log.last_request();
    assert_eq!(req.token_ids, ids);
    assert_eq!(req.stop.max_tokens, 0);
    assert_eq!(
        req.task,
        Task::Embed {
            pooling: Pooling::Mean,
            normalize: true
        }
    );
}

#[tokio::test]
async fn lists_of_strings_and_of_token_ids_keep_their_order_and_extensions_reach_the_engine() {
    let server = TestServer::start(Script::text("unused")).await;
    let texts = ["first input", "the second, longer input", "3"];
    let (status, body) = post(
        &server,
        json!({"model": MODEL, "input": texts, "pooling": "last", "normalize": false,
               "user": "someone", "dimensions": 576}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let data = body["data"].as_array().expect("data");
    assert_eq!(data.len(), 3);
    let mut total = 0;
    for (i, text) in texts.iter().enumerate() {
        let ids = encode(text);
        total += ids.len();
        assert_eq!(data[i]["index"], i);
        assert_eq!(floats(&data[i]["embedding"]), scripted_embedding(&ids));
    }
    assert_eq!(body["usage"]["prompt_tokens"], total);
    let requests = server.log.requests();
    assert_eq!(requests.len(), 3, "one engine request per input");
    assert!(requests.iter().all(|r| r.task
        == Task::Embed {
            pooling: Pooling::Last,
            normalize: false
        }));

    let (status, body) = post(&server, json!({"model": MODEL, "input": [5, 6, 7]})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        floats(&body["data"][0]["embedding"]),
        scripted_embedding(&[5, 6, 7])
    );
    let (status, body) = post(&server, json!({"model": MODEL, "input": [[5, 6], [9]]})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        floats(&body["data"][1]["embedding"]),
        scripted_embedding(&[9])
    );
    assert_eq!(body["usage"]["prompt_tokens"], 3);
}

#[tokio::test]
async fn base64_encodes_little_endian_f32() {
    let server = TestServer::start(Script::text("unused")).await;
    let (status, body) = post(
        &server,
        json!({"model": MODEL, "input": [[11, 12, 13]], "encoding_format": "base64"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let text = body["data"][0]["embedding"]
        .as_str()
        .expect("a base64 string");
    assert_eq!(decode_base64(text), scripted_embedding(&[11, 12, 13]));
}

#[tokio::test]
async fn bad_inputs_are_refused_with_the_parameter_named() {
    let server = TestServer::start(Script::text("unused")).await;
    let context = crate::support::smollm2_card().context_length as usize;
    let cases = [
        (
            json!({"model": MODEL, "input": ""}),
            "input",
            "empty string",
        ),
        (json!({"model": MODEL, "input": []}), "input", "empty list"),
        (
            json!({"model": MODEL, "input": ["a", ""]}),
            "input[1]",
            "empty string",
        ),
        (
            json!({"model": MODEL, "input": [[1], []]}),
            "input[1]",
            "is empty",
        ),
        (
            json!({"model": MODEL, "input": [1, -2]}),
            "input",
            "not a token id",
        ),
        (
            json!({"model": MODEL, "input": [1, "a"]}),
            "input",
            "must be a string",
        ),
        (
            json!({"model": MODEL, "input": 7}),
            "input",
            "must be a string",
        ),
        (
            json!({"model": MODEL, "input": [[999999]]}),
            "input[0]",
            "outside the vocabulary",
        ),
        (
            json!({"model": MODEL, "input": "x", "dimensions": 64}),
            "dimensions",
            "this model's embeddings have 576 dimensions",
        ),
        (
            json!({"model": MODEL, "input": "x", "encoding_format": "int8"}),
            "encoding_format",
            "\"float\" or \"base64\"",
        ),
        (
            json!({"model": MODEL, "input": "x", "pooling": "cls"}),
            "pooling",
            "\"mean\" or \"last\"",
        ),
    ];
    for (body, param, needle) in cases {
        let (status, answer) = post(&server, body.clone()).await;
        assert_eq!(status, 400, "{body} -> {answer}");
        assert_eq!(answer["error"]["param"], param, "{body} -> {answer}");
        let message = answer["error"]["message"].as_str().expect("message");
        assert!(message.contains(needle), "{body} -> {message}");
    }
    let (status, answer) = post(
        &server,
        json!({"model": MODEL, "input": [vec![5u32; context]]}),
    )
    .await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(answer["error"]["code"], "context_length_exceeded");
    let (status, answer) = post(&server, json!({"model": "nope", "input": "x"})).await;
    assert_eq!(status, 404, "{answer}");
    assert!(
        server.log.requests().is_empty(),
        "no refused request reached the backend"
    );
}

#[tokio::test]
async fn a_backend_refusal_is_a_400_and_embedded_inputs_are_counted() {
    let server = TestServer::start(Script::text("unused")).await;
    let (status, _) = post(&server, json!({"model": MODEL, "input": ["a", "b"]})).await;
    assert_eq!(status, 200);
    let (status, _) = post(&server, json!({"model": MODEL, "input": "c"})).await;
    assert_eq!(status, 200);
    let metrics = server
        .get("/metrics")
        .await
        .text()
        .await
        .expect("metrics text");
    assert!(
        metrics.contains(&format!(
            "rotor_frontend_embeddings_total{{model=\"{MODEL}\"}} 3"
        )),
        "{metrics}"
    );

    let mut script = Script::text("unused");
    script.refuse = Some(rotor_protocol::WireError::new(
        rotor_protocol::ErrorKind::InvalidRequest,
        "this engine does not support embeddings",
    ));
    let server = TestServer::start(script).await;
    let (status, answer) = post(&server, json!({"model": MODEL, "input": "a"})).await;
    assert_eq!(status, 400, "{answer}");
    assert!(answer["error"]["message"]
        .as_str()
        .expect("message")
        .contains("does not support embeddings"));
}

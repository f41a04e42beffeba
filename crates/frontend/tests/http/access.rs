//! Who may call and how answers are labelled: API keys (401 in OpenAI's shapes, open routes,
//! `rotor_frontend_auth_rejected_total`), CORS for allowed browser origins, and `x-request-id`.

use std::time::Duration;

use rotor_frontend::{AllowedOrigins, ApiKeys, FrontendConfig};
use serde_json::{json, Value};

use crate::support::{chat_body, smollm2_card, sse_chunks, Script, TestServer, MODEL};

fn with_keys(keys: &[&str]) -> FrontendConfig {
    FrontendConfig {
        api_keys: ApiKeys::new(keys.iter().copied()).expect("keys"),
        ..FrontendConfig::default()
    }
}

async fn server_with(config: FrontendConfig) -> TestServer {
    TestServer::start_with(Script::text("ok"), smollm2_card(), config).await
}

fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// Asserts a 401 in OpenAI's shape with `WWW-Authenticate`; returns the error object.
async fn expect_401(resp: reqwest::Response, code: Option<&str>) -> Value {
    assert_eq!(resp.status(), 401);
    let challenge = resp.headers()["www-authenticate"]
        .to_str()
        .expect("ascii")
        .to_string();
    assert!(challenge.starts_with("Bearer"), "{challenge}");
    let body: Value = resp.json().await.expect("401 body is JSON");
    let error = &body["error"];
    assert_eq!(error["type"], "invalid_request_error", "{body}");
    assert_eq!(error["param"], Value::Null, "{body}");
    assert_eq!(error["code"].as_str(), code, "{body}");
    assert!(
        error["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    error.clone()
}

#[tokio::test]
async fn keys_guard_every_route_but_the_open_ones() {
    let server = server_with(with_keys(&["sk-one", "sk-two"])).await;
    let client = &server.client;
    let chat = chat_body("Hi");

    // No credentials at all: OpenAI's "you didn't provide a key" (code null).
    let resp = server.post_json("/v1/chat/completions", &chat).await;
    let error = expect_401(resp, None).await;
    assert!(error["message"].as_str().unwrap().contains("Authorization"));
    assert_eq!(
        server.get("/v1/models").await.status(),
        401,
        "GET routes too"
    );
    // A wrong key, an empty bearer, another scheme: "invalid_api_key", and the key is not echoed.
    for (name, value) in [
        ("authorization", "Bearer sk-three"),
        ("authorization", "Bearer "),
        ("authorization", "Basic c2stb25lOg=="),
        ("x-api-key", "sk-onE"),
    ] {
        let resp = client
            .post(server.url("/v1/chat/completions"))
            .header(name, value)
            .json(&chat)
            .send()
            .await
            .expect("send");
        let error = expect_401(resp, Some("invalid_api_key")).await;
        assert!(!error.to_string().contains("sk-three"), "{error}");
    }
    assert!(
        server.log.requests().is_empty(),
        "refused requests never reach the backend"
    );

    // Either key, as a Bearer token (any case of the scheme) or as x-api-key.
    for (name, value) in [
        ("authorization", "Bearer sk-one"),
        ("authorization", "bearer sk-two"),
        ("x-api-key", "sk-two"),
    ] {
        let resp = client
            .post(server.url("/v1/chat/completions"))
            .header(name, value)
            .json(&chat)
            .send()
            .await
            .expect("send");
        assert_eq!(resp.status(), 200, "{name}: {value}");
        let body: Value = resp.json().await.expect("json");
        assert_eq!(body["choices"][0]["message"]["content"], "ok");
    }
    let resp = client
        .get(server.url(&format!("/v1/models/{MODEL}")))
        .bearer_auth("sk-one")
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), 200);

    // Open routes answer without a key; everything else, unknown paths included, does not.
    for path in ["/health", "/live", "/metrics", "/openapi.json"] {
        assert_eq!(server.get(path).await.status(), 200, "{path}");
    }
    for path in ["/v2/unknown", "/metrics/", "/v1/models/nope"] {
        assert_eq!(server.get(path).await.status(), 401, "{path}");
    }
    let resp = server
        .post_json("/tokenize", &json!({"prompt": "hi"}))
        .await;
    expect_401(resp, None).await;

    // 1 + 1 + 4 + 1 + 3 refusals so far.
    let text = server.get("/metrics").await.text().await.expect("metrics");
    assert_eq!(
        metric(&text, "rotor_frontend_auth_rejected_total"),
        Some(10.0),
        "{text}"
    );
    assert_eq!(
        metric(
            &text,
            "rotor_frontend_requests_total{endpoint=\"/v1/chat/completions\",status=\"401\"}"
        ),
        Some(5.0),
        "{text}"
    );
}

#[tokio::test]
async fn without_keys_nothing_is_checked() {
    let server = TestServer::start(Script::text("ok")).await;
    let resp = server
        .client
        .post(server.url("/v1/chat/completions"))
        .bearer_auth("anything")
        .json(&chat_body("Hi"))
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), 200);
    let text = server.get("/metrics").await.text().await.expect("metrics");
    assert_eq!(
        metric(&text, "rotor_frontend_auth_rejected_total"),
        Some(0.0)
    );
}

#[tokio::test]
async fn protected_metrics_need_the_key() {
    let config = FrontendConfig {
        protect_metrics: true,
        ..with_keys(&["sk-one"])
    };
    let server = server_with(config).await;
    expect_401(server.get("/metrics").await, None).await;
    let resp = server
        .client
        .get(server.url("/metrics"))
        .bearer_auth("sk-one")
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), 200);
    assert!(resp
        .text()
        .await
        .expect("text")
        .contains("rotor_frontend_auth_rejected_total 1\n"));
    assert_eq!(server.get("/health").await.status(), 200);
}

#[tokio::test]
async fn the_key_is_checked_before_the_body_is_read() {
    let config = FrontendConfig {
        body_limit_bytes: 1024,
        ..with_keys(&["sk-one"])
    };
    let server = server_with(config).await;
    let big = chat_body(&"x".repeat(4096));
    let resp = server.post_json("/v1/chat/completions", &big).await;
    expect_401(resp, None).await;
    let resp = server
        .client
        .post(server.url("/v1/chat/completions"))
        .bearer_auth("sk-one")
        .json(&big)
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), 413);
    let body: Value = resp.json().await.expect("413 body is JSON");
    assert_eq!(body["error"]["code"], "request_too_large", "{body}");
}

fn preflight(server: &TestServer, origin: &str) -> reqwest::RequestBuilder {
    server
        .client
        .request(reqwest::Method::OPTIONS, server.url("/v1/chat/completions"))
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization,content-type,x-api-key,x-request-id",
        )
}

fn header(resp: &reqwest::Response, name: &str) -> Option<String> {
    resp.headers()
        .get(name)
        .map(|v| v.to_str().expect("ascii").to_ascii_lowercase())
}

#[tokio::test]
async fn cors_answers_preflights_of_allowed_origins_before_the_key_check() {
    let config = FrontendConfig {
        allowed_origins: Some(
            AllowedOrigins::parse(&["https://app.example.com", "http://localhost:3000"])
                .expect("origins"),
        ),
        ..with_keys(&["sk-one"])
    };
    let server = server_with(config).await;

    // A preflight carries no credentials and is answered anyway.
    let resp = preflight(&server, "https://app.example.com")
        .send()
        .await
        .expect("send");
    assert!(resp.status().is_success(), "{}", resp.status());
    assert_eq!(
        header(&resp, "access-control-allow-origin").as_deref(),
        Some("https://app.example.com")
    );
    let methods = header(&resp, "access-control-allow-methods").expect("allow-methods");
    assert!(
        methods.contains("post") && methods.contains("get"),
        "{methods}"
    );
    let allowed = header(&resp, "access-control-allow-headers").expect("allow-headers");
    for name in ["authorization", "content-type", "x-api-key", "x-request-id"] {
        assert!(allowed.contains(name), "{name} in {allowed}");
    }
    assert!(header(&resp, "access-control-max-age").is_some());
    assert!(header(&resp, "vary").is_some_and(|v| v.contains("origin")));

    // An origin not on the list gets no Allow-Origin, so the browser blocks the call.
    let resp = preflight(&server, "https://evil.example")
        .send()
        .await
        .expect("send");
    assert_eq!(header(&resp, "access-control-allow-origin"), None);

    // Real answers to an allowed origin carry Allow-Origin and expose the id and Retry-After,
    // errors (here a 401) included, so the page can read them.
    let resp = server
        .client
        .post(server.url("/v1/chat/completions"))
        .header("origin", "http://localhost:3000")
        .json(&chat_body("Hi"))
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), 401);
    assert_eq!(
        header(&resp, "access-control-allow-origin").as_deref(),
        Some("http://localhost:3000")
    );
    let exposed = header(&resp, "access-control-expose-headers").expect("expose");
    assert!(
        exposed.contains("x-request-id") && exposed.contains("retry-after"),
        "{exposed}"
    );
    let resp = server
        .client
        .post(server.url("/v1/chat/completions"))
        .header("origin", "https://app.example.com")
        .bearer_auth("sk-one")
        .json(&chat_body("Hi"))
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), 200);
    assert_eq!(
        header(&resp, "access-control-allow-origin").as_deref(),
        Some("https://app.example.com")
    );
    assert_eq!(header(&resp, "access-control-allow-credentials"), None);
}

#[tokio::test]
async fn cors_any_origin_and_none_by_default() {
    let any = FrontendConfig {
        allowed_origins: Some(AllowedOrigins::Any),
        ..FrontendConfig::default()
    };
    let server = server_with(any).await;
    let resp = preflight(&server, "https://anywhere.example")
        .send()
        .await
        .expect("send");
    assert_eq!(
        header(&resp, "access-control-allow-origin").as_deref(),
        Some("*")
    );

    let server = TestServer::start(Script::text("ok")).await;
    let resp = preflight(&server, "https://app.example.com")
        .send()
        .await
        .expect("send");
    for name in [
        "access-control-allow-origin",
        "access-control-allow-methods",
        "access-control-allow-headers",
    ] {
        assert_eq!(header(&resp, name), None, "{name}");
    }
    // Not answered as a preflight: OPTIONS is not a method of the route (405 JSON).
    assert_eq!(resp.status(), 405);
    let resp = server
        .client
        .get(server.url("/v1/models"))
        .header("origin", "https://app.example.com")
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "access-control-allow-origin"), None);
}

fn request_id(resp: &reqwest::Response) -> String {
    resp.headers()["x-request-id"]
        .to_str()
        .expect("ascii")
        .to_string()
}

fn is_generated(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

#[tokio::test]
async fn request_id_is_echoed_and_names_the_generation() {
    let server = TestServer::start(Script::text("ok")).await;
    let send = |id: Option<&str>, body: Value| {
        let mut req = server
            .client
            .post(server.url("/v1/chat/completions"))
            .json(&body);
        if let Some(id) = id {
            req = req.header("x-request-id", id);
        }
        req.send()
    };

    // A client id comes back as sent; the completion and the backend request are named after it.
    let resp = send(Some("trace-42/a b"), chat_body("Hi"))
        .await
        .expect("send");
    assert_eq!(request_id(&resp), "trace-42/a b");
    let body: Value = resp.json().await.expect("json");
    let id = body["id"].as_str().expect("id").to_string();
    assert!(id.starts_with("chatcmpl-trace-42/a b-"), "{id}");
    assert_eq!(server.log.last_request().id, id);

    // The same client id twice still gives the backend distinct ids.
    let again: Value = send(Some("trace-42/a b"), chat_body("Hi"))
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert_ne!(again["id"], body["id"]);

    // Without one, or with an unusable one, an id is generated and returned.
    for sent in [None, Some("x".repeat(129)), Some("tab\tinside".to_string())] {
        let resp = send(sent.as_deref(), chat_body("Hi")).await.expect("send");
        let got = request_id(&resp);
        assert!(is_generated(&got), "{sent:?} -> {got}");
        let body: Value = resp.json().await.expect("json");
        assert_eq!(body["id"], format!("chatcmpl-{got}"));
    }
    let longest = "y".repeat(128);
    let resp = send(Some(&longest), chat_body("Hi")).await.expect("send");
    assert_eq!(request_id(&resp), longest);

    // Streams, text completions and errors carry it too.
    let mut streaming = chat_body("Hi");
    streaming["stream"] = json!(true);
    let resp = send(Some("sse-1"), streaming).await.expect("send");
    assert_eq!(request_id(&resp), "sse-1");
    let chunks = sse_chunks(&resp.text().await.expect("body"));
    assert!(chunks
        .iter()
        .all(|c| c["id"].as_str().unwrap().starts_with("chatcmpl-sse-1-")));
    let resp = server
        .client
        .post(server.url("/v1/completions"))
        .header("x-request-id", "cmpl-req")
        .json(&json!({"model": MODEL, "prompt": "Hi"}))
        .send()
        .await
        .expect("send");
    assert_eq!(request_id(&resp), "cmpl-req");
    let body: Value = resp.json().await.expect("json");
    assert!(body["id"].as_str().unwrap().starts_with("cmpl-cmpl-req-"));
    let resp = send(Some("bad-1"), json!({"model": "nope", "messages": []}))
        .await
        .expect("send");
    assert_eq!(resp.status(), 404);
    assert_eq!(request_id(&resp), "bad-1");
    let resp = server.get("/no/such/route").await;
    assert!(is_generated(&request_id(&resp)));
    let resp = server.get("/health").await;
    assert!(is_generated(&request_id(&resp)));
}

#[tokio::test]
async fn refusals_carry_the_request_id() {
    let server = server_with(with_keys(&["sk-one"])).await;
    let resp = tokio::time::timeout(
        Duration::from_secs(10),
        server
            .client
            .get(server.url("/v1/models"))
            .header("x-request-id", "who-am-i")
            .send(),
    )
    .await
    .expect("answered")
    .expect("send");
    assert_eq!(resp.status(), 401);
    assert_eq!(request_id(&resp), "who-am-i");
}

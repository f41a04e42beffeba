//! An in-test OpenAI-style SSE server with known timing: the first text chunk after
//! `ttft`, then one token per `itl`, then a usage chunk and `[DONE]`. Every fourth request
//! (arrival 3, 7, ...) is refused with 503, and arrival 5 breaks off with an error event.
//! /metrics reports prefix-cache counters that grow by (30 hit, 120 queried) per scrape.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

#[derive(Clone)]
pub struct FakeConfig {
    pub ttft: Duration,
    pub itl: Duration,
    pub fail_every_fourth: bool,
}

#[derive(Default)]
pub struct Seen {
    pub bodies: Mutex<Vec<Value>>,
    arrivals: AtomicUsize,
    scrapes: AtomicUsize,
}

#[derive(Clone)]
struct AppState {
    config: FakeConfig,
    seen: Arc<Seen>,
}

pub struct FakeServer {
    pub addr: SocketAddr,
    pub seen: Arc<Seen>,
    stop: CancellationToken,
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl FakeServer {
    pub async fn start(config: FakeConfig) -> FakeServer {
        let seen = Arc::new(Seen::default());
        let app = Router::new()
            .route("/v1/models", get(models))
            .route("/v1/completions", post(generate))
            .route("/v1/chat/completions", post(generate))
            .route("/metrics", get(metrics))
            .with_state(AppState {
                config,
                seen: seen.clone(),
            });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = CancellationToken::new();
        let shutdown = stop.clone();
        tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move { shutdown.cancelled().await })
                .await
                .unwrap();
        });
        FakeServer { addr, seen, stop }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

async fn models() -> Json<Value> {
    Json(
        json!({"object": "list", "data": [{"id": "fake-model", "object": "model", "created": 0, "owned_by": "test"}]}),
    )
}

async fn metrics(State(state): State<AppState>) -> String {
    let n = state.seen.scrapes.fetch_add(1, Ordering::SeqCst) as u64;
    format!(
        "# TYPE rotor_kv_cache_prefix_hit_tokens_total counter\n\
         rotor_kv_cache_prefix_hit_tokens_total{{model=\"fake-model\"}} {}\n\
         rotor_kv_cache_prefix_queries_tokens_total{{model=\"fake-model\"}} {}\n",
        30 * n,
        120 * n
    )
}

fn sse(value: &Value) -> Bytes {
    Bytes::from(format!("data: {value}\n\n"))
}

async fn generate(State(state): State<AppState>, Json(body): Json<Value>) -> Response {
    let arrival = state.seen.arrivals.fetch_add(1, Ordering::SeqCst);
    state.seen.bodies.lock().unwrap().push(body.clone());
    let fail = state.config.fail_every_fourth;
    if fail && arrival % 4 == 3 {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "{\"error\":{\"message\":\"busy\"}}",
        )
            .into_response();
    }
    let break_off = fail && arrival == 5;
    let chat = body.get("messages").is_some();
    let n = body["max_tokens"].as_u64().unwrap_or(1) as usize;
    let prompt_tokens = match &body["prompt"] {
        Value::Array(ids) => ids.len(),
        Value::String(text) => text.split(' ').count(), // one token per word
        _ => 3,
    };
    let (ttft, itl) = (state.config.ttft, state.config.itl);
    let mut events: Vec<(Duration, Bytes)> = Vec::new();
    if chat {
        events.push((
            Duration::ZERO,
            sse(&json!({"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]})),
        ));
    }
    for i in 0..n {
        let delay = if i == 0 { ttft } else { itl };
        let chunk = if chat {
            json!({"choices": [{"index": 0, "delta": {"content": "tok "}, "finish_reason": null}]})
        } else {
            json!({"choices": [{"index": 0, "text": "tok ", "finish_reason": null}]})
        };
        events.push((delay, sse(&chunk)));
        if break_off {
            events.push((
                Duration::ZERO,
                sse(&json!({"error": {"message": "engine stopped"}})),
            ));
            break;
        }
    }
    events.push((Duration::ZERO, Bytes::from_static(b": keep-alive\n\n")));
    events.push((
        Duration::ZERO,
        sse(&json!({"choices": [], "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": n,
                     "total_tokens": prompt_tokens + n, "prompt_tokens_details": {"cached_tokens": 7}}})),
    ));
    events.push((Duration::ZERO, Bytes::from_static(b"data: [DONE]\n\n")));
    let stream = futures::stream::unfold(events.into_iter(), |mut it| async move {
        let (delay, bytes) = it.next()?;
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        Some((Ok::<_, Infallible>(bytes), it))
    });
    Response::builder()
        .header(header::CONTENT_TYPE, "text/event-stream")
        .body(Body::from_stream(stream))
        .unwrap()
}

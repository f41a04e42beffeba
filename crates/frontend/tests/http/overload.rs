//! Overload protection: with busy thresholds set, a model whose every worker is busy answers
//! 503 with `Retry-After` and OpenAI's error JSON, without reaching the backend; figures are in
//! /metrics. Both for a one-engine backend reporting its own load and for `RoutedBackend` (the
//! router of `rotor frontend` and `rotor serve --num-workers`) fed load reports.

use std::sync::{Arc, Mutex};

use rotor_frontend::{
    Backend, BusyThresholds, Frontend, FrontendConfig, OutputStream, RoutedBackend, RoutingConfig,
    ServedModel,
};
use rotor_protocol::{GenerateRequest, LoadReport, WireError, WorkerLoad};
use serde_json::Value;

use crate::support::{chat_body, smollm2_card, BackendLog, Script, ScriptedBackend, TestServer};

/// A scripted backend whose load the test sets, as an in-process engine reports its own.
struct LoadedBackend {
    inner: ScriptedBackend,
    load: Arc<Mutex<Option<WorkerLoad>>>,
}

impl Backend for LoadedBackend {
    fn generate(&self, req: GenerateRequest) -> Result<OutputStream, WireError> {
        self.inner.generate(req)
    }

    fn worker_loads(&self) -> Vec<Option<WorkerLoad>> {
        vec![*self.load.lock().expect("load lock")]
    }
}

fn load(active_blocks: u64, waiting: u64) -> WorkerLoad {
    WorkerLoad {
        active_blocks,
        total_blocks: 100,
        waiting,
        running: 4,
    }
}

fn thresholds(kv_usage: Option<f64>, waiting_requests: Option<u64>) -> FrontendConfig {
    FrontendConfig {
        busy: BusyThresholds {
            kv_usage,
            waiting_requests,
        },
        ..FrontendConfig::default()
    }
}

async fn start(
    config: FrontendConfig,
    backend: Arc<dyn Backend>,
    log: Arc<BackendLog>,
) -> TestServer {
    let frontend = Frontend::new(config);
    frontend
        .add_model(ServedModel {
            card: smollm2_card(),
            backend,
        })
        .expect("add model");
    TestServer::start_frontend(frontend, log).await
}

async fn loaded_server(config: FrontendConfig) -> (TestServer, Arc<Mutex<Option<WorkerLoad>>>) {
    let log = Arc::new(BackendLog::default());
    let slot = Arc::new(Mutex::new(None));
    let backend = LoadedBackend {
        inner: ScriptedBackend {
            script: Script::text("ok"),
            log: Arc::clone(&log),
        },
        load: Arc::clone(&slot),
    };
    (start(config, Arc::new(backend), log).await, slot)
}

/// Asserts the overload answer; returns the error object.
async fn expect_503(resp: reqwest::Response) -> Value {
    assert_eq!(resp.status(), 503);
    assert_eq!(resp.headers()["retry-after"], "1");
    let body: Value = resp.json().await.expect("JSON body");
    assert_eq!(body["error"]["type"], "server_error", "{body}");
    assert_eq!(body["error"]["code"], "overloaded", "{body}");
    assert_eq!(body["error"]["param"], Value::Null, "{body}");
    assert!(body["error"]["message"]
        .as_str()
        .is_some_and(|m| m.contains("busy")));
    body
}

fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

async fn chat_status(server: &TestServer) -> reqwest::Response {
    server
        .post_json("/v1/chat/completions", &chat_body("Hi"))
        .await
}

#[tokio::test]
async fn busy_worker_gets_503_with_retry_after() {
    let (server, slot) = loaded_server(thresholds(Some(0.9), Some(2))).await;
    // No figure yet: free.
    assert_eq!(chat_status(&server).await.status(), 200);
    *slot.lock().unwrap() = Some(load(89, 2));
    assert_eq!(chat_status(&server).await.status(), 200, "below both");
    *slot.lock().unwrap() = Some(load(90, 0));
    expect_503(chat_status(&server).await).await;
    *slot.lock().unwrap() = Some(load(0, 3));
    let resp = server
        .post_json(
            "/v1/completions",
            &serde_json::json!({"model": "smollm2", "prompt": "Hi", "stream": true}),
        )
        .await;
    expect_503(resp).await;
    assert_eq!(
        server.log.requests().len(),
        2,
        "refusals never reach the backend"
    );
    // Bad input is still a 400, never a 503.
    let resp = server
        .post_json(
            "/v1/chat/completions",
            &serde_json::json!({"model": "nope", "messages": []}),
        )
        .await;
    assert_eq!(resp.status(), 404);

    *slot.lock().unwrap() = Some(load(10, 0));
    assert_eq!(chat_status(&server).await.status(), 200, "recovered");
    let text = server.get("/metrics").await.text().await.expect("metrics");
    assert_eq!(
        metric(
            &text,
            "rotor_frontend_overload_rejected_total{model=\"smollm2\"}"
        ),
        Some(2.0),
        "{text}"
    );
    assert_eq!(metric(&text, "rotor_frontend_busy_kv_threshold"), Some(0.9));
    assert_eq!(
        metric(&text, "rotor_frontend_busy_queue_threshold"),
        Some(2.0)
    );
    assert_eq!(
        metric(
            &text,
            "rotor_frontend_requests_total{endpoint=\"/v1/chat/completions\",status=\"503\"}"
        ),
        Some(1.0)
    );
}

#[tokio::test]
async fn without_thresholds_nothing_is_refused() {
    let (server, slot) = loaded_server(FrontendConfig::default()).await;
    *slot.lock().unwrap() = Some(load(100, 1000));
    assert_eq!(chat_status(&server).await.status(), 200);
    let text = server.get("/metrics").await.text().await.expect("metrics");
    assert!(
        !text.contains("\nrotor_frontend_busy_kv_threshold "),
        "{text}"
    );
    assert!(
        !text.contains("\nrotor_frontend_busy_queue_threshold "),
        "{text}"
    );
    assert!(text.contains("# TYPE rotor_frontend_overload_rejected_total counter\n"));
}

#[tokio::test]
async fn routed_model_is_refused_only_when_every_worker_is_busy() {
    let log = Arc::new(BackendLog::default());
    let routed =
        RoutedBackend::for_card(&smollm2_card(), &RoutingConfig::default()).expect("routed");
    for worker in [1, 2] {
        routed.add_worker(
            worker,
            Arc::new(ScriptedBackend {
                script: Script::text("ok"),
                log: Arc::clone(&log),
            }),
        );
    }
    let server = start(thresholds(None, Some(0)), Arc::new(routed.clone()), log).await;
    let report = |worker_id, waiting| {
        routed.update_load(&LoadReport {
            worker_id,
            load: load(0, waiting),
        })
    };
    // Worker 2 has not reported: it counts as free.
    report(1, 5);
    assert_eq!(chat_status(&server).await.status(), 200);
    report(2, 1);
    expect_503(chat_status(&server).await).await;
    report(1, 0);
    assert_eq!(
        chat_status(&server).await.status(),
        200,
        "one free worker is enough"
    );
    // Only the workers still serving count: without the free one, the busy one decides.
    routed.remove_worker(1);
    expect_503(chat_status(&server).await).await;
    report(2, 0);
    assert_eq!(chat_status(&server).await.status(), 200);
    let text = server.get("/metrics").await.text().await.expect("metrics");
    assert_eq!(
        metric(
            &text,
            "rotor_frontend_overload_rejected_total{model=\"smollm2\"}"
        ),
        Some(2.0)
    );
}

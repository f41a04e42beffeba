//! The frontend over real request-plane servers: models found through (in-memory) discovery,
//! KV events from the in-process event plane, and migration when a worker's server dies.

mod routing_support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::{stream, StreamExt};
use rotor_frontend::{
    Backend, Frontend, FrontendConfig, ModelWatcher, ModelWatcherConfig, RemoteWorker,
    RoutedBackend, RouterMode, RoutingConfig,
};
use rotor_protocol::worker::{
    decode_request, encode_output, DEFAULT_COMPONENT, DEFAULT_NAMESPACE, GENERATE_ENDPOINT,
    KV_EVENTS_TOPIC,
};
use rotor_protocol::{
    EngineOutput, ErrorKind, FinishReason, GenerateRequest, KvEvent, KvEventData, StoredBlock,
    WireError,
};
use rotor_runtime::event_plane::{InProcessEventPlane, KvEventPublisher};
use rotor_runtime::request_plane::ResponseChunks;
use rotor_runtime::{
    Discovery, DiscoveryConfig, EndpointPath, EventPlane, EventSubject, Instance, RequestContext,
    RequestPlaneConfig, RequestPlaneServer, StreamHandler,
};
use serde_json::json;

use routing_support::{
    decode, drain, expected_tokens, metric, request, smollm2_card, HttpServer, MODEL,
};

/// Speaks the worker protocol: each request gets `token_at` of its positions, one per output;
/// with `hang_after`, the stream stops producing after that many outputs (a stuck worker).
struct PositionalHandler {
    requests: Arc<Mutex<Vec<GenerateRequest>>>,
    hang_after: Option<usize>,
}

impl StreamHandler for PositionalHandler {
    fn handle(&self, payload: Bytes, _ctx: RequestContext) -> ResponseChunks {
        let req = match decode_request(&payload) {
            Ok(req) => req,
            Err(error) => {
                let error = WireError::new(ErrorKind::InvalidRequest, error.to_string());
                return stream::iter([Err(error)]).boxed();
            }
        };
        self.requests.lock().expect("log").push(req.clone());
        let prompt_len = req.token_ids.len();
        let max_tokens = req.stop.max_tokens as usize;
        let outputs = expected_tokens(prompt_len, max_tokens)
            .into_iter()
            .enumerate()
            .map(move |(i, token)| {
                let output = EngineOutput {
                    prompt_logprobs: None,
                    embedding: None,
                    token_ids: vec![token].into(),
                    finish_reason: (i + 1 == max_tokens).then_some(FinishReason::Length),
                    cached_prompt_tokens: None,
                    logprobs: None,
                };
                Ok(Bytes::from(encode_output(&output)))
            });
        let outputs = stream::iter(outputs);
        match self.hang_after {
            Some(count) => outputs.take(count).chain(stream::pending()).boxed(),
            None => outputs.boxed(),
        }
    }
}

struct TestWorker {
    server: RequestPlaneServer,
    address: String,
    requests: Arc<Mutex<Vec<GenerateRequest>>>,
}

async fn worker(hang_after: Option<usize>) -> TestWorker {
    let (server, addr) = RequestPlaneServer::bind("127.0.0.1:0", RequestPlaneConfig::default())
        .await
        .expect("bind request plane");
    let requests = Arc::new(Mutex::new(Vec::new()));
    server.register(
        GENERATE_ENDPOINT,
        Arc::new(PositionalHandler {
            requests: Arc::clone(&requests),
            hang_after,
        }),
    );
    TestWorker {
        server,
        address: addr.to_string(),
        requests,
    }
}

fn generate_path() -> EndpointPath {
    EndpointPath::new(DEFAULT_NAMESPACE, DEFAULT_COMPONENT, GENERATE_ENDPOINT).expect("path")
}

async fn mem_discovery() -> Arc<dyn Discovery> {
    DiscoveryConfig::parse("mem")
        .expect("spec")
        .connect()
        .await
        .expect("mem discovery")
}

fn model_ids(body: &str) -> Vec<String> {
    let list: serde_json::Value = serde_json::from_str(body).expect("models JSON");
    list["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|m| m["id"].as_str().expect("id").to_string())
        .collect()
}

#[tokio::test]
async fn a_registered_worker_brings_its_model_and_takes_it_away() {
    let discovery = mem_discovery().await;
    let frontend = Frontend::new(FrontendConfig::default());
    let watcher = ModelWatcher::start(
        frontend.clone(),
        Arc::clone(&discovery),
        None,
        ModelWatcherConfig::default(),
    )
    .await
    .expect("watcher");
    let server = HttpServer::start(frontend).await;
    assert!(model_ids(&server.get_text("/v1/models").await).is_empty());

    let worker = worker(None).await;
    let registration = discovery
        .register(Instance::new(generate_path(), worker.address.clone()))
        .await
        .expect("register");
    registration
        .put_model_card(&smollm2_card())
        .await
        .expect("card");
    server
        .wait_for("/v1/models", "the model to appear", |body| {
            model_ids(body) == [MODEL]
        })
        .await;

    let resp = server
        .post(
            "/v1/completions",
            &json!({"model": MODEL, "prompt": [10, 11, 12], "max_tokens": 5}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let body: serde_json::Value = resp.json().await.expect("json");
    assert_eq!(body["choices"][0]["text"], decode(&expected_tokens(3, 5)));
    assert_eq!(body["usage"]["completion_tokens"], 5);
    let seen = worker.requests.lock().expect("log").clone();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].token_ids, vec![10, 11, 12]);

    registration.deregister().await.expect("deregister");
    server
        .wait_for("/v1/models", "the model to disappear", |body| {
            model_ids(body).is_empty()
        })
        .await;
    let resp = server
        .post(
            "/v1/completions",
            &json!({"model": MODEL, "prompt": [10], "max_tokens": 1}),
        )
        .await;
    assert_eq!(resp.status(), 404);
    watcher.stop().await;
    worker.server.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn kv_events_on_the_event_plane_steer_a_shared_prefix() {
    let discovery = mem_discovery().await;
    let plane: Arc<dyn EventPlane> = Arc::new(InProcessEventPlane::default());
    let frontend = Frontend::new(FrontendConfig::default());
    let config = ModelWatcherConfig {
        routing: RoutingConfig {
            mode: RouterMode::Kv,
            ..RoutingConfig::default()
        },
        ..ModelWatcherConfig::default()
    };
    let watcher = ModelWatcher::start(
        frontend.clone(),
        Arc::clone(&discovery),
        Some(Arc::clone(&plane)),
        config,
    )
    .await
    .expect("watcher");
    let server = HttpServer::start(frontend).await;

    let workers = [worker(None).await, worker(None).await];
    let mut registrations = Vec::new();
    for worker in &workers {
        let registration = discovery
            .register(Instance::new(generate_path(), worker.address.clone()))
            .await
            .expect("register");
        registration
            .put_model_card(&smollm2_card())
            .await
            .expect("card");
        registrations.push(registration);
    }
    let routable = format!("rotor_frontend_routable_workers{{model=\"{MODEL}\"}}");
    server
        .wait_for("/metrics", "both workers to join", |body| {
            metric(body, &routable) == Some(2.0)
        })
        .await;

    // The worker with the higher id caches the prefix, so the tie-break cannot pick it by chance.
    let holder = registrations
        .iter()
        .map(|r| r.instance_id())
        .max()
        .expect("two");
    let prefix: Vec<u32> = (100..112).collect();
    let blocks = rotor_tokens::sequence_hashes(&prefix, 4)
        .into_iter()
        .zip(rotor_tokens::local_block_hashes(&prefix, 4))
        .map(|(block_hash, tokens_hash)| StoredBlock {
            block_hash,
            tokens_hash,
        })
        .collect();
    let subject =
        EventSubject::new(DEFAULT_NAMESPACE, DEFAULT_COMPONENT, KV_EVENTS_TOPIC).expect("subject");
    KvEventPublisher::new(Arc::clone(&plane), subject, holder.0)
        .publish(KvEvent {
            event_id: 0,
            data: KvEventData::stored(None, blocks),
        })
        .await
        .expect("publish");
    let applied = format!("rotor_frontend_kv_router_events_applied_total{{model=\"{MODEL}\"}}");
    server
        .wait_for("/metrics", "the KV event to be applied", |body| {
            metric(body, &applied) == Some(1.0)
        })
        .await;

    let mut prompt = prefix.clone();
    prompt.extend([1000, 1001, 1002]);
    let resp = server
        .post(
            "/v1/completions",
            &json!({"model": MODEL, "prompt": prompt, "max_tokens": 2}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let index = registrations
        .iter()
        .position(|r| r.instance_id() == holder)
        .expect("holder");
    assert_eq!(workers[index].requests.lock().expect("log").len(), 1);
    assert_eq!(workers[1 - index].requests.lock().expect("log").len(), 0);
    let metrics = server.get_text("/metrics").await;
    assert_eq!(
        metric(
            &metrics,
            &format!("rotor_frontend_kv_router_hit_blocks_total{{model=\"{MODEL}\"}}")
        ),
        Some(3.0),
        "{metrics}"
    );
    watcher.stop().await;
}

#[tokio::test]
async fn a_request_survives_its_worker_server_dying() {
    let routing = RoutingConfig {
        mode: RouterMode::RoundRobin,
        ..RoutingConfig::default()
    };
    let routed = RoutedBackend::for_card(&smollm2_card(), &routing).expect("routed");
    let stuck = worker(Some(3)).await;
    let healthy = worker(None).await;
    let config = RequestPlaneConfig::default();
    routed.add_worker(
        1,
        Arc::new(RemoteWorker::new(stuck.address.clone(), config)),
    );
    routed.add_worker(
        2,
        Arc::new(RemoteWorker::new(healthy.address.clone(), config)),
    );

    let prompt = vec![7, 8, 9, 10];
    let mut outputs = routed
        .generate(request("r", prompt.clone(), 8))
        .expect("start");
    let mut tokens = Vec::new();
    while tokens.len() < 3 {
        let output = outputs.next().await.expect("open").expect("output");
        tokens.extend(output.token_ids);
    }
    drop(stuck.server); // the worker process "dies": its connections close
    let (rest, error) = drain(outputs).await;
    assert!(error.is_none(), "{error:?}");
    tokens.extend(rest);
    assert_eq!(tokens, expected_tokens(prompt.len(), 8));
    let resent = healthy.requests.lock().expect("log").clone();
    assert_eq!(resent.len(), 1);
    let mut expected_prompt = prompt.clone();
    expected_prompt.extend(expected_tokens(prompt.len(), 3));
    assert_eq!(resent[0].token_ids, expected_prompt);
    assert_eq!(resent[0].stop.max_tokens, 5);
    assert_eq!(routed.migrations(), 1);
}

#[tokio::test]
async fn an_unreachable_worker_is_disconnected() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = listener.local_addr().expect("addr").to_string();
    drop(listener);
    let remote = RemoteWorker::new(address, RequestPlaneConfig::default());
    let (tokens, error) = drain(remote.generate(request("r", vec![1], 2)).expect("lazy")).await;
    assert!(tokens.is_empty());
    assert_eq!(error.expect("an error").kind, ErrorKind::Disconnected);
}

//! Routing policies and migration over in-process fake workers: exact worker orders, the kv
//! choice from KV events, and migrated streams checked token by token through the HTTP server.

mod routing_support;

use std::sync::Arc;

use rotor_frontend::{
    Backend, Frontend, FrontendConfig, RoutedBackend, RouterMode, RoutingConfig, RoutingMetrics,
    ServedModel,
};
use rotor_protocol::{CacheTier, ErrorKind, KvEventData, LoadReport, WorkerLoad};
use serde_json::json;

use routing_support::{
    completion_text, decode, drain, expected_tokens, metric, request, smollm2_card, sse_payloads,
    stored_event, token_at, FakeWorker, Faults, HttpServer, RoutingLog, MODEL,
};

fn config(mode: RouterMode) -> RoutingConfig {
    RoutingConfig {
        mode,
        seed: Some(7),
        ..RoutingConfig::default()
    }
}

/// A routed backend over healthy fake workers with these ids.
fn pool(mode: RouterMode, ids: &[u64]) -> (RoutedBackend, Arc<RoutingLog>) {
    let routed = RoutedBackend::for_card(&smollm2_card(), &config(mode)).expect("routed");
    let log = Arc::new(RoutingLog::default());
    for id in ids {
        routed.add_worker(*id, FakeWorker::healthy(*id, &log));
    }
    (routed, log)
}

async fn run(routed: &RoutedBackend, id: &str, tokens: Vec<u32>) -> Vec<u32> {
    let (tokens, error) = drain(routed.generate(request(id, tokens, 2)).expect("start")).await;
    assert!(error.is_none(), "{error:?}");
    tokens
}

#[tokio::test]
async fn round_robin_visits_workers_in_id_order() {
    let (routed, log) = pool(RouterMode::RoundRobin, &[30, 10, 20]);
    for i in 0..7 {
        run(&routed, &format!("r{i}"), vec![5, 6, 7]).await;
    }
    assert_eq!(log.workers(), vec![10, 20, 30, 10, 20, 30, 10]);
}

#[tokio::test]
async fn random_reaches_every_worker() {
    let (routed, log) = pool(RouterMode::Random, &[1, 2, 3]);
    for i in 0..60 {
        run(&routed, &format!("r{i}"), vec![5]).await;
    }
    let workers = log.workers();
    for id in [1, 2, 3] {
        assert!(
            workers.contains(&id),
            "worker {id} never chosen: {workers:?}"
        );
    }
}

#[tokio::test]
async fn least_loaded_picks_the_idle_worker() {
    let (routed, log) = pool(RouterMode::LeastLoaded, &[1, 2]);
    // Held open and never polled: in flight on its worker until dropped.
    let held = routed.generate(request("held", vec![5], 4)).expect("start");
    let busy = log.workers()[0];
    let idle = if busy == 1 { 2 } else { 1 };
    for i in 0..4 {
        run(&routed, &format!("r{i}"), vec![5]).await;
    }
    assert_eq!(log.workers()[1..], [idle; 4]);
    drop(held);

    // Both idle now: the lower reported load wins the tie.
    routed.update_load(&LoadReport {
        worker_id: idle,
        load: WorkerLoad {
            waiting: 3,
            ..WorkerLoad::default()
        },
    });
    routed.update_load(&LoadReport {
        worker_id: busy,
        load: WorkerLoad::default(),
    });
    for i in 0..3 {
        run(&routed, &format!("t{i}"), vec![5]).await;
    }
    assert_eq!(log.workers()[5..], [busy; 3]);
}

#[tokio::test]
async fn kv_mode_credits_a_host_pool_block_to_every_worker_of_the_pool_with_tier_metrics() {
    let (routed, log) = pool(RouterMode::Kv, &[1, 2, 3]);
    let metrics = RoutingMetrics::default();
    metrics.add(&routed);
    // Workers 2 and 3 share one machine's G2 pool; worker 1 is on another host.
    routed.set_host_pool(2, Some("host-a/rotor-smollm2".into()));
    routed.set_host_pool(3, Some("host-a/rotor-smollm2".into()));
    let prompt: Vec<u32> = (100..117).collect();
    // Worker 2 offloaded the prompt's 4 blocks to the pool, then its engine evicted them.
    let mut host = stored_event(2, 0, &prompt, 4);
    if let KvEventData::Stored { tier, .. } = &mut host.event.data {
        *tier = CacheTier::Host;
    }
    routed.apply_kv_event(&host);
    // Worker 2 is busy: the pool's other worker gets the host credit, not worker 1.
    routed.update_load(&LoadReport {
        worker_id: 2,
        load: WorkerLoad {
            active_blocks: 40,
            total_blocks: 100,
            ..WorkerLoad::default()
        },
    });
    run(&routed, "returning", prompt).await;
    assert_eq!(log.workers(), vec![3]);

    let mut text = String::new();
    rotor_frontend::MetricsSource::render(&metrics, &mut text);
    let tier = |name: &str, tier: &str| format!("{name}{{model=\"{MODEL}\",tier=\"{tier}\"}}");
    let overlap = "rotor_frontend_kv_router_overlap_blocks_total";
    assert_eq!(metric(&text, &tier(overlap, "host")), Some(4.0), "{text}");
    assert_eq!(metric(&text, &tier(overlap, "device")), Some(0.0), "{text}");
    let indexed = "rotor_frontend_kv_router_indexed_blocks";
    assert_eq!(metric(&text, &tier(indexed, "host")), Some(4.0), "{text}");
    assert_eq!(metric(&text, &tier(indexed, "disk")), Some(0.0), "{text}");
}

#[tokio::test]
async fn kv_mode_routes_a_shared_prefix_to_the_worker_that_stored_it() {
    let (routed, log) = pool(RouterMode::Kv, &[1, 2, 3]);
    let metrics = RoutingMetrics::default();
    metrics.add(&routed);
    // Worker 2 cached the first three 4-token blocks of this prompt.
    let prefix: Vec<u32> = (100..112).collect();
    routed.apply_kv_event(&stored_event(2, 0, &prefix, 4));
    let mut shared = prefix.clone();
    shared.extend([7, 8, 9, 10, 11]);
    run(&routed, "shared", shared).await;
    // An unrelated prompt ties everywhere: the least-loaded tie-break takes the lowest id.
    run(&routed, "other", (500..517).collect()).await;
    assert_eq!(log.workers(), vec![2, 1]);

    let mut text = String::new();
    rotor_frontend::MetricsSource::render(&metrics, &mut text);
    let series = |name: &str| format!("{name}{{model=\"{MODEL}\"}}");
    assert_eq!(
        metric(&text, &series("rotor_frontend_kv_router_hit_blocks_total")),
        Some(3.0),
        "{text}"
    );
    assert_eq!(
        metric(
            &text,
            &series("rotor_frontend_kv_router_requested_blocks_total")
        ),
        Some(8.0),
        "{text}"
    );
    assert_eq!(
        metric(
            &text,
            &format!(
                "rotor_frontend_router_decisions_total{{model=\"{MODEL}\",worker=\"0000000000000002\"}}"
            )
        ),
        Some(1.0),
        "{text}"
    );
}

/// A frontend serving `routed` (and its routing metrics) over HTTP.
async fn http(routed: &RoutedBackend) -> HttpServer {
    let frontend = Frontend::new(FrontendConfig::default());
    let metrics = Arc::new(RoutingMetrics::default());
    metrics.add(routed);
    frontend.metrics().add_source(metrics);
    frontend
        .add_model(ServedModel {
            card: smollm2_card(),
            backend: Arc::new(routed.clone()),
        })
        .expect("add model");
    HttpServer::start(frontend).await
}

fn streamed_completion(max_tokens: u32) -> serde_json::Value {
    json!({
        "model": MODEL,
        "prompt": "Once upon a time",
        "max_tokens": max_tokens,
        "stream": true,
        "stream_options": {"include_usage": true},
    })
}

/// Round-robin routed backend whose first worker (id 1) dies after `k` tokens.
fn dying_first_worker(k: usize, migration_limit: u32) -> (RoutedBackend, Arc<RoutingLog>) {
    let routing = RoutingConfig {
        migration_limit,
        ..config(RouterMode::RoundRobin)
    };
    let routed = RoutedBackend::for_card(&smollm2_card(), &routing).expect("routed");
    let log = Arc::new(RoutingLog::default());
    let dying = Faults {
        fail_after: Some((k, ErrorKind::Disconnected)),
        cached_prompt_tokens: Some(5),
        ..Faults::default()
    };
    routed.add_worker(1, FakeWorker::with(1, &log, dying));
    let healthy = Faults {
        cached_prompt_tokens: Some(99),
        ..Faults::default()
    };
    routed.add_worker(2, FakeWorker::with(2, &log, healthy));
    (routed, log)
}

#[tokio::test]
async fn migration_continues_the_stream_on_another_worker() {
    let (routed, log) = dying_first_worker(3, 3);
    let server = http(&routed).await;
    let resp = server
        .post("/v1/completions", &streamed_completion(10))
        .await;
    assert_eq!(resp.status(), 200);
    let chunks = sse_payloads(&resp.text().await.expect("body"));

    let first = log.requests_of(1);
    let second = log.requests_of(2);
    assert_eq!((first.len(), second.len()), (1, 1), "{:?}", log.workers());
    let prompt = first[0].token_ids.clone();
    let mut resent = prompt.clone();
    resent.extend(expected_tokens(prompt.len(), 3));
    assert_eq!(
        second[0].token_ids, resent,
        "prompt + the 3 generated tokens"
    );
    assert_eq!(second[0].stop.max_tokens, 7);
    assert_eq!(second[0].sampling, first[0].sampling);

    let expected = expected_tokens(prompt.len(), 10);
    assert_eq!(token_at(prompt.len() + 9), expected[9]);
    assert_eq!(completion_text(&chunks), decode(&expected));
    let usage = &chunks.last().expect("usage chunk")["usage"];
    assert_eq!(usage["completion_tokens"], 10, "{usage}");
    assert_eq!(
        usage["prompt_tokens_details"]["cached_tokens"], 5,
        "{usage}"
    );
    let finish: Vec<_> = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["finish_reason"].as_str())
        .collect();
    assert_eq!(finish, ["length"]);

    let metrics = server.get_text("/metrics").await;
    let series = |name: &str| format!("{name}{{model=\"{MODEL}\"}}");
    assert_eq!(
        metric(&metrics, &series("rotor_frontend_migrations_total")),
        Some(1.0),
        "{metrics}"
    );
    assert_eq!(
        metric(&metrics, &series("rotor_frontend_migration_failures_total")),
        Some(0.0)
    );

    // The worker that died is not chosen again.
    let resp = server
        .post("/v1/completions", &streamed_completion(2))
        .await;
    assert_eq!(resp.status(), 200);
    resp.text().await.expect("body");
    assert_eq!(log.workers(), vec![1, 2, 2]);
}

#[tokio::test]
async fn a_migrated_constrained_request_replays_its_generated_tokens_through_the_grammar() {
    let (routed, log) = dying_first_worker(3, 3);
    let server = http(&routed).await;
    let mut body = streamed_completion(10);
    body["guided_regex"] = json!("[a-z ]*");
    let resp = server.post("/v1/completions", &body).await;
    assert_eq!(resp.status(), 200);
    resp.text().await.expect("body");

    let first = log.requests_of(1);
    let second = log.requests_of(2);
    assert_eq!((first.len(), second.len()), (1, 1), "{:?}", log.workers());
    assert!(
        first[0].sampling.constraint.is_some(),
        "{:?}",
        first[0].sampling
    );
    assert_eq!(first[0].sampling.constraint_replay_tokens, 0);
    // The 3 tokens streamed before the failure were sampled under the grammar: the second
    // worker walks its matcher over them before constraining what follows.
    assert_eq!(second[0].sampling.constraint, first[0].sampling.constraint);
    assert_eq!(second[0].sampling.constraint_replay_tokens, 3);
    assert_eq!(second[0].stop.max_tokens, 7);
}

#[tokio::test]
async fn migration_limit_zero_ends_the_stream_with_an_error_event() {
    let (routed, log) = dying_first_worker(3, 0);
    let server = http(&routed).await;
    let resp = server
        .post("/v1/completions", &streamed_completion(10))
        .await;
    assert_eq!(resp.status(), 200, "the first tokens were already streamed");
    let chunks = sse_payloads(&resp.text().await.expect("body"));
    assert_eq!(log.workers(), vec![1], "never re-sent");
    let prompt_len = log.requests_of(1)[0].token_ids.len();
    assert_eq!(
        completion_text(&chunks),
        decode(&expected_tokens(prompt_len, 3))
    );
    let error = &chunks.last().expect("error event")["error"];
    assert_eq!(error["code"], "worker_disconnected", "{chunks:?}");
    assert_eq!(error["type"], "server_error");
    assert!(
        error["message"]
            .as_str()
            .expect("message")
            .contains("migration limit 0"),
        "{error}"
    );
    let metrics = server.get_text("/metrics").await;
    assert_eq!(
        metric(
            &metrics,
            &format!("rotor_frontend_migration_failures_total{{model=\"{MODEL}\"}}")
        ),
        Some(1.0)
    );
    assert_eq!(
        metric(
            &metrics,
            &format!("rotor_frontend_migrations_total{{model=\"{MODEL}\"}}")
        ),
        Some(0.0)
    );
}

#[tokio::test]
async fn no_workers_answers_503_json() {
    let (routed, _log) = pool(RouterMode::RoundRobin, &[]);
    let server = http(&routed).await;
    let resp = server
        .post("/v1/completions", &streamed_completion(4))
        .await;
    assert_eq!(resp.status(), 503);
    let body: serde_json::Value = resp.json().await.expect("json");
    assert_eq!(body["error"]["type"], "server_error", "{body}");
    assert_eq!(body["error"]["code"], "overloaded", "{body}");
}

#[tokio::test]
async fn a_worker_that_cannot_start_is_skipped_and_counted() {
    let routed =
        RoutedBackend::for_card(&smollm2_card(), &config(RouterMode::RoundRobin)).expect("routed");
    let log = Arc::new(RoutingLog::default());
    let dead = Faults {
        refuse: Some(ErrorKind::Disconnected),
        ..Faults::default()
    };
    routed.add_worker(1, FakeWorker::with(1, &log, dead));
    routed.add_worker(2, FakeWorker::healthy(2, &log));
    let prompt = vec![9, 9, 9];
    let (tokens, error) = drain(
        routed
            .generate(request("r", prompt.clone(), 4))
            .expect("start"),
    )
    .await;
    assert!(error.is_none(), "{error:?}");
    assert_eq!(tokens, expected_tokens(3, 4));
    assert_eq!(log.workers(), vec![1, 2]);
    assert_eq!(log.requests_of(2)[0].token_ids, prompt);
    assert_eq!(routed.migrations(), 1);
}

#[tokio::test]
async fn when_every_worker_dies_the_stream_ends_with_the_failure() {
    let routed =
        RoutedBackend::for_card(&smollm2_card(), &config(RouterMode::RoundRobin)).expect("routed");
    let log = Arc::new(RoutingLog::default());
    for id in [1, 2] {
        let dying = Faults {
            fail_after: Some((2, ErrorKind::EngineStopped)),
            ..Faults::default()
        };
        routed.add_worker(id, FakeWorker::with(id, &log, dying));
    }
    let (tokens, error) = drain(
        routed
            .generate(request("r", vec![1, 2], 10))
            .expect("start"),
    )
    .await;
    assert_eq!(tokens, expected_tokens(2, 4), "2 tokens from each worker");
    let error = error.expect("the stream fails");
    assert_eq!(error.kind, ErrorKind::EngineStopped);
    assert!(error.message.contains("no other worker"), "{error}");
    assert_eq!(log.workers(), vec![1, 2]);
    assert_eq!((routed.migrations(), routed.migration_failures()), (1, 1));
}

#[tokio::test]
async fn non_migratable_errors_are_passed_through() {
    let routed =
        RoutedBackend::for_card(&smollm2_card(), &config(RouterMode::RoundRobin)).expect("routed");
    let log = Arc::new(RoutingLog::default());
    let bad = Faults {
        refuse: Some(ErrorKind::InvalidRequest),
        ..Faults::default()
    };
    routed.add_worker(1, FakeWorker::with(1, &log, bad));
    routed.add_worker(2, FakeWorker::healthy(2, &log));
    let error = match routed.generate(request("r", vec![1], 3)) {
        Err(error) => error,
        Ok(_) => panic!("an invalid request must fail at once"),
    };
    assert_eq!(error.kind, ErrorKind::InvalidRequest);
    assert_eq!(log.workers(), vec![1]);
    assert_eq!(routed.migrations(), 0);
}

#[tokio::test]
async fn dropping_the_stream_cancels_the_worker_and_frees_its_slot() {
    let routed =
        RoutedBackend::for_card(&smollm2_card(), &config(RouterMode::LeastLoaded)).expect("routed");
    let log = Arc::new(RoutingLog::default());
    let slow = Faults {
        delay: std::time::Duration::from_millis(5),
        ..Faults::default()
    };
    routed.add_worker(1, FakeWorker::with(1, &log, slow));
    let mut stream = routed.generate(request("r", vec![1], 1000)).expect("start");
    use futures::StreamExt;
    stream.next().await.expect("one output").expect("ok");
    drop(stream);
    assert_eq!(log.cancelled.load(std::sync::atomic::Ordering::SeqCst), 1);
    let metrics = RoutingMetrics::default();
    metrics.add(&routed);
    let mut text = String::new();
    rotor_frontend::MetricsSource::render(&metrics, &mut text);
    assert_eq!(
        metric(
            &text,
            &format!(
                "rotor_frontend_worker_inflight_requests{{model=\"{MODEL}\",worker=\"0000000000000001\"}}"
            )
        ),
        Some(0.0),
        "{text}"
    );
}

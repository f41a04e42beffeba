//! The kv router keeping its view right: the index rebuilt from a worker's KV snapshot after
//! lost events (with the events that came meanwhile replayed on top), and router replicas
//! sharing their decisions so each counts the load the others add.

mod routing_support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use futures::FutureExt;
use rotor_frontend::{
    Backend, OutputStream, ReplicaMessage, RoutedBackend, RouterMode, RoutingConfig, RoutingMetrics,
};
use rotor_protocol::{GenerateRequest, KvSnapshot, RouterEvent, WireError};
use tokio::sync::{mpsc, oneshot};

use routing_support::{
    drain, metric, request, smollm2_card, stored_event, FakeWorker, RoutingLog, MODEL,
};

const BLOCK: usize = 4;

fn kv_config() -> RoutingConfig {
    RoutingConfig {
        mode: RouterMode::Kv,
        seed: Some(7),
        ..RoutingConfig::default()
    }
}

/// Three full blocks of a prompt starting at `start`.
fn prefix(start: u32) -> Vec<u32> {
    (start..start + 3 * BLOCK as u32).collect()
}

fn stored(worker: u64, event_id: u64, tokens: &[u32]) -> RouterEvent {
    stored_event(worker, event_id, tokens, BLOCK)
}

/// A fake worker whose snapshot is handed over once the test sends it.
struct SnapshotWorker {
    inner: Arc<dyn Backend>,
    snapshot: Mutex<Option<oneshot::Receiver<KvSnapshot>>>,
}

impl Backend for SnapshotWorker {
    fn generate(&self, req: GenerateRequest) -> Result<OutputStream, WireError> {
        self.inner.generate(req)
    }

    fn kv_snapshot(&self) -> Option<BoxFuture<'static, Result<KvSnapshot, WireError>>> {
        let receiver = self.snapshot.lock().expect("lock").take()?;
        Some(
            async move {
                receiver.await.map_err(|_| {
                    WireError::new(rotor_protocol::ErrorKind::Disconnected, "no snapshot")
                })
            }
            .boxed(),
        )
    }
}

/// Routes `tokens` (one output) and returns the worker it ran on.
async fn route(routed: &RoutedBackend, log: &RoutingLog, id: &str, mut tokens: Vec<u32>) -> u64 {
    tokens.push(9_999);
    let (_, error) = drain(routed.generate(request(id, tokens, 1)).expect("start")).await;
    assert!(error.is_none(), "{error:?}");
    *log.workers().last().expect("routed")
}

#[tokio::test]
async fn a_gap_in_kv_events_rebuilds_the_workers_index_from_its_snapshot() {
    let routed = RoutedBackend::for_card(&smollm2_card(), &kv_config()).expect("routed");
    let log = Arc::new(RoutingLog::default());
    let (give_snapshot, snapshot) = oneshot::channel();
    routed.add_worker(1, FakeWorker::healthy(1, &log));
    routed.add_worker(
        2,
        Arc::new(SnapshotWorker {
            inner: FakeWorker::healthy(2, &log),
            snapshot: Mutex::new(Some(snapshot)),
        }),
    );
    let metrics = RoutingMetrics::default();
    metrics.add(&routed);
    let (a, b, c, d) = (prefix(100), prefix(200), prefix(300), prefix(400));

    routed.apply_kv_event(&stored(2, 0, &a));
    assert_eq!(route(&routed, &log, "a1", a.clone()).await, 2);
    // Events 1..=4 were lost: event 5 reveals the gap and starts a resync.
    routed.apply_kv_event(&stored(2, 5, &b));
    // While the snapshot is on its way, later events wait for it.
    routed.apply_kv_event(&stored(2, 6, &d));
    assert_eq!(
        route(&routed, &log, "d1", d.clone()).await,
        1,
        "buffered, not applied yet"
    );

    // The worker holds only C now, as of event 6 (so event 6 must be replayed on top).
    let c_hashes = rotor_tokens::sequence_hashes(&c, BLOCK);
    give_snapshot
        .send(KvSnapshot {
            block_hashes: c_hashes,
            next_event_id: 6,
        })
        .expect("send");
    for _ in 0..200 {
        if routed.resyncs() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(routed.resyncs(), 1);
    assert_eq!(
        route(&routed, &log, "c1", c.clone()).await,
        2,
        "from the snapshot"
    );
    assert_eq!(
        route(&routed, &log, "d2", d.clone()).await,
        2,
        "replayed after it"
    );
    // A and B are gone from worker 2: both workers tie and the lowest id wins.
    assert_eq!(route(&routed, &log, "a2", a.clone()).await, 1);
    assert_eq!(route(&routed, &log, "b1", b.clone()).await, 1);

    let mut text = String::new();
    rotor_frontend::MetricsSource::render(&metrics, &mut text);
    let series = |name: &str| format!("{name}{{model=\"{MODEL}\"}}");
    assert_eq!(
        metric(&text, &series("rotor_frontend_kv_router_resyncs_total")),
        Some(1.0)
    );
    assert_eq!(
        metric(&text, &series("rotor_frontend_kv_router_event_gaps_total")),
        Some(1.0)
    );
}

#[tokio::test]
async fn without_a_snapshot_the_buffered_events_still_apply() {
    let routed = RoutedBackend::for_card(&smollm2_card(), &kv_config()).expect("routed");
    let log = Arc::new(RoutingLog::default());
    routed.add_worker(1, FakeWorker::healthy(1, &log));
    routed.add_worker(2, FakeWorker::healthy(2, &log));
    let (a, b) = (prefix(100), prefix(200));
    routed.apply_kv_event(&stored(2, 0, &a));
    routed.apply_kv_event(&stored(2, 3, &b));
    // FakeWorker has no snapshot: the resync is abandoned at once and events flow again.
    routed.apply_kv_event(&stored(2, 4, &prefix(300)));
    assert_eq!(routed.resyncs(), 0);
    assert_eq!(route(&routed, &log, "b", b).await, 2);
    assert_eq!(route(&routed, &log, "c", prefix(300)).await, 2);
}

/// Two replicas of the same router whose messages reach each other, as over the event plane.
fn replicas(log: &Arc<RoutingLog>) -> (RoutedBackend, RoutedBackend) {
    let (first, second) = (
        RoutedBackend::for_card(&smollm2_card(), &kv_config()).expect("routed"),
        RoutedBackend::for_card(&smollm2_card(), &kv_config()).expect("routed"),
    );
    for id in [1, 2] {
        first.add_worker(id, FakeWorker::healthy(id, log));
        second.add_worker(id, FakeWorker::healthy(id, log));
    }
    let (to_second, mut from_first) = mpsc::unbounded_channel::<ReplicaMessage>();
    let (to_first, mut from_second) = mpsc::unbounded_channel::<ReplicaMessage>();
    first.enable_replica_sync(0xA, to_second);
    second.enable_replica_sync(0xB, to_first);
    let (f, s) = (first.clone(), second.clone());
    tokio::spawn(async move {
        while let Some(message) = from_first.recv().await {
            // Through JSON, as on the wire.
            let wire = serde_json::to_string(&message).expect("json");
            s.apply_replica_message(&serde_json::from_str(&wire).expect("json"));
        }
    });
    tokio::spawn(async move {
        while let Some(message) = from_second.recv().await {
            f.apply_replica_message(&message);
        }
    });
    (first, second)
}

async fn settle() {
    tokio::time::sleep(Duration::from_millis(20)).await;
}

#[tokio::test]
async fn replicas_count_each_others_load() {
    let log = Arc::new(RoutingLog::default());
    let (first, second) = replicas(&log);
    // The first replica starts a long request; it lands on worker 1 (tie, lowest id).
    let mut long = first
        .generate(request("long", (0..64).collect(), 1_000))
        .expect("start");
    futures::StreamExt::next(&mut long)
        .await
        .expect("first token")
        .expect("ok");
    assert_eq!(log.workers(), vec![1]);
    settle().await;
    assert_eq!(second.remote_requests(), 1);
    // The second replica sees that load and sends an unrelated request to worker 2.
    let (_, error) = drain(
        second
            .generate(request("other", (500..564).collect(), 1))
            .expect("start"),
    )
    .await;
    assert!(error.is_none());
    assert_eq!(log.workers(), vec![1, 2]);
    // When the long request ends, the second replica stops counting it.
    drop(long);
    settle().await;
    assert_eq!(second.remote_requests(), 0);
    assert_eq!(first.remote_requests(), 0, "the second's request ended too");
    let (_, error) = drain(
        second
            .generate(request("again", (600..664).collect(), 1))
            .expect("start"),
    )
    .await;
    assert!(error.is_none());
    assert_eq!(log.workers(), vec![1, 2, 1]);
}

#[tokio::test]
async fn another_replicas_request_expires_when_its_end_is_never_heard() {
    let log = Arc::new(RoutingLog::default());
    let config = RoutingConfig {
        replica_request_ttl: Duration::from_millis(50),
        ..kv_config()
    };
    let routed = RoutedBackend::for_card(&smollm2_card(), &config).expect("routed");
    for id in [1, 2] {
        routed.add_worker(id, FakeWorker::healthy(id, &log));
    }
    let (out, _keep) = mpsc::unbounded_channel();
    routed.enable_replica_sync(0xB, out);
    // A replica that died right after routing a big request to worker 1.
    let decision = rotor_kv_router::RoutingDecision {
        request_id: "dead/replica#0".into(),
        worker: 1,
        hashes: vec![],
        request_tokens: 4_000,
        overlap_blocks: 0,
        device_overlap_blocks: None,
        prefill_tokens: None,
    };
    routed.apply_replica_message(&ReplicaMessage {
        replica: 0xDEAD,
        model: MODEL.into(),
        sync: rotor_kv_router::ReplicaSync::Routed(decision),
    });
    assert_eq!(routed.remote_requests(), 1);
    let (_, error) = drain(
        routed
            .generate(request("r1", (0..8).collect(), 1))
            .expect("start"),
    )
    .await;
    assert!(error.is_none());
    assert_eq!(
        log.workers(),
        vec![2],
        "worker 1 carries the dead replica's request"
    );
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let (_, error) = drain(
        routed
            .generate(request("r2", (0..8).collect(), 1))
            .expect("start"),
    )
    .await;
    assert!(error.is_none());
    assert_eq!(routed.remote_requests(), 0);
    assert_eq!(log.workers(), vec![2, 1], "expired: worker 1 is free again");
}

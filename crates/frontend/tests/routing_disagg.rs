//! Disaggregated serving in the router, with fake workers whose KV "blocks" are their sequence
//! hashes: which blocks move (only those the decode worker lacks), the conditional decisions,
//! every fallback to local prefill (each counted with its reason, the request still served), a
//! cancelled client or timed-out prefill dropping the prefill call, `enforce` refusing without
//! a prefill worker, and the counters on /metrics.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use futures::stream::BoxStream;
use futures::{FutureExt, StreamExt};
use rotor_frontend::{
    Backend, DisaggConfig, MetricsSource, OutputStream, RoutedBackend, RoutingConfig,
    RoutingMetrics,
};
use rotor_protocol::{
    EngineOutput, ErrorKind, FinishReason, GenerateRequest, KvImportOutcome, KvSnapshot,
    PrefillRequest, SamplingParams, StopConditions, WireError, WorkerRole,
};

const BLOCK: u32 = 4;

fn hashes(tokens: &[u32]) -> Vec<u64> {
    rotor_tokens::sequence_hashes(tokens, BLOCK as usize)
}

fn request(id: &str, tokens: Vec<u32>) -> GenerateRequest {
    GenerateRequest {
        task: Default::default(),
        id: id.into(),
        token_ids: tokens,
        sampling: SamplingParams::greedy(),
        stop: StopConditions {
            max_tokens: 3,
            ..StopConditions::default()
        },
    }
}

/// A decode worker: a prefix cache of hashes, imports that add to it, generation of 3 tokens.
#[derive(Default)]
struct FakeDecode {
    cached: Mutex<BTreeSet<u64>>,
    /// Refuse the import from this block index of a call on.
    reject_at: Option<usize>,
    generated: AtomicUsize,
}

impl Backend for FakeDecode {
    fn generate(&self, _req: GenerateRequest) -> Result<OutputStream, WireError> {
        self.generated.fetch_add(1, Ordering::SeqCst);
        let out = EngineOutput {
            prompt_logprobs: None,
            embedding: None,
            token_ids: vec![7, 8, 9].into(),
            finish_reason: Some(FinishReason::Length),
            cached_prompt_tokens: None,
            logprobs: None,
        };
        Ok(futures::stream::iter([Ok(out)]).boxed())
    }

    fn kv_snapshot(&self) -> Option<BoxFuture<'static, Result<KvSnapshot, WireError>>> {
        let block_hashes = self.cached.lock().unwrap().iter().copied().collect();
        Some(
            futures::future::ready(Ok(KvSnapshot {
                block_hashes,
                next_event_id: 0,
            }))
            .boxed(),
        )
    }

    fn import_kv(
        &self,
        blocks: Vec<Vec<u8>>,
    ) -> Option<BoxFuture<'static, Result<KvImportOutcome, WireError>>> {
        let mut outcome = KvImportOutcome::default();
        let mut cached = self.cached.lock().unwrap();
        for (index, block) in blocks.iter().enumerate() {
            if self.reject_at == Some(index) {
                outcome.stopped = Some(("corrupt".into(), "checksum mismatch".into()));
                break;
            }
            let hash = u64::from_le_bytes(block[..8].try_into().unwrap());
            if cached.insert(hash) {
                outcome.imported += 1;
            } else {
                outcome.already_cached += 1;
            }
        }
        Some(futures::future::ready(Ok(outcome)).boxed())
    }
}

/// Counts prefill calls dropped before their end.
struct DropProbe(Arc<AtomicUsize>);

impl Drop for DropProbe {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// A prefill worker: streams the asked-for hashes as 8-byte blocks.
#[derive(Default)]
struct FakePrefill {
    calls: Mutex<Vec<PrefillRequest>>,
    /// Fail (as a dead worker) after this many blocks.
    fail_after: Option<usize>,
    /// Never finish the prefill.
    hang: bool,
    dropped: Arc<AtomicUsize>,
}

impl Backend for FakePrefill {
    fn generate(&self, _req: GenerateRequest) -> Result<OutputStream, WireError> {
        panic!("a prefill worker must not be asked to generate while decode workers exist");
    }

    fn prefill_export(
        &self,
        req: PrefillRequest,
    ) -> Option<BoxStream<'static, Result<Vec<u8>, WireError>>> {
        self.calls.lock().unwrap().push(req.clone());
        let probe = DropProbe(Arc::clone(&self.dropped));
        if self.hang {
            return Some(
                futures::stream::pending()
                    .map(move |x: Result<Vec<u8>, WireError>| {
                        let _ = &probe;
                        x
                    })
                    .boxed(),
            );
        }
        std::mem::forget(probe);
        let mut items: Vec<Result<Vec<u8>, WireError>> = req
            .sequence_hashes
            .iter()
            .map(|h| Ok(h.to_le_bytes().to_vec()))
            .collect();
        if let Some(n) = self.fail_after {
            items.truncate(n);
            items.push(Err(WireError::new(
                ErrorKind::Disconnected,
                "connection lost mid-transfer",
            )));
        }
        Some(futures::stream::iter(items).boxed())
    }
}

fn config(min_prefill_tokens: usize) -> RoutingConfig {
    RoutingConfig {
        seed: Some(1),
        disagg: DisaggConfig {
            min_prefill_tokens,
            timeout: Duration::from_secs(10),
            // Two 8-byte blocks per import call.
            import_batch_bytes: 16,
            ..DisaggConfig::default()
        },
        ..RoutingConfig::default()
    }
}

fn pool(
    config: RoutingConfig,
    decode: &Arc<FakeDecode>,
    prefill: Option<&Arc<FakePrefill>>,
) -> RoutedBackend {
    let routed = RoutedBackend::new("m", Some(BLOCK), &config).unwrap();
    routed.add_worker_with_role(1, decode.clone(), WorkerRole::Decode);
    if let Some(prefill) = prefill {
        routed.add_worker_with_role(2, prefill.clone(), WorkerRole::Prefill);
    }
    routed
}

async fn served(routed: &RoutedBackend, req: GenerateRequest) -> Vec<u32> {
    let mut stream = routed.generate(req).expect("started");
    let mut tokens = Vec::new();
    while let Some(item) = tokio::time::timeout(Duration::from_secs(20), stream.next())
        .await
        .expect("no hang")
    {
        let out = item.expect("no error");
        tokens.extend_from_slice(&out.token_ids);
    }
    tokens
}

fn prompt(len: u32) -> Vec<u32> {
    (100..100 + len).collect()
}

#[tokio::test]
async fn moves_only_the_blocks_the_decode_worker_lacks() {
    let decode = Arc::new(FakeDecode::default());
    let prefill = Arc::new(FakePrefill::default());
    let routed = pool(config(0), &decode, Some(&prefill));

    // Turn 1: 42 tokens, 10 full blocks, none cached on the decode worker.
    let turn1 = prompt(42);
    assert_eq!(
        served(&routed, request("t1", turn1.clone())).await,
        [7, 8, 9]
    );
    assert_eq!(routed.remote_prefills(), 1);
    assert_eq!(routed.transferred(), (10, 80));
    {
        let calls = prefill.calls.lock().unwrap();
        assert_eq!(calls[0].sequence_hashes, hashes(&turn1));
        assert_eq!(calls[0].request.token_ids, turn1);
    }

    // Turn 2 extends turn 1 to 50 tokens: only blocks 11 and 12 move.
    let turn2 = prompt(50);
    served(&routed, request("t2", turn2.clone())).await;
    assert_eq!(routed.remote_prefills(), 2);
    assert_eq!(routed.transferred(), (12, 96));
    assert_eq!(
        prefill.calls.lock().unwrap()[1].sequence_hashes,
        hashes(&turn2)[10..].to_vec()
    );

    // The same prompt again: every block is cached there, so it is prefilled locally.
    served(&routed, request("t3", turn2)).await;
    assert_eq!(routed.remote_prefills(), 2);
    assert_eq!(routed.local_prefills("cached"), 1);
    assert_eq!(prefill.calls.lock().unwrap().len(), 2);
    assert_eq!(decode.generated.load(Ordering::SeqCst), 3);

    let metrics = Arc::new(RoutingMetrics::default());
    metrics.add(&routed);
    let mut text = String::new();
    metrics.render(&mut text);
    for line in [
        "rotor_frontend_remote_prefill_total{model=\"m\"} 2",
        "rotor_frontend_local_prefill_total{model=\"m\",reason=\"cached\"} 1",
        "rotor_kv_transfer_blocks_total{model=\"m\"} 12",
        // Test doubles have no request-plane address: the router relays their blocks.
        "rotor_kv_transfer_bytes_total{model=\"m\",transport=\"relay\"} 96",
        "rotor_kv_transfer_bytes_total{model=\"m\",transport=\"shm\"} 0",
        "rotor_kv_transfer_shm_fallbacks_total{model=\"m\"} 0",
        "rotor_kv_transfer_seconds_count{model=\"m\"} 2",
        "rotor_frontend_disagg_active{model=\"m\"} 1",
        "rotor_frontend_workers_by_role{model=\"m\",role=\"prefill\"} 1",
        "rotor_kv_transfers_in_flight{model=\"m\"} 0",
    ] {
        assert!(text.contains(line), "{line} not in\n{text}");
    }
}

#[tokio::test]
async fn short_uncached_prompts_are_prefilled_on_the_decode_worker() {
    let decode = Arc::new(FakeDecode::default());
    let prefill = Arc::new(FakePrefill::default());
    let routed = pool(config(32), &decode, Some(&prefill));
    served(&routed, request("short", prompt(30))).await;
    assert_eq!(routed.local_prefills("short_prompt"), 1);
    assert_eq!(routed.remote_prefills(), 0);
    assert!(prefill.calls.lock().unwrap().is_empty());
    served(&routed, request("long", prompt(40))).await;
    assert_eq!(routed.remote_prefills(), 1);
}

#[tokio::test]
async fn a_prefill_worker_dying_mid_transfer_falls_back_with_the_prefix_kept() {
    let decode = Arc::new(FakeDecode::default());
    let prefill = Arc::new(FakePrefill {
        fail_after: Some(5),
        ..FakePrefill::default()
    });
    let routed = pool(config(0), &decode, Some(&prefill));
    let tokens = prompt(40);
    assert_eq!(
        served(&routed, request("r", tokens.clone())).await,
        [7, 8, 9]
    );
    assert_eq!(routed.local_prefills("prefill_failed"), 1);
    assert_eq!(routed.remote_prefills(), 0);
    // The five blocks that arrived were imported (a usable prefix).
    let cached = decode.cached.lock().unwrap().clone();
    assert_eq!(cached, hashes(&tokens)[..5].iter().copied().collect());
    // The dead prefill worker is skipped now: the next request is prefilled locally.
    served(&routed, request("r2", prompt(80))).await;
    assert_eq!(routed.local_prefills("no_prefill_worker"), 1);
    assert_eq!(routed.routable_workers(WorkerRole::Prefill), 0);
}

#[tokio::test]
async fn a_refused_block_falls_back_to_local_prefill() {
    let decode = Arc::new(FakeDecode {
        reject_at: Some(1),
        ..FakeDecode::default()
    });
    let prefill = Arc::new(FakePrefill::default());
    let routed = pool(config(0), &decode, Some(&prefill));
    assert_eq!(served(&routed, request("r", prompt(40))).await, [7, 8, 9]);
    assert_eq!(routed.local_prefills("import_rejected"), 1);
    assert_eq!(routed.transferred().0, 1);
}

#[tokio::test]
async fn a_hung_prefill_times_out_and_its_call_is_dropped() {
    let decode = Arc::new(FakeDecode::default());
    let prefill = Arc::new(FakePrefill {
        hang: true,
        ..FakePrefill::default()
    });
    let mut cfg = config(0);
    cfg.disagg.timeout = Duration::from_millis(200);
    let routed = pool(cfg, &decode, Some(&prefill));
    assert_eq!(served(&routed, request("r", prompt(40))).await, [7, 8, 9]);
    assert_eq!(routed.local_prefills("timeout"), 1);
    assert_eq!(prefill.dropped.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_client_cancelling_mid_transfer_drops_the_prefill_call() {
    let decode = Arc::new(FakeDecode::default());
    let prefill = Arc::new(FakePrefill {
        hang: true,
        ..FakePrefill::default()
    });
    let routed = pool(config(0), &decode, Some(&prefill));
    let metrics = Arc::new(RoutingMetrics::default());
    metrics.add(&routed);
    let mut stream = routed.generate(request("r", prompt(40))).unwrap();
    assert!(
        tokio::time::timeout(Duration::from_millis(100), stream.next())
            .await
            .is_err(),
        "nothing can arrive while the prefill hangs"
    );
    let mut text = String::new();
    metrics.render(&mut text);
    assert!(
        text.contains("rotor_kv_transfers_in_flight{model=\"m\"} 1"),
        "{text}"
    );
    drop(stream);
    assert_eq!(prefill.dropped.load(Ordering::SeqCst), 1);
    assert_eq!(decode.generated.load(Ordering::SeqCst), 0);
    let mut text = String::new();
    metrics.render(&mut text);
    assert!(
        text.contains("rotor_kv_transfers_in_flight{model=\"m\"} 0"),
        "{text}"
    );
    assert!(
        text.contains(
            "rotor_frontend_worker_inflight_requests{model=\"m\",worker=\"0000000000000002\"} 0"
        ),
        "{text}"
    );
}

#[tokio::test]
async fn without_a_prefill_worker_requests_are_served_aggregated_or_refused_when_enforced() {
    let decode = Arc::new(FakeDecode::default());
    let routed = pool(config(0), &decode, None);
    assert_eq!(served(&routed, request("r", prompt(40))).await, [7, 8, 9]);
    assert_eq!(routed.local_prefills("no_prefill_worker"), 1);
    let metrics = Arc::new(RoutingMetrics::default());
    metrics.add(&routed);
    let mut text = String::new();
    metrics.render(&mut text);
    assert!(
        text.contains("rotor_frontend_disagg_active{model=\"m\"} 0"),
        "{text}"
    );

    let mut enforced = config(0);
    enforced.disagg.enforce = true;
    let routed = pool(enforced, &decode, None);
    let error = match routed.generate(request("r", prompt(40))) {
        Ok(_) => panic!("enforced disaggregation must refuse without a prefill worker"),
        Err(error) => error,
    };
    assert_eq!(error.kind, ErrorKind::Overloaded);
    assert!(error.message.contains("`prefill`"), "{}", error.message);
    // Once a prefill worker joins, the same pool serves.
    let prefill = Arc::new(FakePrefill::default());
    routed.add_worker_with_role(2, prefill.clone(), WorkerRole::Prefill);
    served(&routed, request("r2", prompt(40))).await;
    assert_eq!(routed.remote_prefills(), 1);
}

#[tokio::test]
async fn aggregated_pools_never_disaggregate() {
    let decode = Arc::new(FakeDecode::default());
    let routed = RoutedBackend::new("m", Some(BLOCK), &config(0)).unwrap();
    routed.add_worker(1, decode.clone());
    served(&routed, request("r", prompt(40))).await;
    for reason in ["no_prefill_worker", "cached", "short_prompt"] {
        assert_eq!(routed.local_prefills(reason), 0);
    }
    assert_eq!(routed.remote_prefills(), 0);
}

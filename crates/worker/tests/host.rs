//! A worker hosted on the real runtime: a real request-plane server and client over loopback TCP,
//! in-memory discovery and the in-process event plane. Engines: `EchoEngine`, and the real
//! engine loop over `ScriptedRunner` (deterministic, no model) or `MockerRunner`.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use futures::StreamExt;
use rotor_engine::{
    Engine, EngineConfig, EngineHandle, MockerConfig, MockerRunner, MockerTiming, ScriptedRunner,
};
use rotor_protocol::worker::{
    decode_output, decode_snapshot, encode_request, DEFAULT_COMPONENT, DEFAULT_NAMESPACE,
    GENERATE_ENDPOINT, KV_EVENTS_TOPIC, KV_SNAPSHOT_ENDPOINT, LOAD_TOPIC,
};
use rotor_protocol::{
    EngineOutput, ErrorKind, FinishReason, GenerateRequest, KvEventData, KvSnapshot, LoadReport,
    ModelCard, RouterEvent, SamplingDefaults, SamplingParams, StopConditions, TokenizerSpec,
    WireError,
};
use rotor_runtime::event_plane::{subscribe_json, InProcessEventPlane};
use rotor_runtime::{
    Discovery, DiscoveryConfig, EventPlane, EventSubject, PathPrefix, RequestPlaneClient,
    RequestPlaneConfig, ResponseStream,
};
use rotor_worker::{
    EchoEngine, EngineWorker, ModelSpec, WorkerEngine, WorkerHost, WorkerHostConfig,
};

/// Generous bound for things that must happen "soon"; only a hang makes a test hit it.
const DEADLINE: Duration = Duration::from_secs(20);
const VOCAB: usize = 100;
const BLOCK_SIZE: usize = 4;
const NUM_BLOCKS: usize = 64;

fn card(name: &str, kv_block_size: Option<u32>) -> ModelCard {
    ModelCard {
        embedding_length: None,
        host_id: None,
        kv_host_pool: None,
        name: name.into(),
        context_length: 256,
        tokenizer: TokenizerSpec {
            model: "gpt2".into(),
            pre: None,
            tokens: (0..VOCAB).map(|i| format!("t{i}")).collect(),
            token_types: vec![1; VOCAB],
            merges: vec![],
            scores: vec![],
            bos_token_id: None,
            eos_token_id: Some(0),
            eot_token_ids: vec![],
            add_bos_token: false,
            add_space_prefix: false,
        },
        chat_template: None,
        created: 0,
        sampling_defaults: SamplingDefaults::default(),
        kv_block_size,
        role: Default::default(),
    }
}

fn scripted_engine(step_delay: Duration) -> Result<EngineHandle> {
    let cfg = EngineConfig {
        block_size_tokens: BLOCK_SIZE,
        num_blocks: NUM_BLOCKS,
        ..EngineConfig::default()
    };
    let runner = ScriptedRunner::for_config(&cfg, VOCAB, 256).with_step_delay(step_delay);
    Ok(Engine::start(Box::new(runner), cfg)?)
}

/// The engine loop over the mocker (Dynamo's vLLM timings, sped up 100×).
fn mocker_engine() -> Result<EngineHandle> {
    let cfg = EngineConfig {
        block_size_tokens: BLOCK_SIZE,
        num_blocks: NUM_BLOCKS,
        ..EngineConfig::default()
    };
    let mut mocker = MockerConfig::new(MockerTiming::DynamoVllm, &cfg, VOCAB, 256);
    mocker.speedup = 100.0;
    Ok(Engine::start(Box::new(MockerRunner::new(mocker)?), cfg)?)
}

fn request(id: &str, prompt: &[u32], max_tokens: u32) -> GenerateRequest {
    GenerateRequest {
        task: Default::default(),
        id: id.into(),
        token_ids: prompt.to_vec(),
        sampling: SamplingParams::greedy(),
        stop: StopConditions {
            max_tokens,
            ..StopConditions::default()
        },
    }
}

/// A worker on fresh mem discovery and an in-process event plane.
struct Cluster {
    discovery: Arc<dyn Discovery>,
    events: Arc<dyn EventPlane>,
}

impl Cluster {
    async fn new() -> Result<Self> {
        Ok(Self {
            discovery: DiscoveryConfig::parse("mem")?.connect().await?,
            events: Arc::new(InProcessEventPlane::default()),
        })
    }

    async fn host(&self, engine: Arc<dyn WorkerEngine>) -> Result<WorkerHost> {
        let config = WorkerHostConfig {
            load_interval: Duration::from_millis(20),
            ..WorkerHostConfig::default()
        };
        Ok(WorkerHost::start(
            config,
            Arc::clone(&self.discovery),
            Arc::clone(&self.events),
            engine,
        )
        .await?)
    }

    /// A client of the one registered instance, found through discovery.
    async fn client(&self) -> Result<RequestPlaneClient> {
        let instances = self.discovery.list(&PathPrefix::parse("")?).await?;
        let [instance] = instances.as_slice() else {
            bail!("expected one instance, found {instances:?}");
        };
        Ok(RequestPlaneClient::connect(&instance.address, RequestPlaneConfig::default()).await?)
    }
}

async fn call(client: &RequestPlaneClient, req: &GenerateRequest) -> Result<ResponseStream> {
    Ok(client
        .call(GENERATE_ENDPOINT, Bytes::from(encode_request(req)))
        .await?)
}

async fn next_output(
    stream: &mut ResponseStream,
) -> Result<Option<Result<EngineOutput, WireError>>> {
    let item = tokio::time::timeout(DEADLINE, stream.next())
        .await
        .context("response stream stalled")?;
    Ok(match item {
        None => None,
        Some(Ok(chunk)) => Some(Ok(decode_output(&chunk)?)),
        Some(Err(error)) => Some(Err(error)),
    })
}

/// Reads a response to its end: the outputs, and the terminal error if any.
async fn collect(mut stream: ResponseStream) -> Result<(Vec<EngineOutput>, Option<WireError>)> {
    let mut outputs = Vec::new();
    while let Some(item) = next_output(&mut stream).await? {
        match item {
            Ok(out) => outputs.push(out),
            Err(error) => return Ok((outputs, Some(error))),
        }
    }
    Ok((outputs, None))
}

fn tokens(outputs: &[EngineOutput]) -> Vec<u32> {
    outputs.iter().flat_map(|o| o.token_ids.clone()).collect()
}

/// Polls `condition` until it holds; fails after [`DEADLINE`].
async fn eventually(what: &str, mut condition: impl FnMut() -> bool) -> Result<()> {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while !condition() {
        if tokio::time::Instant::now() > deadline {
            bail!("timed out waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_round_trip_cycles_the_prompt_one_token_per_output() -> Result<()> {
    let cluster = Cluster::new().await?;
    let host = cluster
        .host(Arc::new(EchoEngine::new(
            card("echo", None),
            Duration::ZERO,
        )))
        .await?;
    let client = cluster.client().await?;
    let (outputs, error) = collect(call(&client, &request("r1", &[5, 6, 7], 7)).await?).await?;
    assert_eq!(error, None);
    assert_eq!(tokens(&outputs), vec![5, 6, 7, 5, 6, 7, 5]);
    assert!(outputs.iter().all(|o| o.token_ids.len() == 1));
    let reasons: Vec<_> = outputs.iter().map(|o| o.finish_reason).collect();
    assert_eq!(reasons[..6], [None; 6]);
    assert_eq!(reasons[6], Some(FinishReason::Length));
    assert_eq!(outputs[0].cached_prompt_tokens, Some(0));
    host.shutdown(DEADLINE).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scripted_engine_round_trip_is_the_greedy_continuation() -> Result<()> {
    let cluster = Cluster::new().await?;
    let engine = scripted_engine(Duration::ZERO)?;
    let worker = EngineWorker::new(engine, card("scripted", Some(BLOCK_SIZE as u32)));
    let host = cluster.host(Arc::new(worker)).await?;
    let client = cluster.client().await?;
    let prompt: Vec<u32> = (1..=10).collect();
    let (outputs, error) = collect(call(&client, &request("r1", &prompt, 6)).await?).await?;
    assert_eq!(error, None);
    assert_eq!(
        tokens(&outputs),
        ScriptedRunner::greedy_continuation(&prompt, 6, VOCAB)
    );
    assert_eq!(
        outputs.last().and_then(|o| o.finish_reason),
        Some(FinishReason::Length)
    );
    let report = host.shutdown(DEADLINE).await?;
    assert!(report.deregistered);
    assert_eq!(report.cancelled_requests, 0);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_payloads_and_bad_requests_are_invalid_request() -> Result<()> {
    let cluster = Cluster::new().await?;
    let host = cluster
        .host(Arc::new(EchoEngine::new(
            card("echo", None),
            Duration::ZERO,
        )))
        .await?;
    let client = cluster.client().await?;
    let garbage = client
        .call(GENERATE_ENDPOINT, Bytes::from_static(b"{\"id\": 3"))
        .await?;
    let (outputs, error) = collect(garbage).await?;
    assert!(outputs.is_empty());
    assert_eq!(error.map(|e| e.kind), Some(ErrorKind::InvalidRequest));
    // Well-formed but refused by the engine: a token outside the vocabulary.
    let (outputs, error) = collect(call(&client, &request("r2", &[1, 500], 3)).await?).await?;
    assert!(outputs.is_empty());
    assert_eq!(error.map(|e| e.kind), Some(ErrorKind::InvalidRequest));
    host.shutdown(DEADLINE).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_response_cancels_the_engine_work() -> Result<()> {
    let cluster = Cluster::new().await?;
    let engine = scripted_engine(Duration::from_millis(10))?;
    let worker = EngineWorker::new(engine.clone(), card("scripted", Some(BLOCK_SIZE as u32)));
    let host = cluster.host(Arc::new(worker)).await?;
    let client = cluster.client().await?;
    let mut stream = call(&client, &request("long", &[1, 2, 3, 4], 200)).await?;
    let first = next_output(&mut stream).await?.context("no output")??;
    assert_eq!(first.token_ids.len(), 1);
    eventually("the engine to report the request running", || {
        engine.stats().running == 1
    })
    .await?;
    drop(stream);
    eventually("the engine to drop the cancelled request", || {
        let stats = engine.stats();
        stats.running == 0 && stats.waiting == 0
    })
    .await?;
    // Uncancelled, the request would run until its 200th token (2 s at 10 ms a step).
    assert!(engine.stats().tokens_generated < 200);
    eventually("the server to end the request", || host.in_flight() == 0).await?;
    host.shutdown(DEADLINE).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registration_and_card_are_in_discovery_until_shutdown() -> Result<()> {
    let cluster = Cluster::new().await?;
    let model_card = card("scripted", Some(BLOCK_SIZE as u32));
    let worker = EngineWorker::new(scripted_engine(Duration::ZERO)?, model_card.clone());
    let host = cluster.host(Arc::new(worker)).await?;
    let prefix = PathPrefix::parse(&format!("{DEFAULT_NAMESPACE}/{DEFAULT_COMPONENT}"))?;
    let instances = cluster.discovery.list(&prefix).await?;
    assert_eq!(instances.len(), 1);
    assert_eq!(instances[0].instance_id, host.instance_id());
    assert_eq!(instances[0].path.endpoint, GENERATE_ENDPOINT);
    assert_eq!(instances[0].address, host.local_addr().to_string());
    let cards = cluster.discovery.model_cards(Some("scripted")).await?;
    assert_eq!(cards.len(), 1);
    assert_eq!(cards[0].instance_id, host.instance_id());
    assert_eq!(cards[0].card, model_card);

    let report = host.shutdown(DEADLINE).await?;
    assert!(report.deregistered);
    assert!(cluster.discovery.list(&prefix).await?.is_empty());
    assert!(cluster.discovery.model_cards(None).await?.is_empty());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kv_events_and_load_reports_carry_the_worker_id() -> Result<()> {
    let cluster = Cluster::new().await?;
    let kv_subject = EventSubject::new(DEFAULT_NAMESPACE, DEFAULT_COMPONENT, KV_EVENTS_TOPIC)?;
    let load_subject = EventSubject::new(DEFAULT_NAMESPACE, DEFAULT_COMPONENT, LOAD_TOPIC)?;
    let mut kv_events = subscribe_json::<RouterEvent>(cluster.events.as_ref(), &kv_subject).await?;
    let mut loads = subscribe_json::<LoadReport>(cluster.events.as_ref(), &load_subject).await?;

    let worker = EngineWorker::new(
        scripted_engine(Duration::ZERO)?,
        card("scripted", Some(BLOCK_SIZE as u32)),
    );
    let host = cluster.host(Arc::new(worker)).await?;
    let client = cluster.client().await?;

    let first_load = tokio::time::timeout(DEADLINE, loads.next())
        .await?
        .context("load stream ended")??;
    assert_eq!(first_load.worker_id, host.worker_id());
    assert_eq!(first_load.load.total_blocks, NUM_BLOCKS as u64);

    // Eight prompt tokens fill two blocks of four, which become cached.
    let prompt: Vec<u32> = (10..18).collect();
    let (_, error) = collect(call(&client, &request("r1", &prompt, 1)).await?).await?;
    assert_eq!(error, None);
    let expected = rotor_tokens::sequence_hashes(&prompt, BLOCK_SIZE);
    let mut stored = Vec::new();
    while stored.len() < expected.len() {
        let event = tokio::time::timeout(DEADLINE, kv_events.next())
            .await?
            .context("KV event stream ended")??;
        assert_eq!(event.worker_id, host.worker_id());
        if let KvEventData::Stored { blocks, .. } = event.event.data {
            stored.extend(blocks.iter().map(|b| b.block_hash));
        }
    }
    assert_eq!(stored, expected);
    host.shutdown(DEADLINE).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_drains_the_in_flight_request_and_refuses_new_calls() -> Result<()> {
    let cluster = Cluster::new().await?;
    let echo = EchoEngine::new(card("echo", None), Duration::from_millis(20));
    let host = cluster.host(Arc::new(echo)).await?;
    let client = cluster.client().await?;
    let mut in_flight = call(&client, &request("long", &[1, 2, 3], 50)).await?;
    let first = next_output(&mut in_flight).await?.context("no output")??;
    assert_eq!(first.token_ids, vec![1]);

    let discovery = Arc::clone(&cluster.discovery);
    let shutdown = tokio::spawn(host.shutdown(DEADLINE));
    // New calls are accepted until the drain starts, then refused.
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let (outputs, error) = match call(&client, &request("probe", &[9], 1)).await {
            Ok(stream) => collect(stream).await?,
            Err(error) => bail!("the connection should stay open while draining: {error}"),
        };
        if let Some(error) = error {
            assert_eq!(error.kind, ErrorKind::EngineStopped);
            assert!(outputs.is_empty());
            break;
        }
        assert_eq!(tokens(&outputs), vec![9]);
        if tokio::time::Instant::now() > deadline {
            bail!("new calls were never refused");
        }
    }
    // Deregistration came first.
    assert!(discovery.list(&PathPrefix::parse("")?).await?.is_empty());

    let (rest, error) = collect(in_flight).await?;
    assert_eq!(error, None);
    let mut all = first.token_ids.clone();
    all.extend(tokens(&rest));
    let expected: Vec<u32> = [1, 2, 3].iter().copied().cycle().take(50).collect();
    assert_eq!(all, expected);
    assert_eq!(
        rest.last().and_then(|o| o.finish_reason),
        Some(FinishReason::Length)
    );
    let report = shutdown.await??;
    assert_eq!(report.cancelled_requests, 0);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grace_expiry_cancels_what_is_still_running() -> Result<()> {
    let cluster = Cluster::new().await?;
    let echo = EchoEngine::new(card("echo", None), Duration::from_millis(50));
    let host = cluster.host(Arc::new(echo)).await?;
    let client = cluster.client().await?;
    let mut stream = call(&client, &request("long", &[4], 200)).await?;
    next_output(&mut stream).await?.context("no output")??;
    let report = host.shutdown(Duration::ZERO).await?;
    assert_eq!(report.cancelled_requests, 1);
    let (outputs, error) = collect(stream).await?;
    assert!(outputs.len() < 199);
    assert_eq!(error.map(|e| e.kind), Some(ErrorKind::EngineStopped));
    Ok(())
}

#[test]
fn echo_card_comes_from_the_gguf_without_loading_weights() -> Result<()> {
    let spec = ModelSpec {
        path: rotor_testing::model_path(),
        name: "smol".into(),
        sampling_defaults: SamplingDefaults {
            temperature: Some(0.2),
            ..SamplingDefaults::default()
        },
        max_model_len: Some(1024),
        chat_template: None,
    };
    let echo = EchoEngine::open(&spec, Duration::ZERO)?;
    let card = echo.card();
    assert_eq!(card.name, "smol");
    assert_eq!(card.context_length, 1024);
    assert_eq!(card.tokenizer.tokens.len(), 49152);
    assert!(card
        .chat_template
        .as_deref()
        .is_some_and(|t| t.contains("<|im_start|>")));
    assert_eq!(card.sampling_defaults.temperature, Some(0.2));
    assert_eq!(card.kv_block_size, None);
    Ok(())
}

/// Calls the snapshot endpoint: the one decoded chunk, or the error that ended the call.
async fn fetch_snapshot(client: &RequestPlaneClient) -> Result<Result<KvSnapshot, WireError>> {
    let mut stream = client.call(KV_SNAPSHOT_ENDPOINT, Bytes::new()).await?;
    let first = tokio::time::timeout(DEADLINE, stream.next())
        .await
        .context("snapshot call stalled")?
        .context("snapshot call ended without a chunk")?;
    let snapshot = match first {
        Ok(chunk) => Ok(decode_snapshot(&chunk)?),
        Err(error) => Err(error),
    };
    let rest = tokio::time::timeout(DEADLINE, stream.next()).await?;
    assert!(rest.is_none(), "one chunk expected, then the end");
    Ok(snapshot)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kv_snapshot_endpoint_returns_what_the_mocker_events_stored() -> Result<()> {
    let cluster = Cluster::new().await?;
    let kv_subject = EventSubject::new(DEFAULT_NAMESPACE, DEFAULT_COMPONENT, KV_EVENTS_TOPIC)?;
    let mut kv_events = subscribe_json::<RouterEvent>(cluster.events.as_ref(), &kv_subject).await?;
    let worker = EngineWorker::new(mocker_engine()?, card("mocker", Some(BLOCK_SIZE as u32)));
    let host = cluster.host(Arc::new(worker)).await?;
    let client = cluster.client().await?;

    // Eight tokens = two full blocks each; the second prompt shares the first block.
    let first: Vec<u32> = (10..18).collect();
    let second: Vec<u32> = [&first[..4], &[40, 41, 42, 43]].concat();
    for (id, prompt) in [("a", &first), ("b", &second)] {
        let (outputs, error) = collect(call(&client, &request(id, prompt, 1)).await?).await?;
        assert_eq!(error, None);
        assert_eq!(
            outputs.last().and_then(|o| o.finish_reason),
            Some(FinishReason::Length)
        );
    }
    let snapshot = fetch_snapshot(&client).await??;
    let mut expected: Vec<u64> = rotor_tokens::sequence_hashes(&first, BLOCK_SIZE);
    expected.extend(rotor_tokens::sequence_hashes(&second, BLOCK_SIZE));
    expected.sort_unstable();
    expected.dedup();
    assert_eq!(expected.len(), 3);
    assert_eq!(snapshot.block_hashes, expected);

    // The event plane carries exactly the events before `next_event_id`, and they store the
    // same blocks.
    let mut replayed = std::collections::BTreeSet::new();
    let mut next_id = 0;
    while next_id < snapshot.next_event_id {
        let event = tokio::time::timeout(DEADLINE, kv_events.next())
            .await?
            .context("KV event stream ended")??;
        assert_eq!(event.event.event_id, next_id);
        next_id += 1;
        match event.event.data {
            KvEventData::Stored { blocks, .. } => {
                replayed.extend(blocks.iter().map(|b| b.block_hash));
            }
            KvEventData::Removed { block_hashes, .. } => {
                for h in block_hashes {
                    replayed.remove(&h);
                }
            }
            KvEventData::Cleared => replayed.clear(),
        }
    }
    assert!(snapshot.next_event_id > 0);
    assert_eq!(replayed.into_iter().collect::<Vec<_>>(), expected);
    host.shutdown(DEADLINE).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kv_snapshot_of_an_engine_without_kv_events_is_a_clear_error() -> Result<()> {
    let cluster = Cluster::new().await?;
    let echo = EchoEngine::new(card("echo", None), Duration::ZERO);
    let host = cluster.host(Arc::new(echo)).await?;
    let client = cluster.client().await?;
    let error = fetch_snapshot(&client)
        .await?
        .err()
        .context("the echo engine has no snapshot")?;
    assert_eq!(error.kind, ErrorKind::InvalidRequest);
    assert!(
        error.message.contains("no KV snapshot"),
        "{}",
        error.message
    );
    host.shutdown(DEADLINE).await?;
    Ok(())
}

/// An echo engine whose health probe answers what the test says, counting probes and the
/// registration changes the host reports.
struct ProbedEngine {
    inner: EchoEngine,
    healthy: Arc<std::sync::atomic::AtomicBool>,
    probes: Arc<std::sync::atomic::AtomicU64>,
    changes: std::sync::Mutex<Vec<bool>>,
}

impl WorkerEngine for ProbedEngine {
    fn card(&self) -> &ModelCard {
        self.inner.card()
    }
    fn generate(
        &self,
        req: GenerateRequest,
    ) -> std::result::Result<rotor_worker::GenerateStream, WireError> {
        self.inner.generate(req)
    }
    fn load(&self) -> rotor_protocol::WorkerLoad {
        self.inner.load()
    }
    fn probe_health(&self) -> Option<futures::future::BoxFuture<'static, bool>> {
        use std::sync::atomic::Ordering::SeqCst;
        self.probes.fetch_add(1, SeqCst);
        let healthy = self.healthy.load(SeqCst);
        Some(Box::pin(async move { healthy }))
    }
    fn registration_changed(&self, registered: bool) {
        self.changes.lock().unwrap().push(registered);
    }
    fn shutdown(&self) {
        self.inner.shutdown();
    }
}

/// An engine that stops answering its health probe takes the worker out of discovery after the
/// configured failures in a row (routers stop sending it work); when it answers again the worker
/// registers again, same instance id, card included; shutdown still deregisters.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_leaves_discovery_while_its_engine_fails_health_probes() -> Result<()> {
    use std::sync::atomic::Ordering::SeqCst;
    let cluster = Cluster::new().await?;
    let healthy = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let probes = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let engine = Arc::new(ProbedEngine {
        inner: EchoEngine::new(card("probed", None), Duration::ZERO),
        healthy: Arc::clone(&healthy),
        probes: Arc::clone(&probes),
        changes: std::sync::Mutex::new(Vec::new()),
    });
    let config = WorkerHostConfig {
        health_interval: Duration::from_millis(20),
        health_failures: 3,
        ..WorkerHostConfig::default()
    };
    let host = WorkerHost::start(
        config,
        Arc::clone(&cluster.discovery),
        Arc::clone(&cluster.events),
        Arc::clone(&engine) as Arc<dyn WorkerEngine>,
    )
    .await?;
    let id = host.instance_id();
    let prefix = PathPrefix::parse(&format!("{DEFAULT_NAMESPACE}/{DEFAULT_COMPONENT}"))?;
    let registered = || async {
        let instances = cluster.discovery.list(&prefix).await.unwrap_or_default();
        let cards = cluster
            .discovery
            .model_cards(Some("probed"))
            .await
            .unwrap_or_default();
        (instances.iter().any(|i| i.instance_id == id), cards.len())
    };
    // Healthy: probed, still registered.
    let before = probes.load(SeqCst);
    eventually("probes while healthy", || probes.load(SeqCst) >= before + 3).await?;
    assert_eq!(registered().await, (true, 1));
    assert!(engine.changes.lock().unwrap().is_empty());

    healthy.store(false, SeqCst);
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while registered().await.0 {
        assert!(tokio::time::Instant::now() < deadline, "never withdrawn");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(
        registered().await,
        (false, 0),
        "the card left with the instance"
    );
    assert_eq!(*engine.changes.lock().unwrap(), vec![false]);

    healthy.store(true, SeqCst);
    while !registered().await.0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "never registered again"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(registered().await, (true, 1));
    assert_eq!(*engine.changes.lock().unwrap(), vec![false, true]);
    // It serves through the new registration.
    let client = cluster.client().await?;
    let (outputs, error) = collect(call(&client, &request("r", &[3, 4], 2)).await?).await?;
    assert_eq!((tokens(&outputs), error), (vec![3, 4], None));

    // Withdrawn at shutdown time: shutdown does not register it again.
    healthy.store(false, SeqCst);
    while registered().await.0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "never withdrawn again"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    healthy.store(true, SeqCst);
    let report = host.shutdown(DEADLINE).await?;
    assert!(report.deregistered);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(registered().await, (false, 0));
    Ok(())
}

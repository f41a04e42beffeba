//! The engine on its own thread: interleaving, cancellation, shutdown.

use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rotor_engine::{
    Engine, EngineConfig, EngineHandle, ModelRunner, OutputStream, RunnerError, ScheduledChunk,
    ScriptedRunner,
};
use rotor_protocol::{ErrorKind, FinishReason, GenerateRequest, SamplingParams, StopConditions};

const VOCAB: usize = 500;
const CTX: usize = 2048;

fn request(id: &str, len: usize, max_tokens: u32) -> GenerateRequest {
    GenerateRequest {
        task: Default::default(),
        id: id.into(),
        token_ids: (0..len as u32)
            .map(|i| (i * 11 + id.len() as u32) % VOCAB as u32)
            .collect(),
        sampling: SamplingParams::greedy(),
        stop: StopConditions {
            max_tokens,
            ..StopConditions::default()
        },
    }
}

fn start(delay: Duration) -> EngineHandle {
    let cfg = EngineConfig::default();
    let runner = ScriptedRunner::for_config(&cfg, VOCAB, CTX).with_step_delay(delay);
    Engine::start(Box::new(runner), cfg).expect("engine starts")
}

/// Reads a stream to its end: tokens, finish reason, and the error kind if it ended in one.
fn collect(rx: &mut OutputStream) -> (Vec<u32>, Option<FinishReason>, Option<ErrorKind>) {
    let mut tokens = Vec::new();
    let mut finish = None;
    while let Some(item) = rx.blocking_recv() {
        match item {
            Ok(out) => {
                tokens.extend(out.token_ids);
                finish = out.finish_reason;
            }
            Err(e) => return (tokens, finish, Some(e.kind)),
        }
    }
    (tokens, finish, None)
}

fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Wraps the scripted runner: holds its first step until the test opens the gate, and records
/// how many sequences sampled in each step.
struct GatedRunner {
    inner: ScriptedRunner,
    entered: mpsc::Sender<()>,
    gate: Option<mpsc::Receiver<()>>,
    sampled_per_step: Arc<Mutex<Vec<usize>>>,
    thread_name: Arc<Mutex<Option<String>>>,
}

impl ModelRunner for GatedRunner {
    fn vocab_size(&self) -> usize {
        self.inner.vocab_size()
    }
    fn context_length(&self) -> usize {
        self.inner.context_length()
    }
    fn kv_layout(&self) -> Option<rotor_engine::KvLayout> {
        self.inner.kv_layout()
    }
    fn step(
        &mut self,
        chunks: &[ScheduledChunk<'_>],
        logits: &mut Vec<f32>,
    ) -> Result<(), RunnerError> {
        if let Some(gate) = self.gate.take() {
            *self.thread_name.lock().expect("name lock") =
                std::thread::current().name().map(str::to_owned);
            let _ = self.entered.send(());
            let _ = gate.recv();
        }
        self.sampled_per_step
            .lock()
            .expect("log lock")
            .push(chunks.iter().filter(|c| c.want_logits).count());
        self.inner.step(chunks, logits)
    }
}

#[test]
fn concurrent_requests_interleave() {
    let cfg = EngineConfig::default();
    let (entered_tx, entered_rx) = mpsc::channel();
    let (gate_tx, gate_rx) = mpsc::channel();
    let log = Arc::new(Mutex::new(Vec::new()));
    let thread_name = Arc::new(Mutex::new(None));
    let runner = GatedRunner {
        inner: ScriptedRunner::for_config(&cfg, VOCAB, CTX),
        entered: entered_tx,
        gate: Some(gate_rx),
        sampled_per_step: log.clone(),
        thread_name: thread_name.clone(),
    };
    let engine = Engine::start(Box::new(runner), cfg).expect("starts");
    let mut a = engine.submit(request("a", 8, 20)).expect("valid");
    entered_rx.recv().expect("first step entered");
    let mut b = engine.submit(request("bb", 8, 20)).expect("valid");
    gate_tx.send(()).expect("gate open");
    let (ta, fa, ea) = collect(&mut a);
    let (tb, fb, eb) = collect(&mut b);
    assert_eq!(
        (fa, ea, fb, eb),
        (
            Some(FinishReason::Length),
            None,
            Some(FinishReason::Length),
            None
        )
    );
    assert_eq!(
        ta,
        ScriptedRunner::greedy_continuation(&request("a", 8, 20).token_ids, 20, VOCAB)
    );
    assert_eq!(
        tb,
        ScriptedRunner::greedy_continuation(&request("bb", 8, 20).token_ids, 20, VOCAB)
    );
    // Step 1: a alone; steps 2..=20: a and b each sample; step 21: b alone.
    let mut expected = vec![1];
    expected.extend(std::iter::repeat_n(2, 19));
    expected.push(1);
    assert_eq!(*log.lock().expect("log lock"), expected);
    assert_eq!(
        thread_name.lock().expect("name lock").as_deref(),
        Some("rotor-engine")
    );
    // Stats are published after the step whose outputs we just read.
    wait_until("stats of the last step", || engine.stats().steps == 21);
    let stats = engine.stats();
    assert_eq!(
        (
            stats.steps,
            stats.tokens_generated,
            stats.running,
            stats.blocks_used
        ),
        (21, 40, 0, 0)
    );
}

#[test]
fn shutdown_fails_in_flight_requests_with_engine_stopped() {
    let engine = start(Duration::from_millis(2));
    let mut a = engine.submit(request("a", 8, 1000)).expect("valid");
    let mut b = engine.submit(request("b2", 8, 1000)).expect("valid");
    assert!(a.blocking_recv().expect("a output").is_ok());
    assert!(b.blocking_recv().expect("b output").is_ok());
    engine.shutdown();
    for rx in [&mut a, &mut b] {
        let (_, finish, err) = collect(rx);
        assert_eq!((finish, err), (None, Some(ErrorKind::EngineStopped)));
    }
    engine.join();
    let after = engine
        .submit(request("c", 8, 4))
        .expect_err("stopped engine refuses");
    assert_eq!(after.kind, ErrorKind::EngineStopped);
    let stats = engine.stats();
    assert!(stats.stopped);
    assert_eq!((stats.running, stats.waiting, stats.blocks_used), (0, 0, 0));
}

#[test]
fn dropping_the_receiver_frees_the_request() {
    let engine = start(Duration::from_millis(1));
    let mut a = engine.submit(request("a", 40, 1000)).expect("valid");
    assert!(a.blocking_recv().expect("output").is_ok());
    wait_until("the first step's stats", || engine.stats().blocks_used >= 3);
    drop(a);
    wait_until("the dropped request to be freed", || {
        let s = engine.stats();
        s.running == 0 && s.blocks_used == 0
    });
    engine.shutdown();
    engine.join();
}

#[test]
fn cancel_ends_the_stream_with_cancelled() {
    let engine = start(Duration::from_millis(1));
    let mut a = engine.submit(request("a", 8, 1000)).expect("valid");
    assert!(a.blocking_recv().expect("output").is_ok());
    engine.cancel("a");
    let (_, finish, err) = collect(&mut a);
    assert_eq!((finish, err), (Some(FinishReason::Cancelled), None));
    wait_until("blocks freed", || engine.stats().blocks_used == 0);
}

#[test]
fn dropping_every_handle_lets_in_flight_work_finish() {
    let engine = start(Duration::ZERO);
    let mut a = engine.submit(request("a", 8, 12)).expect("valid");
    drop(engine);
    let (tokens, finish, err) = collect(&mut a);
    assert_eq!(
        (tokens.len(), finish, err),
        (12, Some(FinishReason::Length), None)
    );
}

#[test]
fn submit_refuses_invalid_requests_synchronously() {
    let engine = start(Duration::from_millis(1));
    let err = engine
        .submit(request("long", CTX, 1))
        .expect_err("prompt fills the context");
    assert_eq!(err.kind, ErrorKind::InvalidRequest);
    let err = engine
        .submit(request("empty", 0, 1))
        .expect_err("empty prompt");
    assert_eq!(err.kind, ErrorKind::InvalidRequest);
    let mut dup1 = engine.submit(request("dup", 4, 1000)).expect("valid");
    let mut dup2 = engine
        .submit(request("dup", 4, 1000))
        .expect("validated later");
    let (_, _, err) = collect(&mut dup2);
    assert_eq!(err, Some(ErrorKind::InvalidRequest));
    engine.cancel("dup");
    assert_eq!(collect(&mut dup1).1, Some(FinishReason::Cancelled));
}

#[test]
fn start_checks_the_config_against_the_runner() {
    let cfg = EngineConfig {
        num_blocks: 7,
        ..EngineConfig::default()
    };
    let runner = ScriptedRunner::for_config(&EngineConfig::default(), VOCAB, CTX);
    let err = Engine::start(Box::new(runner), cfg)
        .err()
        .expect("layout mismatch");
    assert!(
        matches!(
            err,
            rotor_engine::Error::KvLayoutMismatch {
                runner_blocks: 1024,
                config_blocks: 7,
                ..
            }
        ),
        "{err}"
    );
    let cfg = EngineConfig {
        max_num_seqs: 0,
        ..EngineConfig::default()
    };
    let runner = ScriptedRunner::for_config(&cfg, VOCAB, CTX);
    let err = Engine::start(Box::new(runner), cfg).err().expect("invalid");
    assert!(
        matches!(
            err,
            rotor_engine::Error::InvalidConfig {
                field: "max_num_seqs",
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn kv_event_readers_wake_on_new_events_and_end_with_the_engine() {
    let engine = start(Duration::ZERO);
    let mut reader = engine.subscribe_kv_events();
    let req = request("kv", 40, 2);
    let hashes = rotor_tokens::sequence_hashes(&req.token_ids, 16);
    let (_, finish, _) = collect(&mut engine.submit(req).expect("valid"));
    assert_eq!(finish, Some(FinishReason::Length));
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    assert!(rt.block_on(reader.wait()));
    let batch = reader.read();
    let stored: Vec<u64> = match &batch.events[..] {
        [rotor_protocol::KvEvent {
            event_id: 0,
            data:
                rotor_protocol::KvEventData::Stored {
                    parent_hash: None,
                    blocks,
                    tier: rotor_protocol::CacheTier::Device,
                },
        }] => blocks.iter().map(|b| b.block_hash).collect(),
        other => panic!("expected one Stored event, got {other:?}"),
    };
    assert_eq!((stored, batch.missed, reader.cursor()), (hashes, 0, 1));
    engine.shutdown();
    engine.join();
    assert!(
        !rt.block_on(reader.wait()),
        "no more events after the engine stopped"
    );
    // A new subscriber starts from event 0.
    assert_eq!(engine.subscribe_kv_events().read().events.len(), 1);
}

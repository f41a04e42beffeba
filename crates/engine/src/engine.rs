//! `Engine` and `EngineHandle`: an `EngineCore` on its own OS thread ("rotor-engine"), fed by an
//! inbox of commands.
//!
//! The thread blocks on the inbox while it has no work and drains it between steps otherwise.
//! When every handle is dropped the thread finishes the requests in flight, then exits; an
//! explicit `shutdown` fails them with `EngineStopped` at once.

use std::future::Future;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, TryRecvError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use rotor_kv_cache::KvTiersConfig;
use rotor_protocol::{EngineOutput, ErrorKind, GenerateRequest, KvSnapshot, WireError};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};
use tokio::sync::oneshot;

use crate::config::EngineConfig;
use crate::constraint::{ConstraintCounters, ConstraintVocab, SeqConstraint};
use crate::core::{compile_constraint, EngineCore};
use crate::error::Error;
use crate::kv_events::KvEventReader;
use crate::kv_transfer::{KvExport, KvExportSelector, KvImportReport, KvTransferError};
use crate::runner::ModelRunner;
use crate::sequence::OutputSender;
use crate::stats::{EngineStats, StatsCell};
use crate::validate::{validate_request, RequestLimits};

/// Longest wait for an offload-tier load when nothing else can step, before the inbox is
/// checked again.
const KV_LOAD_WAIT: std::time::Duration = std::time::Duration::from_millis(5);

/// Outputs of one request: token batches, the last with a finish reason, or one error.
pub type OutputStream = UnboundedReceiver<Result<EngineOutput, WireError>>;

// One command per request or operation: the size of the largest variant does not matter.
#[allow(clippy::large_enum_variant)]
enum Command {
    Submit(GenerateRequest, Option<Box<SeqConstraint>>, OutputSender),
    Cancel(String),
    KvSnapshot(oneshot::Sender<KvSnapshot>),
    FlushKvTiers(oneshot::Sender<()>),
    ExportKv(
        KvExportSelector,
        oneshot::Sender<Result<KvExport, KvTransferError>>,
    ),
    ImportKv(
        Vec<Vec<u8>>,
        oneshot::Sender<Result<KvImportReport, KvTransferError>>,
    ),
    Shutdown,
}

/// Starts engines.
pub struct Engine;

impl Engine {
    /// Validates `cfg` against the runner and starts the engine thread.
    pub fn start(runner: Box<dyn ModelRunner>, cfg: EngineConfig) -> Result<EngineHandle, Error> {
        Self::start_core(EngineCore::new(runner, &cfg)?)
    }

    /// [`start`](Self::start) with offload tiers (G2 shared host memory, G3 disk) behind the
    /// KV pool: see `EngineCore::with_kv_tiers`.
    pub fn start_with_tiers(
        runner: Box<dyn ModelRunner>,
        cfg: EngineConfig,
        tiers: &KvTiersConfig,
    ) -> Result<EngineHandle, Error> {
        Self::start_core(EngineCore::with_kv_tiers(runner, &cfg, tiers)?)
    }

    /// Starts the thread of a built core.
    pub fn start_core(core: EngineCore) -> Result<EngineHandle, Error> {
        let limits = core.limits();
        let constraint_vocab = core.constraint_vocab().cloned();
        let constraint_counters = core.constraint_counters().clone();
        let kv_events = core.subscribe_kv_events();
        let shared = Arc::new(StatsCell::default());
        shared.publish(&core.stats());
        let (inbox_tx, inbox_rx) = mpsc::channel();
        let thread_shared = shared.clone();
        let thread = std::thread::Builder::new()
            .name("rotor-engine".into())
            .spawn(move || run(core, inbox_rx, thread_shared))
            .map_err(Error::Spawn)?;
        Ok(EngineHandle {
            inbox: inbox_tx,
            limits,
            shared,
            constraint_vocab,
            constraint_counters,
            kv_events,
            thread: Arc::new(Mutex::new(Some(thread))),
        })
    }
}

/// Cloneable front of a running engine.
#[derive(Clone)]
pub struct EngineHandle {
    inbox: Sender<Command>,
    limits: RequestLimits,
    shared: Arc<StatsCell>,
    constraint_vocab: Option<Arc<ConstraintVocab>>,
    constraint_counters: Arc<ConstraintCounters>,
    kv_events: KvEventReader,
    thread: Arc<Mutex<Option<JoinHandle<()>>>>,
}

fn stopped_error() -> WireError {
    WireError::new(ErrorKind::EngineStopped, "the engine has stopped")
}

impl EngineHandle {
    /// Admits a request; outputs arrive on the returned receiver. Dropping the receiver cancels
    /// the request (the engine notices before its next step and frees the blocks). Invalid
    /// requests are refused here; a duplicate in-flight id is refused as the stream's only item.
    /// A grammar constraint is compiled here, on the caller's thread (a few milliseconds for a
    /// large schema, kept off the engine thread); one it cannot enforce is `InvalidRequest`.
    pub fn submit(&self, req: GenerateRequest) -> Result<OutputStream, WireError> {
        validate_request(&req, &self.limits)?;
        if self.shared.is_stopped() {
            return Err(stopped_error());
        }
        let constraint = compile_constraint(
            self.constraint_vocab.as_deref(),
            &req,
            &self.constraint_counters,
        )?;
        let (tx, rx) = unbounded_channel();
        self.inbox
            .send(Command::Submit(req, constraint, tx))
            .map_err(|_| stopped_error())?;
        Ok(rx)
    }

    /// Cancels a request; its stream ends with a `Cancelled` output. Unknown ids are ignored.
    pub fn cancel(&self, request_id: &str) {
        let _ = self.inbox.send(Command::Cancel(request_id.to_owned()));
    }

    /// The counters as of the last finished step (published after the step's outputs were sent,
    /// so they may trail a just-received output by one step).
    pub fn stats(&self) -> EngineStats {
        let mut s = self.shared.snapshot();
        s.constraints = self.constraint_counters.snapshot();
        s
    }

    /// A reader of the engine's KV events (stored / removed / cleared, ids contiguous from 0),
    /// starting at event 0. Events are appended after each step to a ring of the last
    /// `KV_EVENT_RING_CAPACITY`; a reader that falls further behind is told how many it missed.
    pub fn subscribe_kv_events(&self) -> KvEventReader {
        let mut reader = self.kv_events.clone();
        reader.rewind();
        reader
    }

    /// A snapshot of the prefix cache, taken between two steps: every cached block hash and the
    /// id of the next KV event, all earlier events already in the ring (so replaying events from
    /// `next_event_id` on top of it stays exact). Fails with `EngineStopped` if the engine is
    /// gone or stops before answering.
    pub fn kv_snapshot(
        &self,
    ) -> impl Future<Output = Result<KvSnapshot, WireError>> + Send + 'static {
        let (tx, rx) = oneshot::channel();
        let sent = !self.shared.is_stopped() && self.inbox.send(Command::KvSnapshot(tx)).is_ok();
        async move {
            if !sent {
                return Err(stopped_error());
            }
            rx.await.map_err(|_| stopped_error())
        }
    }

    /// Exports the longest cached prefix of `selector` in the KV block format, between two
    /// steps (the blocks are pinned while copied, then released). Fails with `EngineStopped` if
    /// the engine is gone or stops before answering.
    pub fn export_kv(
        &self,
        selector: KvExportSelector,
    ) -> impl Future<Output = Result<KvExport, KvTransferError>> + Send + 'static {
        let (tx, rx) = oneshot::channel();
        let sent = self.send_if_running(Command::ExportKv(selector, tx));
        async move {
            if !sent {
                return Err(KvTransferError::EngineStopped);
            }
            rx.await.unwrap_or(Err(KvTransferError::EngineStopped))
        }
    }

    /// Imports encoded blocks (in chain order) into the pool and prefix cache between two steps;
    /// a later request with their prefix hits them. See `KvImportReport` for partial imports.
    pub fn import_kv(
        &self,
        blocks: Vec<Vec<u8>>,
    ) -> impl Future<Output = Result<KvImportReport, KvTransferError>> + Send + 'static {
        let (tx, rx) = oneshot::channel();
        let sent = self.send_if_running(Command::ImportKv(blocks, tx));
        async move {
            if !sent {
                return Err(KvTransferError::EngineStopped);
            }
            rx.await.unwrap_or(Err(KvTransferError::EngineStopped))
        }
    }

    /// Waits until every block offloaded so far has been written to its offload tier (G2/G3),
    /// with the counters published (tests, benchmarks, an orderly shutdown). Immediate without
    /// tiers; fails with `EngineStopped` if the engine is gone.
    pub fn flush_kv_tiers(&self) -> impl Future<Output = Result<(), WireError>> + Send + 'static {
        let (tx, rx) = oneshot::channel();
        let sent = self.send_if_running(Command::FlushKvTiers(tx));
        async move {
            if !sent {
                return Err(stopped_error());
            }
            rx.await.map_err(|_| stopped_error())
        }
    }

    fn send_if_running(&self, cmd: Command) -> bool {
        !self.shared.is_stopped() && self.inbox.send(cmd).is_ok()
    }

    /// The limits requests are validated against (vocabulary, context window).
    pub fn limits(&self) -> RequestLimits {
        self.limits
    }

    /// Stops the loop without waiting: in-flight and queued requests get
    /// `Err(WireError { kind: EngineStopped, .. })`, later submits are refused. Use `join` to wait.
    pub fn shutdown(&self) {
        self.shared.set_stopped();
        let _ = self.inbox.send(Command::Shutdown);
    }

    /// Blocks until the engine thread has exited (after `shutdown`, or after the last handle
    /// is dropped and the work drained). Returns at once if another caller already joined.
    pub fn join(&self) {
        let thread = match self.thread.lock() {
            Ok(mut guard) => guard.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        };
        if let Some(thread) = thread {
            if thread.join().is_err() {
                tracing::error!("the engine thread panicked");
            }
        }
    }
}

/// Marks the engine stopped when the thread ends, including by panic.
struct StoppedGuard(Arc<StatsCell>);

impl Drop for StoppedGuard {
    fn drop(&mut self) {
        self.0.set_stopped();
    }
}

enum Flow {
    Continue,
    Stop,
}

fn apply(core: &mut EngineCore, cmd: Command, shared: &StatsCell) -> Flow {
    match cmd {
        Command::Submit(req, constraint, tx) => {
            if let Err(e) = core.submit_compiled(req, constraint, tx.clone()) {
                let _ = tx.send(Err(e));
            }
        }
        Command::Cancel(id) => {
            core.cancel(&id);
        }
        Command::KvSnapshot(tx) => {
            // The caller may have given up; nothing to undo then.
            let _ = tx.send(core.kv_snapshot());
        }
        // An export's pins are released before answering; an import stays done if the caller
        // has gone (its blocks are cached like any others). Both publish their counters before
        // answering, so the caller's next `stats()` includes them.
        Command::ExportKv(selector, tx) => {
            let result = core.export_kv(&selector);
            shared.publish(&core.stats());
            let _ = tx.send(result);
        }
        Command::ImportKv(blocks, tx) => {
            let result = core.import_kv(&blocks);
            shared.publish(&core.stats());
            let _ = tx.send(result);
        }
        Command::FlushKvTiers(tx) => {
            core.flush_kv_tiers();
            shared.publish(&core.stats());
            let _ = tx.send(());
        }
        Command::Shutdown => return Flow::Stop,
    }
    Flow::Continue
}

fn run(mut core: EngineCore, inbox: Receiver<Command>, shared: Arc<StatsCell>) {
    let _guard = StoppedGuard(shared.clone());
    let mut orphaned = false;
    'outer: loop {
        if !core.has_work() {
            if orphaned {
                break;
            }
            // Idle with prompt blocks kept for siblings: wake when they expire, to release them.
            let received = match core.kept_tails_expiry() {
                Some(at) => {
                    let wait = at.saturating_duration_since(std::time::Instant::now());
                    match inbox.recv_timeout(wait) {
                        Ok(cmd) => Some(cmd),
                        Err(RecvTimeoutError::Timeout) => None,
                        Err(RecvTimeoutError::Disconnected) => break,
                    }
                }
                None => match inbox.recv() {
                    Ok(cmd) => Some(cmd),
                    Err(_) => break,
                },
            };
            match received {
                Some(cmd) => {
                    if let Flow::Stop = apply(&mut core, cmd, &shared) {
                        break;
                    }
                }
                None => {
                    core.expire_kept_tails(std::time::Instant::now());
                    shared.publish(&core.stats());
                    continue;
                }
            }
        }
        loop {
            match inbox.try_recv() {
                Ok(cmd) => {
                    if let Flow::Stop = apply(&mut core, cmd, &shared) {
                        break 'outer;
                    }
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    orphaned = true;
                    break;
                }
            }
        }
        let progressed = core.step();
        shared.publish(&core.stats());
        if !progressed && core.kv_loads_pending() {
            // Only requests loading from the offload tiers: wait for a load, bounded so that
            // commands (submit, cancel, shutdown) are still served within a few milliseconds.
            core.wait_for_kv_load(KV_LOAD_WAIT);
        }
    }
    shared.set_stopped();
    core.fail_all(&stopped_error());
    while let Ok(cmd) = inbox.try_recv() {
        if let Command::Submit(_, _, tx) = cmd {
            let _ = tx.send(Err(stopped_error()));
        }
    }
    shared.publish(&core.stats());
}

//! Disaggregated serving, orchestrated per request by the frontend (or `rotor router`).
//!
//! When a model has prefill-role workers, the first attempt of each request runs
//! [`disaggregated`]: before the chosen decode worker generates, the frontend
//!
//! 1. hashes the prompt's full blocks and asks the decode worker which of them it already holds
//!    (its KV snapshot): only the blocks after that cached prefix are moved (a second turn of a
//!    conversation moves only its new blocks);
//! 2. decides (conditional disaggregation): local prefill on the decode worker when nothing is
//!    left to move (`cached`), when fewer than `min_prefill_tokens` prompt tokens are uncached
//!    there (`short_prompt`), or when the chosen prefill worker already runs
//!    `max_prefill_queue` prefills from here (`prefill_queue`);
//! 3. picks the prefill worker (the pool's prefill router: prefix overlap + pending prefill)
//!    and moves the blocks. Workers on the request plane send them to each other: the prefill
//!    worker's `kv_prefill_push` gets the decode worker's address and the transport (shared
//!    memory when both cards have the same `host_id` under `--kv-transport auto`, else TCP),
//!    prefills, sends each batch itself as its blocks are cached, and answers this router only
//!    one event per batch (blocks, bytes, transport, the import's outcome). Workers without a
//!    request-plane address (the in-process engines of `rotor serve`, test doubles) are
//!    relayed: `kv_prefill` streams the blocks here and they go on in batches to the decode
//!    worker's `kv_import` (counted as transport `relay`);
//! 4. lets the decode worker generate from the whole prompt: it hits the imported blocks in its
//!    prefix cache and recomputes only the prompt's tail (the tokens after the last full block,
//!    at least the last one), so the first token is sampled on the decode worker with the
//!    request's own seed. The prefill worker's sampled token is thrown away.
//!
//! Every failure — prefill worker gone or failing mid-transfer, a refused block (corrupt, another
//! layout or model, broken chain), a timeout — ends in local prefill on the decode worker with
//! whatever prefix was already imported: no request is lost for a transfer. Nothing stays pinned
//! for a transfer on either side (export pins a block only while copying it; an import commits
//! blocks as ordinary cached blocks), so a cancelled client (dropping the stream drops the calls,
//! which cancels the prefill on its worker) leaks no KV block. Every decision is counted.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures::StreamExt;
use rotor_protocol::{
    ErrorKind, GenerateRequest, KvPushEvent, KvTransport, PrefillPushRequest, PrefillRequest,
    WorkerId, WorkerRole,
};

use super::routed::RoutedInner;
use crate::backend::{Backend, OutputStream};

/// Why a request was prefilled on its decode worker instead of a prefill worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LocalReason {
    /// Decode workers but no routable prefill worker.
    NoPrefillWorker,
    /// Fewer uncached prompt tokens than `min_prefill_tokens`.
    ShortPrompt,
    /// The decode worker already holds every full block of the prompt.
    Cached,
    /// The prefill worker already runs `max_prefill_queue` prefills from here.
    PrefillQueue,
    /// The prefill worker failed or died before all blocks arrived.
    PrefillFailed,
    /// The decode worker's import call failed.
    TransferFailed,
    /// The decode worker refused a block (corrupt, another layout or model, broken chain).
    ImportRejected,
    /// The prefill and transfer took longer than the timeout.
    Timeout,
    /// A worker (or the model card) cannot move KV blocks.
    Unsupported,
}

impl LocalReason {
    pub const ALL: [LocalReason; 9] = [
        LocalReason::NoPrefillWorker,
        LocalReason::ShortPrompt,
        LocalReason::Cached,
        LocalReason::PrefillQueue,
        LocalReason::PrefillFailed,
        LocalReason::TransferFailed,
        LocalReason::ImportRejected,
        LocalReason::Timeout,
        LocalReason::Unsupported,
    ];

    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            LocalReason::NoPrefillWorker => "no_prefill_worker",
            LocalReason::ShortPrompt => "short_prompt",
            LocalReason::Cached => "cached",
            LocalReason::PrefillQueue => "prefill_queue",
            LocalReason::PrefillFailed => "prefill_failed",
            LocalReason::TransferFailed => "transfer_failed",
            LocalReason::ImportRejected => "import_rejected",
            LocalReason::Timeout => "timeout",
            LocalReason::Unsupported => "unsupported",
        }
    }
}

/// How a transfer's bytes went: relayed through this router, or worker to worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransferPath {
    /// Through this router (`kv_prefill` then `kv_import`): in-process engines, test doubles.
    Relay,
    /// Worker to worker over shared memory.
    Shm,
    /// Worker to worker over TCP.
    Tcp,
}

impl TransferPath {
    pub const ALL: [TransferPath; 3] = [TransferPath::Relay, TransferPath::Shm, TransferPath::Tcp];

    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            TransferPath::Relay => "relay",
            TransferPath::Shm => "shm",
            TransferPath::Tcp => "tcp",
        }
    }
}

impl From<KvTransport> for TransferPath {
    fn from(transport: KvTransport) -> Self {
        match transport {
            KvTransport::Shm => TransferPath::Shm,
            KvTransport::Tcp => TransferPath::Tcp,
        }
    }
}

/// Upper bounds (seconds) of the transfer-time histogram.
pub const TRANSFER_BUCKETS: [f64; 8] = [0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0];

/// The disaggregation counters of one model.
#[derive(Default)]
pub struct DisaggCounters {
    /// Requests whose prompt was prefilled on a prefill worker (its blocks moved).
    pub remote_prefills: AtomicU64,
    local: [AtomicU64; LocalReason::ALL.len()],
    /// Blocks imported by decode workers from prefill workers.
    pub transferred_blocks: AtomicU64,
    /// Bytes of blocks moved to decode workers, by [`TransferPath`] (`ALL` order).
    transferred_bytes: [AtomicU64; TransferPath::ALL.len()],
    /// Batches meant for shared memory that went over TCP (the prefill worker could not write
    /// the file).
    pub shm_fallbacks: AtomicU64,
    /// Blocks the decode worker already held when they arrived (not rewritten).
    pub already_cached_blocks: AtomicU64,
    /// Transfer time (prefill + move) histogram: counts per bucket (+Inf last), sum.
    transfer: Mutex<([u64; TRANSFER_BUCKETS.len() + 1], f64)>,
    /// Requests running a remote prefill or transfer now.
    pub in_transfer: AtomicU64,
    /// Whether "no prefill worker" was logged since the last remote prefill.
    warned: AtomicBool,
}

impl DisaggCounters {
    pub fn local(&self, reason: LocalReason) -> u64 {
        self.local[reason as usize].load(Ordering::Relaxed)
    }

    /// Bytes moved to decode workers over `path`.
    pub fn transferred_bytes(&self, path: TransferPath) -> u64 {
        self.transferred_bytes[path as usize].load(Ordering::Relaxed)
    }

    fn count_bytes(&self, path: TransferPath, bytes: u64) {
        self.transferred_bytes[path as usize].fetch_add(bytes, Ordering::Relaxed);
    }

    fn count_outcome(&self, outcome: &rotor_protocol::KvImportOutcome) {
        self.transferred_blocks
            .fetch_add(outcome.imported, Ordering::Relaxed);
        self.already_cached_blocks
            .fetch_add(outcome.already_cached, Ordering::Relaxed);
    }

    fn count_local(&self, model: &str, reason: LocalReason) {
        self.local[reason as usize].fetch_add(1, Ordering::Relaxed);
        if reason == LocalReason::NoPrefillWorker {
            if !self.warned.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    model,
                    "decode workers are serving without a prefill worker: requests are prefilled \
                     locally (aggregated) until one registers (--enforce-disagg refuses instead)"
                );
            }
        } else {
            tracing::debug!(model, reason = reason.label(), "local prefill");
        }
    }

    fn observe_transfer(&self, seconds: f64) {
        let mut histogram = self.transfer.lock().unwrap_or_else(PoisonError::into_inner);
        let bucket = TRANSFER_BUCKETS
            .iter()
            .position(|&bound| seconds <= bound)
            .unwrap_or(TRANSFER_BUCKETS.len());
        histogram.0[bucket] += 1;
        histogram.1 += seconds;
    }

    /// Cumulative bucket counts (per [`TRANSFER_BUCKETS`], then +Inf) and the sum of seconds.
    pub fn transfer_histogram(&self) -> (Vec<u64>, f64) {
        let histogram = self.transfer.lock().unwrap_or_else(PoisonError::into_inner);
        let mut total = 0;
        let cumulative = histogram
            .0
            .iter()
            .map(|n| {
                total += n;
                total
            })
            .collect();
        (cumulative, histogram.1)
    }
}

/// Whether requests of this pool go through [`disaggregated`]: some worker has a role.
pub fn applies(inner: &RoutedInner) -> bool {
    let pool = inner.pool();
    pool.count_of(WorkerRole::Prefill) > 0 || pool.count_of(WorkerRole::Decode) > 0
}

/// The decode worker's outputs for `req`, after moving its prompt's KV there when worth it.
/// See the module docs.
pub fn disaggregated(
    inner: Arc<RoutedInner>,
    decode: Arc<dyn Backend>,
    req: GenerateRequest,
) -> OutputStream {
    let run = async move {
        prepare(&inner, decode.as_ref(), &req).await;
        decode.generate(req)
    };
    futures::stream::once(run)
        .flat_map(|started| match started {
            Ok(outputs) => outputs.left_stream(),
            Err(error) => futures::stream::iter([Err(error)]).right_stream(),
        })
        .boxed()
}

/// Releases a prefill worker's place in the pool when the transfer ends (or is dropped).
struct PrefillGuard<'a> {
    inner: &'a RoutedInner,
    worker: WorkerId,
    tracking: Option<String>,
}

impl Drop for PrefillGuard<'_> {
    fn drop(&mut self) {
        self.inner
            .pool()
            .finish(self.worker, self.tracking.as_deref());
    }
}

/// Counts one request as in transfer while alive.
struct InTransfer<'a>(&'a DisaggCounters);

impl Drop for InTransfer<'_> {
    fn drop(&mut self) {
        self.0.in_transfer.fetch_sub(1, Ordering::Relaxed);
    }
}

/// How long the decode worker's KV snapshot may take before it counts as holding nothing.
const SNAPSHOT_TIMEOUT: Duration = Duration::from_secs(2);

/// Leading blocks of `hashes` the decode worker holds (0 when it cannot say in time).
async fn cached_on(decode: &dyn Backend, hashes: &[u64]) -> Option<usize> {
    let fetch = decode.kv_snapshot()?;
    let held = match tokio::time::timeout(SNAPSHOT_TIMEOUT, fetch).await {
        Ok(Ok(snapshot)) => snapshot.block_hashes,
        _ => return Some(0),
    };
    // The snapshot's hashes are sorted ascending.
    Some(
        hashes
            .iter()
            .take_while(|h| held.binary_search(h).is_ok())
            .count(),
    )
}

/// Moves the KV of `req`'s prompt to `decode` when worth it; never fails (a failure means local
/// prefill, counted).
async fn prepare(inner: &RoutedInner, decode: &dyn Backend, req: &GenerateRequest) {
    let counters = &inner.disagg_counters;
    let model = inner.model.as_str();
    let config = &inner.disagg;
    if !req.task.is_generate() || req.sampling.prompt_logprobs.is_some() {
        // An embedding or a scored prompt computes every prompt position on its worker (no
        // prefix-cache hit), so moving KV there would be wasted.
        counters.count_local(model, LocalReason::Unsupported);
        return;
    }
    if inner.pool().routable_of(WorkerRole::Prefill) == 0 {
        counters.count_local(model, LocalReason::NoPrefillWorker);
        return;
    }
    let Some(block_size) = inner.kv_block_size.filter(|&size| size > 0) else {
        counters.count_local(model, LocalReason::Unsupported);
        return;
    };
    let hashes = rotor_kv_router::sequence_hashes(&req.token_ids, block_size as usize);
    let Some(cached) = cached_on(decode, &hashes).await else {
        counters.count_local(model, LocalReason::Unsupported);
        return;
    };
    if cached == hashes.len() {
        counters.count_local(model, LocalReason::Cached);
        return;
    }
    let uncached_tokens = req.token_ids.len() - cached * block_size as usize;
    if uncached_tokens < config.min_prefill_tokens {
        counters.count_local(model, LocalReason::ShortPrompt);
        return;
    }
    let selected = inner
        .pool()
        .select_prefill(&req.id, &req.token_ids, Instant::now());
    let Some((choice, queued)) = selected else {
        counters.count_local(model, LocalReason::NoPrefillWorker);
        return;
    };
    let _guard = PrefillGuard {
        inner,
        worker: choice.worker,
        tracking: choice.tracking.clone(),
    };
    if queued >= config.max_prefill_queue {
        counters.count_local(model, LocalReason::PrefillQueue);
        return;
    }
    counters.in_transfer.fetch_add(1, Ordering::Relaxed);
    let _in_transfer = InTransfer(counters);
    let mut prefill = req.clone();
    prefill.id = format!("{}-prefill", req.id);
    let call = PrefillRequest {
        request: prefill,
        sequence_hashes: hashes[cached..].to_vec(),
    };
    let started = Instant::now();
    let moving = async {
        match (choice.backend.kv_peer(), decode.kv_peer()) {
            (Some(from), Some(to)) => {
                let transport = config
                    .transport
                    .resolve(from.host_id.as_deref(), to.host_id.as_deref());
                let push = PrefillPushRequest {
                    prefill: call,
                    target_address: to.address,
                    transport,
                    batch_bytes: config.import_batch_bytes as u64,
                };
                direct(choice.backend.as_ref(), push, counters).await
            }
            _ => {
                relay(
                    choice.backend.as_ref(),
                    decode,
                    call,
                    config.import_batch_bytes,
                    counters,
                )
                .await
            }
        }
    };
    let moved = tokio::time::timeout(config.timeout, moving).await;
    let seconds = started.elapsed().as_secs_f64();
    match moved {
        Ok(Ok(blocks)) => {
            counters.remote_prefills.fetch_add(1, Ordering::Relaxed);
            counters.observe_transfer(seconds);
            counters.warned.store(false, Ordering::Relaxed);
            tracing::debug!(request_id = %req.id, model, cached_blocks = cached, blocks,
                prefill_worker = format_args!("{:016x}", choice.worker), seconds,
                "remote prefill");
        }
        Ok(Err(Failure { reason, error })) => {
            tracing::warn!(request_id = %req.id, model, reason = reason.label(), %error,
                prefill_worker = format_args!("{:016x}", choice.worker),
                "remote prefill failed; prefilling on the decode worker");
            if reason == LocalReason::PrefillFailed && error.starts_with("dead:") {
                inner.pool().quarantine(choice.worker, Instant::now());
            }
            counters.count_local(model, reason);
        }
        Err(_) => {
            tracing::warn!(request_id = %req.id, model, timeout = ?config.timeout,
                "remote prefill timed out; prefilling on the decode worker");
            counters.count_local(model, LocalReason::Timeout);
        }
    }
}

struct Failure {
    reason: LocalReason,
    error: String,
}

impl Failure {
    fn new(reason: LocalReason, error: impl Into<String>) -> Self {
        Self {
            reason,
            error: error.into(),
        }
    }
}

/// A prefill failure: `dead:` marks a worker to quarantine.
fn prefill_failure(error: rotor_protocol::WireError) -> Failure {
    let dead = matches!(
        error.kind,
        ErrorKind::Disconnected | ErrorKind::EngineStopped
    );
    let prefix = if dead { "dead: " } else { "" };
    Failure::new(
        LocalReason::PrefillFailed,
        format!("{prefix}{}", error.message),
    )
}

/// The prefill worker sends the blocks to the decode worker itself; only its per-batch events
/// come here. The number of blocks the decode worker holds afterwards.
async fn direct(
    prefill: &dyn Backend,
    push: PrefillPushRequest,
    counters: &DisaggCounters,
) -> Result<u64, Failure> {
    let Some(mut events) = prefill.prefill_push(push) else {
        return Err(Failure::new(
            LocalReason::Unsupported,
            "the prefill worker cannot send KV",
        ));
    };
    let mut moved = 0;
    while let Some(event) = events.next().await {
        match event {
            Ok(KvPushEvent::Imported {
                transport,
                shm_fallback,
                bytes,
                outcome,
                ..
            }) => {
                counters.count_bytes(transport.into(), bytes);
                if shm_fallback {
                    counters.shm_fallbacks.fetch_add(1, Ordering::Relaxed);
                }
                counters.count_outcome(&outcome);
                if let Some((reason, message)) = outcome.stopped {
                    return Err(Failure::new(
                        LocalReason::ImportRejected,
                        format!("{reason}: {message}"),
                    ));
                }
                moved += outcome.imported + outcome.already_cached;
            }
            Ok(KvPushEvent::TransferFailed { message }) => {
                return Err(Failure::new(LocalReason::TransferFailed, message));
            }
            Err(error) => return Err(prefill_failure(error)),
        }
    }
    Ok(moved)
}

/// Streams the blocks from the prefill worker through this router into the decode worker; the
/// number of blocks the decode worker holds afterwards (imported or already there).
async fn relay(
    prefill: &dyn Backend,
    decode: &dyn Backend,
    call: PrefillRequest,
    batch_bytes: usize,
    counters: &DisaggCounters,
) -> Result<u64, Failure> {
    let Some(mut blocks) = prefill.prefill_export(call) else {
        return Err(Failure::new(
            LocalReason::Unsupported,
            "the prefill worker cannot export KV",
        ));
    };
    let mut batch: Vec<Vec<u8>> = Vec::new();
    let mut batch_len = 0;
    let mut moved = 0;
    loop {
        match blocks.next().await {
            Some(Ok(block)) => {
                batch_len += block.len();
                batch.push(block);
                if batch_len >= batch_bytes {
                    moved += import(decode, std::mem::take(&mut batch), counters).await?;
                    batch_len = 0;
                }
            }
            Some(Err(error)) => {
                // What arrived is a valid prefix: keep it, compute the rest locally.
                if !batch.is_empty() {
                    let _ = import(decode, batch, counters).await;
                }
                return Err(prefill_failure(error));
            }
            None => break,
        }
    }
    if !batch.is_empty() {
        moved += import(decode, batch, counters).await?;
    }
    Ok(moved)
}

/// One import call; the blocks the decode worker holds from it.
async fn import(
    decode: &dyn Backend,
    batch: Vec<Vec<u8>>,
    counters: &DisaggCounters,
) -> Result<u64, Failure> {
    let bytes: usize = batch.iter().map(Vec::len).sum();
    let Some(call) = decode.import_kv(batch) else {
        return Err(Failure::new(
            LocalReason::Unsupported,
            "the decode worker cannot import KV",
        ));
    };
    let outcome = call
        .await
        .map_err(|error| Failure::new(LocalReason::TransferFailed, error.message))?;
    counters.count_bytes(TransferPath::Relay, bytes as u64);
    counters.count_outcome(&outcome);
    if let Some((reason, message)) = outcome.stopped {
        return Err(Failure::new(
            LocalReason::ImportRejected,
            format!("{reason}: {message}"),
        ));
    }
    Ok(outcome.imported + outcome.already_cached)
}

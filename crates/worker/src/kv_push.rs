//! Direct KV transfer, worker to worker: the prefill worker sends a prompt's blocks straight
//! to the decode worker the router named, and reports to the router only what each batch did.
//!
//! - [`KvPusher`]: the prefill side. Takes the block stream of
//!   [`prefill_export`](crate::disagg::prefill_export) and sends it in batches of at most
//!   `batch_bytes` — a batch also leaves as soon as no further block is ready, so the transfer
//!   overlaps the rest of the prefill — to the decode worker: over shared memory
//!   ([`crate::kv_shm`], only a descriptor on the request plane) or TCP (the block batch in a
//!   `kv_import` call). A failed shared-memory write (no directory, permission, no space) sends
//!   that batch over TCP and is counted. One [`KvPushEvent`] per batch goes back to the router.
//! - [`KvPrefillPushHandler`] ([`KV_PREFILL_PUSH_ENDPOINT`](rotor_protocol::kv_push::KV_PREFILL_PUSH_ENDPOINT)) and [`KvImportShmHandler`]
//!   ([`KV_IMPORT_SHM_ENDPOINT`]): the request-plane endpoints.
//!
//! Cancellation: the router dropping the push call drops the block stream (which cancels the
//! prefill), any import call in flight, and any shared-memory file not yet removed.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{FutureExt, StreamExt};
use rotor_protocol::kv_push::KV_IMPORT_SHM_ENDPOINT;
use rotor_protocol::worker::{encode_block_batch, KvImportOutcome, KV_IMPORT_ENDPOINT};
use rotor_protocol::{
    ErrorKind, KvPushEvent, KvTransport, PrefillPushRequest, ShmBlockBatch, WireError,
};
use rotor_runtime::request_plane::ResponseChunks;
use rotor_runtime::{RequestContext, RequestPlaneClient, RequestPlaneConfig, StreamHandler};

use crate::disagg::KvBlockStream;
use crate::engine::WorkerEngine;
use crate::kv_shm;

/// What a worker's direct KV transfers did, both sides.
#[derive(Debug, Default)]
pub struct KvPushStats {
    /// Bytes of blocks this worker sent to decode workers, by [`KvTransport`] (`ALL` order).
    sent_bytes: [AtomicU64; 2],
    /// Batches this worker sent, by transport.
    sent_batches: [AtomicU64; 2],
    /// Batches meant for shared memory that went over TCP (the file could not be written).
    pub shm_fallbacks: AtomicU64,
    /// Shared-memory batches this worker received and read (decode side).
    pub shm_received_batches: AtomicU64,
}

impl KvPushStats {
    fn index(transport: KvTransport) -> usize {
        match transport {
            KvTransport::Shm => 0,
            KvTransport::Tcp => 1,
        }
    }

    pub fn sent_bytes(&self, transport: KvTransport) -> u64 {
        self.sent_bytes[Self::index(transport)].load(Ordering::Relaxed)
    }

    pub fn sent_batches(&self, transport: KvTransport) -> u64 {
        self.sent_batches[Self::index(transport)].load(Ordering::Relaxed)
    }
}

/// Most decode-worker connections a pusher keeps open (more are rare: each is one worker).
const MAX_CLIENTS: usize = 64;

/// The prefill side of direct KV transfer (see the module docs). Cheap to share.
pub struct KvPusher {
    shm_dir: PathBuf,
    request_plane: RequestPlaneConfig,
    clients: Mutex<HashMap<String, RequestPlaneClient>>,
    stats: Arc<KvPushStats>,
}

impl KvPusher {
    pub fn new(shm_dir: PathBuf, request_plane: RequestPlaneConfig) -> Self {
        Self {
            shm_dir,
            request_plane,
            clients: Mutex::new(HashMap::new()),
            stats: Arc::new(KvPushStats::default()),
        }
    }

    pub fn stats(&self) -> &Arc<KvPushStats> {
        &self.stats
    }

    pub fn shm_dir(&self) -> &std::path::Path {
        &self.shm_dir
    }

    /// Sends `blocks` to `target_address` as [`PrefillPushRequest`] says; one event per batch.
    /// A prefill failure ends the stream as an error (after the blocks before it were sent).
    pub fn push(
        self: Arc<Self>,
        blocks: KvBlockStream,
        target_address: String,
        transport: KvTransport,
        batch_bytes: usize,
    ) -> BoxStream<'static, Result<KvPushEvent, WireError>> {
        let state = PushState {
            blocks: blocks.fuse(),
            pusher: self,
            target_address,
            transport,
            batch_bytes: batch_bytes.max(1),
            pending_error: None,
            done: false,
        };
        futures::stream::unfold(state, next_event).boxed()
    }

    async fn client(&self, address: &str) -> Result<RequestPlaneClient, String> {
        let cached = self
            .clients
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(address)
            .cloned();
        if let Some(client) = cached {
            return Ok(client);
        }
        let client = RequestPlaneClient::connect(address.to_string(), self.request_plane)
            .await
            .map_err(|error| format!("decode worker at {address}: {error}"))?;
        let mut clients = self.clients.lock().unwrap_or_else(PoisonError::into_inner);
        if clients.len() >= MAX_CLIENTS {
            clients.clear();
        }
        Ok(clients.entry(address.to_string()).or_insert(client).clone())
    }

    /// One import call on the decode worker; its outcome or why it failed.
    async fn import(
        &self,
        address: &str,
        endpoint: &str,
        payload: Vec<u8>,
    ) -> Result<KvImportOutcome, String> {
        let client = self.client(address).await?;
        let mut chunks = client
            .call(endpoint, payload.into())
            .await
            .map_err(|error| format!("decode worker at {address}: {error}"))?;
        let chunk = chunks
            .next()
            .await
            .ok_or_else(|| format!("decode worker at {address}: the import returned nothing"))?
            .map_err(|error| format!("decode worker at {address}: {}", error.message))?;
        serde_json::from_slice(&chunk)
            .map_err(|error| format!("decode worker at {address}: an undecodable outcome: {error}"))
    }

    /// Sends one batch; the event for the router.
    async fn send_batch(
        &self,
        address: &str,
        transport: KvTransport,
        batch: Vec<Vec<u8>>,
    ) -> KvPushEvent {
        let blocks = batch.len() as u64;
        let bytes: u64 = batch.iter().map(|b| b.len() as u64).sum();
        let mut shm_fallback = false;
        let mut batch = batch;
        if transport == KvTransport::Shm {
            let dir = self.shm_dir.clone();
            // The write owns the batch; a dropped (cancelled) wait drops the finished write's
            // `ShmFile`, which removes the file.
            let written =
                tokio::task::spawn_blocking(move || (kv_shm::write_batch(&dir, &batch), batch))
                    .await;
            match written {
                Ok((Ok(file), _)) => {
                    let payload = serde_json::to_vec(&file.descriptor)
                        .expect("invariant: a ShmBlockBatch serializes");
                    let result = self.import(address, KV_IMPORT_SHM_ENDPOINT, payload).await;
                    // The decode worker removed it after reading; this covers every other end.
                    drop(file);
                    return self.imported(KvTransport::Shm, false, blocks, bytes, result);
                }
                Ok((Err(error), returned)) => {
                    tracing::warn!(dir = %self.shm_dir.display(), %error,
                        "writing KV blocks to shared memory failed; sending them over TCP");
                    self.stats.shm_fallbacks.fetch_add(1, Ordering::Relaxed);
                    shm_fallback = true;
                    batch = returned;
                }
                Err(error) => {
                    return KvPushEvent::TransferFailed {
                        message: format!("the shared-memory write stopped: {error}"),
                    }
                }
            }
        }
        let payload = encode_block_batch(&batch);
        drop(batch);
        let result = self.import(address, KV_IMPORT_ENDPOINT, payload).await;
        self.imported(KvTransport::Tcp, shm_fallback, blocks, bytes, result)
    }

    fn imported(
        &self,
        transport: KvTransport,
        shm_fallback: bool,
        blocks: u64,
        bytes: u64,
        result: Result<KvImportOutcome, String>,
    ) -> KvPushEvent {
        match result {
            Ok(outcome) => {
                let index = KvPushStats::index(transport);
                self.stats.sent_bytes[index].fetch_add(bytes, Ordering::Relaxed);
                self.stats.sent_batches[index].fetch_add(1, Ordering::Relaxed);
                KvPushEvent::Imported {
                    transport,
                    shm_fallback,
                    blocks,
                    bytes,
                    outcome,
                }
            }
            Err(message) => KvPushEvent::TransferFailed { message },
        }
    }
}

struct PushState {
    blocks: futures::stream::Fuse<KvBlockStream>,
    pusher: Arc<KvPusher>,
    target_address: String,
    transport: KvTransport,
    batch_bytes: usize,
    /// A prefill error met while collecting the last batch: reported after that batch.
    pending_error: Option<WireError>,
    done: bool,
}

async fn next_event(mut state: PushState) -> Option<(Result<KvPushEvent, WireError>, PushState)> {
    if state.done {
        return None;
    }
    if let Some(error) = state.pending_error.take() {
        state.done = true;
        return Some((Err(error), state));
    }
    let (batch, error) = collect_batch(&mut state.blocks, state.batch_bytes).await;
    if batch.is_empty() {
        state.done = true;
        return error.map(|error| (Err(error), state));
    }
    state.pending_error = error;
    let event = state
        .pusher
        .send_batch(&state.target_address, state.transport, batch)
        .await;
    let go_on =
        matches!(&event, KvPushEvent::Imported { outcome, .. } if outcome.stopped.is_none());
    if !go_on {
        // Dropping the block stream (with the state) cancels the prefill.
        state.done = true;
    }
    Some((Ok(event), state))
}

/// The next batch: at least one block (waiting for it), then every block already waiting, up to
/// `batch_bytes`. An error ends the batch and is returned beside it.
async fn collect_batch(
    blocks: &mut futures::stream::Fuse<KvBlockStream>,
    batch_bytes: usize,
) -> (Vec<Vec<u8>>, Option<WireError>) {
    let mut batch = Vec::new();
    let mut len = 0;
    match blocks.next().await {
        Some(Ok(block)) => {
            len += block.len();
            batch.push(block);
        }
        Some(Err(error)) => return (batch, Some(error)),
        None => return (batch, None),
    }
    while len < batch_bytes {
        match blocks.next().now_or_never() {
            Some(Some(Ok(block))) => {
                len += block.len();
                batch.push(block);
            }
            Some(Some(Err(error))) => return (batch, Some(error)),
            Some(None) | None => break,
        }
    }
    (batch, None)
}

fn refuse(kind: ErrorKind, message: String) -> ResponseChunks {
    futures::stream::iter([Err(WireError::new(kind, message))]).boxed()
}

/// The [`KV_PREFILL_PUSH_ENDPOINT`](rotor_protocol::kv_push::KV_PREFILL_PUSH_ENDPOINT) handler: a JSON [`PrefillPushRequest`] in, one JSON
/// [`KvPushEvent`] per batch out.
pub struct KvPrefillPushHandler {
    engine: Arc<dyn WorkerEngine>,
    pusher: Arc<KvPusher>,
}

impl KvPrefillPushHandler {
    pub fn new(engine: Arc<dyn WorkerEngine>, pusher: Arc<KvPusher>) -> Self {
        Self { engine, pusher }
    }
}

impl StreamHandler for KvPrefillPushHandler {
    fn handle(&self, request: Bytes, ctx: RequestContext) -> ResponseChunks {
        let req: PrefillPushRequest = match serde_json::from_slice(&request) {
            Ok(req) => req,
            Err(error) => {
                return refuse(
                    ErrorKind::InvalidRequest,
                    format!("an undecodable prefill push request: {error}"),
                )
            }
        };
        tracing::debug!(rp_request = ctx.request_id, peer = %ctx.peer,
            id = %req.prefill.request.id, blocks = req.prefill.sequence_hashes.len(),
            target = %req.target_address, transport = req.transport.label(), "kv_prefill_push");
        let Some(blocks) = self.engine.prefill_export(req.prefill) else {
            return refuse(
                ErrorKind::InvalidRequest,
                format!(
                    "model {:?}: this worker's engine cannot export KV blocks",
                    self.engine.card().name
                ),
            );
        };
        Arc::clone(&self.pusher)
            .push(
                blocks,
                req.target_address,
                req.transport,
                usize::try_from(req.batch_bytes).unwrap_or(usize::MAX),
            )
            .map(|event| {
                event.map(|event| {
                    Bytes::from(
                        serde_json::to_vec(&event).expect("invariant: a KvPushEvent serializes"),
                    )
                })
            })
            .boxed()
    }
}

/// The [`KV_IMPORT_SHM_ENDPOINT`] handler: a JSON [`ShmBlockBatch`] in, one JSON
/// [`KvImportOutcome`] out. Reads and removes the file (only one of this worker's
/// shared-memory directory, see [`crate::kv_shm`]), then imports like `kv_import`.
pub struct KvImportShmHandler {
    engine: Arc<dyn WorkerEngine>,
    shm_dir: PathBuf,
    stats: Arc<KvPushStats>,
}

impl KvImportShmHandler {
    pub fn new(engine: Arc<dyn WorkerEngine>, pusher: &KvPusher) -> Self {
        Self {
            engine,
            shm_dir: pusher.shm_dir.clone(),
            stats: Arc::clone(&pusher.stats),
        }
    }
}

impl StreamHandler for KvImportShmHandler {
    fn handle(&self, request: Bytes, ctx: RequestContext) -> ResponseChunks {
        let batch: ShmBlockBatch = match serde_json::from_slice(&request) {
            Ok(batch) => batch,
            Err(error) => {
                return refuse(
                    ErrorKind::InvalidRequest,
                    format!("an undecodable shared-memory batch: {error}"),
                )
            }
        };
        tracing::debug!(rp_request = ctx.request_id, peer = %ctx.peer, path = %batch.path,
            blocks = batch.blocks.len(), "kv_import_shm");
        let engine = Arc::clone(&self.engine);
        let dir = self.shm_dir.clone();
        let stats = Arc::clone(&self.stats);
        let import = async move {
            let read = tokio::task::spawn_blocking(move || kv_shm::read_batch(&dir, &batch))
                .await
                .map_err(|error| {
                    WireError::new(ErrorKind::Internal, format!("reading the batch: {error}"))
                })?;
            let blocks =
                read.map_err(|error| WireError::new(ErrorKind::InvalidRequest, error.to_string()))?;
            stats.shm_received_batches.fetch_add(1, Ordering::Relaxed);
            let Some(import) = engine.import_kv(blocks) else {
                return Err(WireError::new(
                    ErrorKind::InvalidRequest,
                    format!(
                        "model {:?}: this worker's engine cannot import KV blocks",
                        engine.card().name
                    ),
                ));
            };
            let outcome = import.await?;
            Ok(Bytes::from(
                serde_json::to_vec(&outcome).expect("invariant: a KvImportOutcome serializes"),
            ))
        };
        futures::stream::once(import).boxed()
    }
}

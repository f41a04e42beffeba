//! Disaggregated serving on the worker side: the prefill call a decode worker's KV comes from,
//! and the import that puts received blocks into a worker's prefix cache.
//!
//! - [`prefill_export`]: runs the prompt with `max_tokens` 1 (the sampled token is thrown away:
//!   the decode worker recomputes the prompt's tail and samples the first token itself) and
//!   exports the asked-for blocks with `EngineHandle::export_kv` as they become cached, step by
//!   step, so the transfer overlaps the rest of the prefill. Export pins each block only
//!   while it is copied, so nothing stays pinned awaiting a transfer: a cancelled or failed
//!   transfer leaves the blocks as ordinary cached-free blocks (reusable, evictable).
//! - [`import_blocks`]: `EngineHandle::import_kv` with its report in wire form.
//! - [`KvPrefillHandler`] and [`KvImportHandler`]: the request-plane endpoints
//!   ([`KV_PREFILL_ENDPOINT`], [`KV_IMPORT_ENDPOINT`]) over any [`WorkerEngine`].
//!
//! [`KV_PREFILL_ENDPOINT`]: rotor_protocol::worker::KV_PREFILL_ENDPOINT
//! [`KV_IMPORT_ENDPOINT`]: rotor_protocol::worker::KV_IMPORT_ENDPOINT

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use futures::{FutureExt, StreamExt};
use rotor_engine::{EngineHandle, KvExportSelector, KvTransferError};
use rotor_protocol::worker::{decode_block_batch, KvImportOutcome, PrefillRequest};
use rotor_protocol::{ErrorKind, WireError};
use rotor_runtime::request_plane::ResponseChunks;
use rotor_runtime::{RequestContext, StreamHandler};

use crate::engine::WorkerEngine;

/// Encoded KV blocks in chain order, or one error that ends the stream.
pub type KvBlockStream = BoxStream<'static, Result<Vec<u8>, WireError>>;

fn transfer_error(error: KvTransferError) -> WireError {
    let kind = match error {
        KvTransferError::EngineStopped => ErrorKind::EngineStopped,
        KvTransferError::Unsupported | KvTransferError::PrefixCachingDisabled => {
            ErrorKind::InvalidRequest
        }
        KvTransferError::Runner(_) => ErrorKind::Internal,
    };
    WireError::new(kind, error.to_string())
}

/// Cancels the prefill in the engine when the call is dropped before the prompt is done.
struct CancelPrefill {
    engine: EngineHandle,
    id: String,
    done: bool,
}

impl Drop for CancelPrefill {
    fn drop(&mut self) {
        if !self.done {
            self.engine.cancel(&self.id);
        }
    }
}

/// What a worker's prefill exports did (see [`prefill_export`]).
#[derive(Debug, Default)]
pub struct PrefillExportStats {
    /// Blocks streamed while their prompt was still being prefilled (the transfer overlapping
    /// the compute), and after it finished.
    pub early_blocks: AtomicU64,
    pub late_blocks: AtomicU64,
}

/// Prefills `req.request` on `engine` and streams the blocks of `req.sequence_hashes` (the
/// longest run of them cached) as they become cached: after every engine step that stored
/// blocks (the engine's KV events are the signal), the newly cached run is exported and sent,
/// so the transfer overlaps the rest of the prefill; what is left goes once the prompt is done.
/// See the module docs.
pub fn prefill_export(
    engine: EngineHandle,
    req: PrefillRequest,
    stats: Arc<PrefillExportStats>,
) -> KvBlockStream {
    let PrefillRequest {
        mut request,
        sequence_hashes,
    } = req;
    request.stop.max_tokens = 1;
    request.stop.min_tokens = 0;
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, WireError>>(64);
    tokio::spawn(async move {
        // Wake-ups only: every batch of events means the cache may have grown.
        let mut events = engine.subscribe_kv_events();
        let _ = events.read();
        let mut guard = CancelPrefill {
            engine: engine.clone(),
            id: request.id.clone(),
            done: false,
        };
        let mut outputs = match engine.submit(request) {
            Ok(outputs) => outputs,
            Err(error) => {
                let _ = tx.send(Err(error)).await;
                return;
            }
        };
        let mut sent = 0;
        let mut events_open = true;
        loop {
            tokio::select! {
                out = outputs.recv() => match out {
                    Some(Ok(out)) if out.finish_reason.is_some() => break,
                    Some(Ok(_)) => {}
                    Some(Err(error)) => {
                        guard.done = true;
                        let _ = tx.send(Err(error)).await;
                        return;
                    }
                    None => {
                        let error = WireError::new(
                            ErrorKind::EngineStopped,
                            "the prefill ended without a finish reason",
                        );
                        let _ = tx.send(Err(error)).await;
                        return;
                    }
                },
                open = events.wait(), if events_open && sent < sequence_hashes.len() => {
                    events_open = open;
                    let _ = events.read();
                    match send_cached(&engine, &sequence_hashes, &mut sent, &tx).await {
                        Ok(n) => {
                            stats.early_blocks.fetch_add(n, Ordering::Relaxed);
                        }
                        // The receiver is gone (the call was cancelled): the guard cancels
                        // the prefill.
                        Err(()) => return,
                    }
                }
            }
        }
        guard.done = true;
        if let Ok(n) = send_cached(&engine, &sequence_hashes, &mut sent, &tx).await {
            stats.late_blocks.fetch_add(n, Ordering::Relaxed);
        }
    });
    futures::stream::unfold(rx, |mut rx| async move {
        let item = rx.recv().await?;
        Some((item, rx))
    })
    .boxed()
}

/// Exports the longest cached run of `hashes[*sent..]` and sends it; the blocks sent, or
/// `Err` when the receiver is gone. An export error is sent and ends the run (`*sent` set to
/// the end, so nothing more is tried).
async fn send_cached(
    engine: &EngineHandle,
    hashes: &[u64],
    sent: &mut usize,
    tx: &tokio::sync::mpsc::Sender<Result<Vec<u8>, WireError>>,
) -> Result<u64, ()> {
    if *sent >= hashes.len() {
        return Ok(0);
    }
    let export = engine
        .export_kv(KvExportSelector::SequenceHashes(hashes[*sent..].to_vec()))
        .await;
    let blocks = match export {
        Ok(export) => export.blocks,
        Err(error) => {
            *sent = hashes.len();
            return tx
                .send(Err(transfer_error(error)))
                .await
                .map(|_| 0)
                .map_err(|_| ());
        }
    };
    let n = blocks.len();
    for block in blocks {
        tx.send(Ok(block)).await.map_err(|_| ())?;
    }
    *sent += n;
    Ok(n as u64)
}

/// Imports `blocks` (chain order) into `engine`'s prefix cache.
pub fn import_blocks(
    engine: EngineHandle,
    blocks: Vec<Vec<u8>>,
) -> BoxFuture<'static, Result<KvImportOutcome, WireError>> {
    async move {
        let report = engine.import_kv(blocks).await.map_err(transfer_error)?;
        Ok(KvImportOutcome {
            imported: report.imported as u64,
            already_cached: report.already_cached as u64,
            stopped: report.stopped.map(|stop| {
                (
                    stop.error.reason().label().to_string(),
                    stop.error.to_string(),
                )
            }),
        })
    }
    .boxed()
}

fn unsupported(engine: &dyn WorkerEngine, what: &str) -> WireError {
    WireError::new(
        ErrorKind::InvalidRequest,
        format!(
            "model {:?}: this worker's engine cannot {what} KV blocks",
            engine.card().name
        ),
    )
}

/// The [`KV_PREFILL_ENDPOINT`](rotor_protocol::worker::KV_PREFILL_ENDPOINT) handler: a JSON
/// [`PrefillRequest`] in, one encoded block per chunk out.
pub struct KvPrefillHandler {
    engine: Arc<dyn WorkerEngine>,
}

impl KvPrefillHandler {
    pub fn new(engine: Arc<dyn WorkerEngine>) -> Self {
        Self { engine }
    }
}

impl StreamHandler for KvPrefillHandler {
    fn handle(&self, request: Bytes, ctx: RequestContext) -> ResponseChunks {
        let req: PrefillRequest = match serde_json::from_slice(&request) {
            Ok(req) => req,
            Err(error) => {
                let error = WireError::new(
                    ErrorKind::InvalidRequest,
                    format!("an undecodable prefill request: {error}"),
                );
                return futures::stream::iter([Err(error)]).boxed();
            }
        };
        tracing::debug!(rp_request = ctx.request_id, peer = %ctx.peer, id = %req.request.id,
            prompt = req.request.token_ids.len(), blocks = req.sequence_hashes.len(), "kv_prefill");
        match self.engine.prefill_export(req) {
            Some(blocks) => blocks.map(|block| block.map(Bytes::from)).boxed(),
            None => {
                futures::stream::iter([Err(unsupported(self.engine.as_ref(), "export"))]).boxed()
            }
        }
    }
}

/// The [`KV_IMPORT_ENDPOINT`](rotor_protocol::worker::KV_IMPORT_ENDPOINT) handler: a block
/// batch in, one JSON [`KvImportOutcome`] out.
pub struct KvImportHandler {
    engine: Arc<dyn WorkerEngine>,
}

impl KvImportHandler {
    pub fn new(engine: Arc<dyn WorkerEngine>) -> Self {
        Self { engine }
    }
}

impl StreamHandler for KvImportHandler {
    fn handle(&self, request: Bytes, ctx: RequestContext) -> ResponseChunks {
        let Some(blocks) = decode_block_batch(&request) else {
            let error = WireError::new(
                ErrorKind::InvalidRequest,
                "an undecodable KV block batch (truncated or trailing bytes)",
            );
            return futures::stream::iter([Err(error)]).boxed();
        };
        tracing::debug!(rp_request = ctx.request_id, peer = %ctx.peer, blocks = blocks.len(),
            "kv_import");
        let Some(import) = self.engine.import_kv(blocks) else {
            return futures::stream::iter([Err(unsupported(self.engine.as_ref(), "import"))])
                .boxed();
        };
        futures::stream::once(import)
            .map(|outcome| {
                outcome.map(|outcome| {
                    Bytes::from(
                        serde_json::to_vec(&outcome)
                            .expect("invariant: a KvImportOutcome serializes"),
                    )
                })
            })
            .boxed()
    }
}

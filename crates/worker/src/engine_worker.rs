//! [`EngineWorker`]: a [`WorkerEngine`] over a running `rotor_engine` engine (the native model
//! runner, the scripted test double, or any other `ModelRunner`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};
use rotor_engine::{EngineHandle, KvEventReader};
use rotor_protocol::{GenerateRequest, KvSnapshot, ModelCard, WireError, WorkerLoad};

use crate::engine::{GenerateStream, WorkerEngine};

/// Hosts an [`EngineHandle`] under a model card.
pub struct EngineWorker {
    engine: EngineHandle,
    card: ModelCard,
    /// The mocker's simulated network for KV imports (`--mocker-kv-bandwidth`).
    kv_link: Option<Arc<SimulatedKvLink>>,
    prefill_stats: Arc<crate::disagg::PrefillExportStats>,
}

/// A simulated network link in front of a mocker's KV imports: importing `n` bytes occupies the
/// link for `n / bytes_per_second` (imports queue behind each other, as on one NIC), so a
/// disaggregated cluster of mockers pays for the KV it moves. Real engines move real bytes and
/// need none.
#[derive(Debug)]
pub struct SimulatedKvLink {
    bytes_per_second: f64,
    free_at: Mutex<tokio::time::Instant>,
    /// Bytes carried and the link time they took (µs), for the worker's counters.
    bytes: AtomicU64,
    busy_micros: AtomicU64,
}

impl SimulatedKvLink {
    /// `bytes_per_second` must be positive and finite (checked by the CLI).
    pub fn new(bytes_per_second: f64) -> Self {
        Self {
            bytes_per_second,
            free_at: Mutex::new(tokio::time::Instant::now()),
            bytes: AtomicU64::new(0),
            busy_micros: AtomicU64::new(0),
        }
    }

    /// Reserves the link for `bytes` from when it is free (now at the earliest); returns when
    /// the transfer ends.
    fn reserve(&self, bytes: usize) -> tokio::time::Instant {
        let took = Duration::from_secs_f64(bytes as f64 / self.bytes_per_second);
        let mut free_at = self.free_at.lock().unwrap_or_else(PoisonError::into_inner);
        let end = (*free_at).max(tokio::time::Instant::now()) + took;
        *free_at = end;
        self.bytes.fetch_add(bytes as u64, Ordering::Relaxed);
        self.busy_micros
            .fetch_add(took.as_micros() as u64, Ordering::Relaxed);
        end
    }

    /// (bytes carried, seconds the link was busy carrying them).
    pub fn totals(&self) -> (u64, f64) {
        (
            self.bytes.load(Ordering::Relaxed),
            self.busy_micros.load(Ordering::Relaxed) as f64 / 1e6,
        )
    }
}

impl EngineWorker {
    pub fn new(engine: EngineHandle, card: ModelCard) -> Self {
        Self {
            engine,
            card,
            kv_link: None,
            prefill_stats: Arc::default(),
        }
    }

    /// What this worker's prefill exports did (disaggregated serving, prefill side).
    pub fn prefill_stats(&self) -> &Arc<crate::disagg::PrefillExportStats> {
        &self.prefill_stats
    }

    /// Puts KV imports behind a simulated link (the mocker's `--mocker-kv-bandwidth`).
    pub fn with_kv_link(mut self, link: Arc<SimulatedKvLink>) -> Self {
        self.kv_link = Some(link);
        self
    }

    /// The engine (for its stats).
    pub fn engine(&self) -> &EngineHandle {
        &self.engine
    }
}

/// Cancels the request in the engine when its output stream is dropped before the end. The
/// engine would also notice the closed channel at its next send, but the explicit cancel frees a
/// request that is still waiting for admission too.
struct CancelOnDrop {
    engine: EngineHandle,
    id: String,
    finished: bool,
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if !self.finished {
            self.engine.cancel(&self.id);
        }
    }
}

impl WorkerEngine for EngineWorker {
    fn card(&self) -> &ModelCard {
        &self.card
    }

    fn generate(&self, req: GenerateRequest) -> Result<GenerateStream, WireError> {
        let guard = CancelOnDrop {
            engine: self.engine.clone(),
            id: req.id.clone(),
            finished: false,
        };
        let outputs = self.engine.submit(req)?;
        let stream = futures::stream::unfold((outputs, guard), |(mut outputs, mut guard)| async {
            let item = outputs.recv().await?;
            match &item {
                Ok(out) if out.finish_reason.is_some() => guard.finished = true,
                Err(_) => guard.finished = true,
                Ok(_) => {}
            }
            Some((item, (outputs, guard)))
        });
        Ok(stream.boxed())
    }

    fn load(&self) -> WorkerLoad {
        let stats = self.engine.stats();
        WorkerLoad {
            active_blocks: stats.blocks_used as u64,
            total_blocks: stats.blocks_total as u64,
            waiting: stats.waiting as u64,
            running: stats.running as u64,
        }
    }

    fn subscribe_kv_events(&self) -> Option<KvEventReader> {
        Some(self.engine.subscribe_kv_events())
    }

    fn kv_snapshot(&self) -> Option<BoxFuture<'static, Result<KvSnapshot, WireError>>> {
        Some(self.engine.kv_snapshot().boxed())
    }

    fn prefill_export(
        &self,
        req: rotor_protocol::PrefillRequest,
    ) -> Option<crate::disagg::KvBlockStream> {
        Some(crate::disagg::prefill_export(
            self.engine.clone(),
            req,
            Arc::clone(&self.prefill_stats),
        ))
    }

    fn import_kv(
        &self,
        blocks: Vec<Vec<u8>>,
    ) -> Option<BoxFuture<'static, Result<rotor_protocol::KvImportOutcome, WireError>>> {
        let bytes: usize = blocks.iter().map(Vec::len).sum();
        let import = crate::disagg::import_blocks(self.engine.clone(), blocks);
        let Some(link) = &self.kv_link else {
            return Some(import);
        };
        let done = link.reserve(bytes);
        Some(
            async move {
                tokio::time::sleep_until(done).await;
                import.await
            }
            .boxed(),
        )
    }

    fn shutdown(&self) {
        self.engine.shutdown();
        self.engine.join();
    }
}

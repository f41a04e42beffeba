//! [`EngineWorker`]: a [`WorkerEngine`] over a running `rotor_engine` engine (the native model
//! runner, the scripted test double, or any other `ModelRunner`).

use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};
use rotor_engine::{EngineHandle, KvEventReader};
use rotor_protocol::{GenerateRequest, KvSnapshot, ModelCard, WireError, WorkerLoad};

use crate::engine::{GenerateStream, WorkerEngine};

/// Hosts an [`EngineHandle`] under a model card.
pub struct EngineWorker {
    engine: EngineHandle,
    card: ModelCard,
}

impl EngineWorker {
    pub fn new(engine: EngineHandle, card: ModelCard) -> Self {
        Self { engine, card }
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
        Some(crate::disagg::prefill_export(self.engine.clone(), req))
    }

    fn import_kv(
        &self,
        blocks: Vec<Vec<u8>>,
    ) -> Option<BoxFuture<'static, Result<rotor_protocol::KvImportOutcome, WireError>>> {
        Some(crate::disagg::import_blocks(self.engine.clone(), blocks))
    }

    fn shutdown(&self) {
        self.engine.shutdown();
        self.engine.join();
    }
}

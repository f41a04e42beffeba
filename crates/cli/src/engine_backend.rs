//! Adapts an in-process engine to the frontend's [`Backend`] seam, through the worker crate's
//! [`EngineWorker`] (which owns cancel-on-drop and the load figures), so `rotor serve` and
//! `rotor worker` drive an engine the same way.

use std::sync::Arc;

use futures::future::BoxFuture;
use rotor_frontend::{Backend, OutputStream};
use rotor_protocol::{GenerateRequest, KvSnapshot, WireError, WorkerLoad};
use rotor_worker::{EngineWorker, WorkerEngine};

/// Serves requests from an engine in this process.
pub struct EngineBackend {
    worker: Arc<EngineWorker>,
}

impl EngineBackend {
    pub fn new(worker: Arc<EngineWorker>) -> Self {
        Self { worker }
    }
}

impl Backend for EngineBackend {
    fn generate(&self, req: GenerateRequest) -> Result<OutputStream, WireError> {
        self.worker.generate(req)
    }

    fn kv_snapshot(&self) -> Option<BoxFuture<'static, Result<KvSnapshot, WireError>>> {
        self.worker.kv_snapshot()
    }

    fn prefill_export(
        &self,
        req: rotor_protocol::PrefillRequest,
    ) -> Option<futures::stream::BoxStream<'static, Result<Vec<u8>, WireError>>> {
        self.worker.prefill_export(req)
    }

    fn import_kv(
        &self,
        blocks: Vec<Vec<u8>>,
    ) -> Option<BoxFuture<'static, Result<rotor_protocol::KvImportOutcome, WireError>>> {
        self.worker.import_kv(blocks)
    }

    /// The engine's live load (its stats are updated at every submit and step).
    fn worker_loads(&self) -> Vec<Option<WorkerLoad>> {
        vec![Some(self.worker.load())]
    }
}

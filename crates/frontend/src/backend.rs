//! The seam between the frontend and whatever generates tokens (an in-process engine, a remote
//! worker through the router, or a scripted test double).

use std::sync::Arc;

use futures::future::BoxFuture;
use futures::stream::BoxStream;
use rotor_protocol::{EngineOutput, GenerateRequest, KvSnapshot, ModelCard, WireError, WorkerLoad};

/// The outputs of one request, in order; the last `Ok` item carries a finish reason.
pub type OutputStream = BoxStream<'static, Result<EngineOutput, WireError>>;

/// Turns a tokenized request into a stream of outputs.
pub trait Backend: Send + Sync + 'static {
    /// Starts generation. Dropping the returned stream must cancel the request in the backend.
    fn generate(&self, req: GenerateRequest) -> Result<OutputStream, WireError>;

    /// Fetches the worker's KV snapshot (every cached block hash and the id of its next KV
    /// event), for resyncing a router's index after an event gap; `None` if this backend is not
    /// one worker or keeps no KV cache index.
    fn kv_snapshot(&self) -> Option<BoxFuture<'static, Result<KvSnapshot, WireError>>> {
        None
    }

    /// Disaggregated serving, prefill side: prefills `req.request` on this worker and streams
    /// the KV blocks of `req.sequence_hashes` it then holds (encoded, chain order). `None` if
    /// this backend is not one worker that can export KV.
    fn prefill_export(
        &self,
        _req: rotor_protocol::PrefillRequest,
    ) -> Option<BoxStream<'static, Result<Vec<u8>, WireError>>> {
        None
    }

    /// Disaggregated serving, decode side: imports encoded blocks into this worker's prefix
    /// cache. `None` if this backend is not one worker that can import KV.
    fn import_kv(
        &self,
        _blocks: Vec<Vec<u8>>,
    ) -> Option<BoxFuture<'static, Result<rotor_protocol::KvImportOutcome, WireError>>> {
        None
    }

    /// The load of every worker that could take a new request now, as last known (`None` for
    /// a worker that has not reported yet), for overload protection
    /// ([`BusyThresholds`](crate::overload::BusyThresholds)). Empty when this backend cannot
    /// tell: such a backend is never refused as overloaded.
    fn worker_loads(&self) -> Vec<Option<WorkerLoad>> {
        Vec::new()
    }
}

/// A model as the frontend serves it: its card and the backend that runs it.
#[derive(Clone)]
pub struct ServedModel {
    pub card: ModelCard,
    pub backend: Arc<dyn Backend>,
}

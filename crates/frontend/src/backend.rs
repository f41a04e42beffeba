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

    /// Disaggregated serving, decode side: where a prefill worker can send this worker's KV
    /// blocks itself (its request-plane address and host). `None` (in-process engines, test
    /// doubles): the router relays the blocks through [`import_kv`](Self::import_kv).
    fn kv_peer(&self) -> Option<KvPeer> {
        None
    }

    /// Disaggregated serving, prefill side, direct: prefills `req.prefill.request` on this
    /// worker and sends the blocks to `req.target_address` itself; one event per batch. `None`
    /// if this backend cannot (the router relays instead).
    fn prefill_push(
        &self,
        _req: rotor_protocol::PrefillPushRequest,
    ) -> Option<BoxStream<'static, Result<rotor_protocol::KvPushEvent, WireError>>> {
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

/// A worker that other workers can reach directly: what a prefill worker needs to send it KV
/// blocks, and what decides the transport.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KvPeer {
    /// Its request-plane address.
    pub address: String,
    /// Its model card's `host_id`: workers with the same one share `/dev/shm`.
    pub host_id: Option<String>,
}

/// A model as the frontend serves it: its card and the backend that runs it.
#[derive(Clone)]
pub struct ServedModel {
    pub card: ModelCard,
    pub backend: Arc<dyn Backend>,
}

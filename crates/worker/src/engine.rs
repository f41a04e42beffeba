//! [`WorkerEngine`]: what a worker hosts — anything that turns a `GenerateRequest` into a
//! stream of outputs and can say how loaded it is.

use futures::future::BoxFuture;
use futures::stream::BoxStream;
use rotor_engine::KvEventReader;
use rotor_protocol::{
    EngineOutput, GenerateRequest, KvEvent, KvSnapshot, ModelCard, WireError, WorkerLoad,
};

/// Outputs of one request: token batches, the last with a finish reason, or one error that ends
/// the stream. Dropping it before the end cancels the request's work.
pub type GenerateStream = BoxStream<'static, Result<EngineOutput, WireError>>;

/// An engine as a worker hosts it. Implementations: [`EngineWorker`](crate::EngineWorker) over
/// any `rotor_engine::EngineHandle`, and [`EchoEngine`](crate::EchoEngine).
pub trait WorkerEngine: Send + Sync {
    /// The model this engine serves, as published in discovery.
    fn card(&self) -> &ModelCard;

    /// Starts one request. Invalid requests are refused here with `InvalidRequest`; failures
    /// after admission arrive as the stream's last item. Must return quickly (no compute on the
    /// caller's thread).
    fn generate(&self, req: GenerateRequest) -> Result<GenerateStream, WireError>;

    /// The current load, for load reports.
    fn load(&self) -> WorkerLoad;

    /// A reader of the engine's KV events from event 0, if it emits any.
    fn subscribe_kv_events(&self) -> Option<KvEventReader> {
        None
    }

    /// KV events an engine outside Rotor produces (external engines: numbered from 0,
    /// contiguous), when [`subscribe_kv_events`](Self::subscribe_kv_events) has none. The host
    /// takes the receiver once.
    fn take_external_kv_events(&self) -> Option<tokio::sync::mpsc::Receiver<KvEvent>> {
        None
    }

    /// A snapshot of the engine's prefix cache consistent with its KV event stream (every hash
    /// it holds, and the id of its next event), for a router that missed events; `None` if the
    /// engine emits no KV events.
    fn kv_snapshot(&self) -> Option<BoxFuture<'static, Result<KvSnapshot, WireError>>> {
        None
    }

    /// Disaggregated serving, prefill side: runs the prompt and streams the asked-for KV
    /// blocks (see [`crate::disagg::prefill_export`]); `None` if the engine cannot export KV.
    fn prefill_export(
        &self,
        _req: rotor_protocol::PrefillRequest,
    ) -> Option<crate::disagg::KvBlockStream> {
        None
    }

    /// Disaggregated serving, decode side: imports encoded blocks (chain order) into the prefix
    /// cache; `None` if the engine cannot import KV.
    fn import_kv(
        &self,
        _blocks: Vec<Vec<u8>>,
    ) -> Option<BoxFuture<'static, Result<rotor_protocol::KvImportOutcome, WireError>>> {
        None
    }

    /// Probes whether the engine can serve now, for an engine that can die apart from the worker
    /// (an external server). `None` (the default): it lives and dies with the worker process.
    /// The host withdraws the worker from discovery after consecutive failed probes, so routers
    /// stop sending it requests, and registers it again once a probe succeeds.
    fn probe_health(&self) -> Option<BoxFuture<'static, bool>> {
        None
    }

    /// Told when the host withdrew the worker from discovery because its probes failed
    /// (`registered` false) and when it registered it again (true): for the engine's counters.
    fn registration_changed(&self, _registered: bool) {}

    /// Stops the engine: requests still running fail with `EngineStopped`, later ones are
    /// refused. May block until the engine's threads have exited, so call it off the async
    /// runtime (`spawn_blocking`).
    fn shutdown(&self);
}

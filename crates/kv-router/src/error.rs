//! The crate's one error type.

use rotor_protocol::WorkerId;

/// Everything that can go wrong in the routing core. Variants carry the facts.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    /// A worker's event ids jumped: events `expected..got` were missed. The event itself was
    /// applied and the worker now needs a resync; its other blocks stay indexed until then.
    #[error("worker {worker}: KV event gap, expected event id {expected}, got {got}")]
    Gap {
        worker: WorkerId,
        expected: u64,
        got: u64,
    },
    /// An event older than one already applied (a replay); it was ignored.
    #[error("worker {worker}: stale KV event id {got}, expected {expected}")]
    StaleEvent {
        worker: WorkerId,
        expected: u64,
        got: u64,
    },
    /// KV events were given to a router configured to route without them.
    #[error("KV event from worker {worker} given to a router in approximate mode")]
    EventsInApproximateMode { worker: WorkerId },
    /// `route` was called with no registered worker.
    #[error("no workers to route to")]
    NoWorkers,
    /// A request id was routed twice while the first was still active.
    #[error("request {request_id} is already being tracked (on worker {worker})")]
    DuplicateRequest {
        request_id: String,
        worker: WorkerId,
    },
    /// A request id the load tracker does not know (finished already, or never routed here).
    #[error("unknown request {request_id}")]
    UnknownRequest { request_id: String },
    /// A configuration value out of range.
    #[error("invalid router configuration: {field} = {value} ({reason})")]
    InvalidConfig {
        field: &'static str,
        value: String,
        reason: &'static str,
    },
    /// `--kv-tier-weights` (or a config's weights) could not be used.
    #[error("invalid KV tier weights {input:?}: {reason}")]
    InvalidTierWeights { input: String, reason: String },
}

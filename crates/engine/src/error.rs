//! The engine's error type (construction and runner failures). Per-request failures travel to
//! callers as `rotor_protocol::WireError` instead.

/// Why the engine could not start, or why a runner step failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An `EngineConfig` field is out of range.
    #[error("invalid engine config: {field} = {value} ({reason})")]
    InvalidConfig {
        field: &'static str,
        value: usize,
        reason: &'static str,
    },
    /// The runner's KV storage does not have the layout the scheduler would allocate from.
    #[error(
        "runner KV layout ({runner_blocks} blocks × {runner_block_size} tokens) does not match the \
         engine config ({config_blocks} blocks × {config_block_size} tokens)"
    )]
    KvLayoutMismatch {
        runner_blocks: usize,
        runner_block_size: usize,
        config_blocks: usize,
        config_block_size: usize,
    },
    /// The runner reports a vocabulary or context length of zero.
    #[error("runner reports an unusable {what} of 0")]
    EmptyRunner { what: &'static str },
    /// Offload tiers were configured for an engine that cannot use them.
    #[error("KV offload tiers cannot be used: {reason}")]
    KvTiersUnsupported { reason: &'static str },
    /// An offload tier could not be opened (shared memory file, disk directory).
    #[error("cannot open the KV offload tiers: {0}")]
    KvTiers(#[source] rotor_kv_cache::Error),
    /// The vocabulary for constrained sampling does not fit the model.
    #[error("invalid constraint vocabulary: {0}")]
    ConstraintVocab(String),
    /// The OS refused to start the engine thread.
    #[error("cannot spawn the engine thread: {0}")]
    Spawn(#[source] std::io::Error),
}

/// A failed runner step. Every sequence in that step is failed with `ErrorKind::Internal`.
#[derive(Debug, thiserror::Error)]
pub enum RunnerError {
    /// The model rejected or failed the batch.
    #[error("model forward failed: {0}")]
    Model(String),
    /// The runner received a batch that breaks its contract (a scheduler bug).
    #[error("invalid batch: {0}")]
    InvalidBatch(String),
    /// A KV block could not be copied out of or into the runner's storage.
    #[error("KV block access failed: {0}")]
    KvBlockAccess(String),
}

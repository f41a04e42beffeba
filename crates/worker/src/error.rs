//! The crate's one error enum. Per-request failures travel as `rotor_protocol::WireError`
//! instead; these are failures to build an engine or to host it.

use std::path::PathBuf;

/// Why an engine could not be built, or a worker could not start or stop cleanly.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The GGUF file could not be read, or its weights or tokenizer could not be loaded.
    #[error("model {path}: {source}")]
    Model {
        path: PathBuf,
        #[source]
        source: rotor_model::Error,
    },

    /// The KV-cache budget does not hold a single block.
    #[error("a KV cache of {kv_cache_bytes} B holds no block of {block_bytes} B; raise it")]
    KvCacheTooSmall {
        kv_cache_bytes: u64,
        block_bytes: u64,
    },

    /// The engine refused its configuration or could not start its thread.
    #[error("engine: {0}")]
    Engine(#[from] rotor_engine::Error),

    /// A runtime operation (binding the request plane, registering, publishing) failed.
    #[error("{op}: {source}")]
    Runtime {
        op: &'static str,
        #[source]
        source: rotor_runtime::Error,
    },

    /// The mocker's configuration was refused.
    #[error("mocker: {0}")]
    Mocker(rotor_engine::mocker::MockerError),

    /// An external engine (`--engine llama.cpp|vllm|openai`) could not be used.
    #[error("engine at {url}: {message}")]
    External { url: String, message: String },

    /// The task stopping the engine panicked or was cancelled.
    #[error("stopping the engine: {reason}")]
    EngineStop { reason: String },
}

impl Error {
    pub(crate) fn runtime(op: &'static str) -> impl FnOnce(rotor_runtime::Error) -> Self {
        move |source| Self::Runtime { op, source }
    }
}

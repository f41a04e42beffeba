//! rotor-worker: hosts an engine on Rotor's runtime, so frontends and routers in other
//! processes can use it.
//!
//! - [`WorkerEngine`]: the seam a worker hosts — `generate` (a stream of outputs; dropping it
//!   cancels), `load`, optional KV events and KV snapshots, `shutdown`. [`EngineWorker`] wraps
//!   any `rotor_engine::EngineHandle` (the native runner, the scripted double, a mocker);
//!   [`EchoEngine`] streams prompts back without model compute, for testing the distributed
//!   path.
//! - [`native::build`]: loads a GGUF model and starts the native engine with its [`ModelCard`]
//!   (shared by `rotor serve` and `rotor worker`); [`GgufModel`] builds cards from GGUF
//!   metadata without loading weights. [`mocker::build`] starts the same engine over the
//!   simulated runner (`--engine mocker`).
//! - [`WorkerHost`]: serves an engine on the request plane (`{namespace}/{component}/generate`,
//!   encoded as `rotor_protocol::worker` says, and `kv_snapshot` through [`KvSnapshotHandler`],
//!   for a router's resync after an event gap), registers the instance and its model card in
//!   discovery, publishes KV events and [`LoadReport`]s on the event plane, and shuts down in
//!   order (deregister → drain → stop publishers → stop the engine).
//! - [`disagg`]: disaggregated serving — the `kv_prefill` endpoint (prefill a prompt, stream its
//!   KV blocks) and the `kv_import` endpoint (blocks into the prefix cache); the worker's role
//!   (`aggregated`, `prefill`, `decode`) is its model card's `role`. [`kv_push`]: the direct
//!   transfer — `kv_prefill_push` sends the blocks straight to the decode worker, over shared
//!   memory ([`kv_shm`], one host) or TCP, and reports only progress to the router.
//! - [`external`]: [`ExternalEngine`] relays to engines outside Rotor (llama.cpp's server,
//!   vLLM with its ZMQ KV events, any OpenAI-compatible server) over their HTTP APIs.
//! - [`Error`]: the crate's one error enum.
//!
//! Must not depend on HTTP frameworks (axum, hyper, reqwest) or on `rotor-frontend`.
//!
//! [`ModelCard`]: rotor_protocol::ModelCard
//! [`LoadReport`]: rotor_protocol::LoadReport

mod card;
pub mod disagg;
mod echo;
mod engine;
mod engine_worker;
mod error;
pub mod external;
mod handler;
mod host;
pub mod kv_push;
pub mod kv_shm;
pub mod mocker;
pub mod native;
mod publishers;
mod snapshot_handler;

pub use card::{GgufModel, ModelSpec};
pub use disagg::{KvBlockStream, KvImportHandler, KvPrefillHandler, PrefillExportStats};
pub use echo::EchoEngine;
pub use engine::{GenerateStream, WorkerEngine};
pub use engine_worker::{EngineWorker, SimulatedKvLink};
pub use error::Error;
pub use external::{ExternalConfig, ExternalEngine, ExternalKind, ExternalStats};
pub use handler::generate_handler;
pub use host::{ShutdownReport, WorkerHost, WorkerHostConfig};
pub use kv_push::{KvPushStats, KvPusher};
pub use mocker::MockerEngineConfig;
pub use native::{KvReport, NativeConfig, NativeEngine};
pub use publishers::LOAD_HEARTBEAT;
pub use snapshot_handler::KvSnapshotHandler;

//! rotor-frontend: the OpenAI-compatible HTTP server.
//!
//! It validates requests, applies the model's chat template, tokenizes, hands a
//! [`rotor_protocol::GenerateRequest`] to a [`Backend`], and turns the returned token stream
//! into OpenAI responses — whole or as server-sent events — with incremental detokenization,
//! stop strings and usage. Bad input gets OpenAI's error JSON with a 4xx status; backend errors
//! map to statuses in one table ([`error::status_for_kind`]). A client that disconnects drops
//! the output stream, which cancels the request in the backend.
//!
//! Key types: [`Frontend`] (models by name, settings, metrics; [`Frontend::router`]),
//! [`Backend`] and [`OutputStream`] (the seam to engines or the router), [`ServedModel`],
//! [`FrontendConfig`], [`FrontendError`], [`ApiError`]; [`serve`] runs it on a listener.
//!
//! [`routing`] serves a model from several workers: [`RoutedBackend`] (round-robin, random,
//! least-loaded or KV-aware choice, migration of a request whose worker died), [`RemoteWorker`]
//! (a worker on the runtime's request plane) and [`ModelWatcher`] (models from discovery).
//! The HTTP server sets TCP_NODELAY on every connection so streamed tokens leave at once.
//!
//! Routes: POST /v1/chat/completions, POST /v1/completions, GET /v1/models,
//! GET /v1/models/{id}, GET /health, GET /live, GET /metrics, GET /openapi.json.
//!
//! Must not depend on rotor-engine or rotor-model: the frontend sees only a model card and a
//! backend (remote workers through rotor-runtime, choices through rotor-kv-router).

pub mod backend;
mod completions;
pub mod config;
pub mod error;
pub mod generation;
pub mod json_body;
pub mod metrics;
pub mod registry;
pub mod responses;
mod routes;
pub mod routing;
mod server;
mod sse;
pub mod validate;

pub use backend::{Backend, OutputStream, ServedModel};
pub use config::FrontendConfig;
pub use error::{ApiError, FrontendError};
pub use metrics::{Metrics, MetricsSource};
pub use routes::OPENAPI_JSON;
pub use routing::{
    ModelSink, ModelWatcher, ModelWatcherConfig, RemoteWorker, ReplicaMessage, RoutedBackend,
    RouterMode, RoutingConfig, RoutingMetrics, ROUTER_SYNC_TOPIC,
};
pub use server::{serve, Frontend};

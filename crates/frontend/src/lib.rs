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
//! Chat answers go through the model's parsers ([`parsers`], chosen from the chat template or
//! `--tool-call-parser` / `--reasoning-parser`): [`chat_output`] splits the text into
//! `reasoning_content`, `content` and `tool_calls`, whole or streamed. Requests' `tools` and
//! `tool_choice` are checked in [`tool_request`]; `response_format` and vLLM's guided fields
//! become a [`rotor_protocol::Constraint`] in [`structured`]; forced calls and constraints
//! after reasoning are Lark grammars built in [`tool_grammar`]; the engine enforces them.
//!
//! Routes: POST /v1/chat/completions, POST /v1/completions, POST /v1/embeddings (`embeddings`:
//! one `Task::Embed` request per input through the backend), POST /v1/messages and
//! POST /v1/messages/count_tokens (Anthropic's Messages API, [`anthropic`]), GET /v1/models,
//! GET /v1/models/{id}, POST /tokenize, POST /detokenize, GET /health, GET /live, GET /metrics,
//! GET /openapi.json; OpenAI's Responses API ([`responses_api`]): POST /v1/responses,
//! GET and DELETE /v1/responses/{id}.
//!
//! Around them (in the order `routes.rs` gives): `x-request-id` on every answer and in every
//! log line ([`RequestId`]), CORS for allowed browser origins ([`AllowedOrigins`]), API keys on
//! every route but the health, liveness, OpenAPI and (unless protected) metrics routes
//! ([`ApiKeys`]), the body limit (413 JSON), and overload protection: 503 with `Retry-After`
//! when every worker of the model is busy ([`BusyThresholds`] over
//! [`Backend::worker_loads`]).
//!
//! Must not depend on rotor-engine or rotor-model: the frontend sees only a model card and a
//! backend (remote workers through rotor-runtime, choices through rotor-kv-router).

pub mod anthropic;
pub mod auth;
pub mod backend;
pub mod chat_output;
mod choices;
mod completions;
pub mod config;
pub mod cors;
mod embeddings;
pub mod error;
pub mod generation;
pub mod json_body;
pub mod metrics;
pub mod openapi;
pub mod overload;
pub mod parsers;
pub mod registry;
pub mod request_id;
pub mod responses;
pub mod responses_api;
mod routes;
pub mod routing;
mod server;
mod sse;
pub mod structured;
mod tokenize;
pub mod tool_grammar;
mod tool_prompt;
pub mod tool_request;
pub mod validate;

pub use auth::ApiKeys;
pub use backend::{Backend, KvPeer, OutputStream, ServedModel};
pub use config::{FrontendConfig, DEFAULT_BODY_LIMIT_BYTES};
pub use cors::AllowedOrigins;
pub use error::{ApiError, FrontendError};
pub use metrics::{Metrics, MetricsSource};
pub use openapi::openapi_json;
pub use overload::BusyThresholds;
pub use parsers::{ModelParsers, ParserSetting};
pub use request_id::RequestId;
pub use routing::{
    DisaggConfig, KvTransportPolicy, ModelSink, ModelWatcher, ModelWatcherConfig, RemoteWorker,
    ReplicaMessage, RoutedBackend, RouterMode, RoutingConfig, RoutingMetrics, ROUTER_SYNC_TOPIC,
};
pub use server::{serve, Frontend};

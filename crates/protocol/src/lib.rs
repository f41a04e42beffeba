//! Rotor's wire and API types, shared by every other crate.
//!
//! - [`engine`]: what a worker's engine consumes and produces — [`GenerateRequest`] (token ids,
//!   sampling, stop conditions) and [`EngineOutput`] (new token ids, finish reason).
//! - [`card`]: the [`ModelCard`] a worker publishes, carrying everything a frontend needs to serve
//!   a model without opening its weights (tokenizer vocabulary, merges, chat template, limits).
//! - [`error`]: [`WireError`] and its [`ErrorKind`], which decide retry, migration and HTTP status.
//! - [`kv`]: KV-cache events ([`KvEvent`]) that block pools emit and routers index.
//! - [`kv_push`]: direct worker-to-worker KV transfer ([`PrefillPushRequest`], [`KvPushEvent`],
//!   [`KvTransport`], the shared-memory [`ShmBlockBatch`] descriptor).
//! - [`openai`]: the OpenAI-compatible HTTP request and response bodies.
//! - [`responses_api`]: the bodies of OpenAI's Responses API (/v1/responses).
//! - [`anthropic`]: Anthropic Messages API bodies (requests, `Message`, stream events, errors).
//! - [`worker`]: the worker contract on the runtime planes — endpoint and topic names, the
//!   generate call's encoding, [`WorkerLoad`] reports, the [`KvSnapshot`] a router resyncs from.
//!
//! This crate depends on nothing of Rotor's: only serde and thiserror.

pub mod anthropic;
pub mod card;
pub mod engine;
pub mod error;
pub mod kv;
pub mod kv_push;
pub mod openai;
pub mod responses_api;
pub mod token_ids;
pub mod worker;

pub use card::{ModelCard, SamplingDefaults, TokenizerSpec, WorkerRole};
pub use engine::{
    Constraint, EngineOutput, FinishReason, GenerateRequest, Pooling, SamplingParams,
    StopConditions, Task, TokenLogprob, MAX_LOGPROBS,
};
pub use error::{ErrorKind, WireError};
pub use kv::{CacheTier, KvEvent, KvEventData, RouterEvent, StoredBlock, WorkerId};
pub use kv_push::{KvPushEvent, KvTransport, PrefillPushRequest, ShmBlockBatch};
pub use token_ids::TokenIds;
pub use worker::{KvImportOutcome, KvSnapshot, LoadReport, PrefillRequest, WorkerLoad};

//! rotor-engine: the continuous-batching engine. It speaks token ids only.
//!
//! - [`Engine::start`] runs an [`EngineCore`] on its own OS thread and returns an
//!   [`EngineHandle`] (`submit` → a stream of `EngineOutput`, `cancel`, `stats`, `shutdown`).
//! - [`Scheduler`]: one loop per step under a token budget: decodes first, chunked prefill,
//!   FCFS admission, preemption by recompute; KV blocks come from [`KvBlocks`], a wrapper of
//!   `rotor_kv_cache::BlockPool` that reuses cached prompt prefixes (`enable_prefix_caching`).
//! - KV events (stored / removed / cleared) go to a bounded ring read through
//!   [`KvEventReader`]s ([`EngineHandle::subscribe_kv_events`]) with gap detection;
//!   [`EngineHandle::kv_snapshot`] gives the cached hashes and the next event id, for a resync.
//! - KV export/import ([`EngineHandle::export_kv`], [`EngineHandle::import_kv`]): cached full
//!   blocks out of and into the pool in the KV block format (`rotor_kv_cache::block_format`),
//!   for disaggregated serving and offload tiers; rules in `kv_transfer`, counters in
//!   [`KvTransferStats`].
//! - Offload tiers ([`Engine::start_with_tiers`], [`EngineCore::with_kv_tiers`] with a
//!   [`KvTiersConfig`]): cached blocks evicted from the pool are written back to G2 (host memory
//!   shared by a machine's workers) and G3 (disk); a waiting request's prefix found there is
//!   onboarded before admission; rules in `kv_offload`, counters in [`KvTierStats`].
//! - [`Sampler`]: penalties → temperature → top-k → top-p → min-p → draw, seeded per request;
//!   before it, `logit_bias` and a grammar constraint's token mask (see `constraint`); the
//!   chosen token's logprob (and top alternatives) from the post-penalty, pre-temperature
//!   distribution when `SamplingParams::logprobs` asks.
//! - Grammar-constrained sampling ([`ConstraintVocab`], llguidance): a per-sequence matcher
//!   compiled at submit, a mask computed on a helper thread while the forward pass runs,
//!   forced tokens fast-forwarded; counters in [`ConstraintStats`].
//! - Prompt scoring (`SamplingParams::prompt_logprobs`) and embeddings (`Task::Embed`): steps
//!   with such a chunk run through [`ModelRunner::step_outputs`] (all logits / hidden states);
//!   rows are collected across prefill chunks (`prompt_outputs`), such sequences take no
//!   prefix-cache hit; a runner without it has them refused at submission.
//! - [`ModelRunner`]: the seam to the model. [`NativeRunner`] runs `rotor_model`'s Llama forward;
//!   [`ScriptedRunner`] is a deterministic test double for this and other crates' tests;
//!   [`MockerRunner`] ([`mocker`]) simulates a model's step times, for routing at scale.
//!
//! Must not depend on the runtime, HTTP, or an async runtime (only `tokio::sync` channels).

mod config;
mod constraint;
mod core;
mod engine;
mod error;
mod gbnf;
mod kv_blocks;
mod kv_events;
mod kv_offload;
mod kv_transfer;
pub mod mocker;
mod native;
mod prompt_outputs;
mod runner;
mod sampler;
mod scheduler;
mod scripted;
mod sequence;
mod stats;
mod validate;

pub use config::EngineConfig;
pub use constraint::{
    apply_vob, ConstraintStats, ConstraintVocab, SeqConstraint, TokenizeFn, VocabSource, VocabToken,
};
pub use core::{ChunkReport, EngineCore, StepReport};
pub use engine::{Engine, EngineHandle, OutputStream};
pub use error::{Error, RunnerError};
pub use kv_blocks::KvBlocks;
pub use kv_events::{KvEventReader, KV_EVENT_RING_CAPACITY};
pub use kv_transfer::{
    KvExport, KvExportSelector, KvImportError, KvImportRejectReason, KvImportReport, KvImportStop,
    KvTransferError, KvTransferStats,
};
pub use mocker::{MockerConfig, MockerKvShape, MockerRunner, MockerTiming};
pub use native::{config_fingerprint, NativeRunner};
pub use rotor_kv_cache::{
    BlockPool, DiskTierConfig, HostTierConfig, KvEventBatch, KvTier, KvTierStats, KvTiersConfig,
    PrefixCacheStats, TierStats,
};
pub use runner::{ChunkOutputKind, KvLayout, ModelRunner, ScheduledChunk};
pub use sampler::{
    apply_logit_bias, apply_penalties, argmax, seeded_rng, token_logprob, PenaltyState, Sampler,
    MAX_LOGIT_BIAS,
};
pub use scheduler::{PlannedChunk, Scheduler, StepPlan};
pub use scripted::{ScriptedRunner, SCRIPTED_LOGIT};
pub use sequence::{OutputSender, Sequence, TierLoad};
pub use stats::EngineStats;
pub use validate::{validate_request, RequestLimits};

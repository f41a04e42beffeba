//! Routing: serving a model from several workers.
//!
//! - [`RemoteWorker`]: a [`Backend`](crate::Backend) over one worker instance on the request plane.
//! - [`RoutedBackend`]: one model's backend over a changing set of workers (remote, or in-process
//!   engines), choosing per request by [`RouterMode`] — round-robin, random, least-loaded or
//!   KV-aware (`rotor_kv_router::KvRouter`) — and migrating a request to another worker when its
//!   worker dies mid-stream, so the client sees one continuous stream.
//! - [`ModelWatcher`]: follows discovery — models appear with their first worker and disappear
//!   with their last — and feeds KV events and load reports from the event plane.
//! - [`RoutingMetrics`]: decisions and in-flight requests per worker, migrations, kv hit figures.
//! - [`ReplicaMessage`]: what router replicas share over the event plane in kv mode
//!   (`replica_sync`), so each weighs the load the others put on a worker.
//! - Disaggregated serving (`disagg`): with prefill-role workers discovered, a request's prompt
//!   is prefilled on a prefill worker and the KV blocks the chosen decode worker lacks are moved
//!   to it before it generates; short or cached prompts, a busy prefill pool, and every failure
//!   fall back to local prefill on the decode worker, each counted with its reason
//!   ([`DisaggConfig`]).
//! - [`RoutingConfig`]: the mode, `migration_limit`, `kv_overlap_weight`, `router_temperature`,
//!   `replica_sync`.

mod config;
mod disagg;
mod metrics;
mod migration;
mod pool;
mod remote;
mod replica;
mod routed;
mod watcher;

pub use config::{
    DisaggConfig, KvTransportPolicy, RouterMode, RoutingConfig, FALLBACK_KV_BLOCK_SIZE,
};
pub use metrics::RoutingMetrics;
pub use remote::RemoteWorker;
pub use replica::{ReplicaMessage, ROUTER_SYNC_TOPIC};
pub use routed::RoutedBackend;
pub use watcher::{ModelSink, ModelWatcher, ModelWatcherConfig};

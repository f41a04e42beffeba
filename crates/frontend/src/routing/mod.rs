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
//! - [`RoutingConfig`]: the mode, `migration_limit`, `kv_overlap_weight`, `router_temperature`.

mod config;
mod metrics;
mod migration;
mod pool;
mod remote;
mod routed;
mod watcher;

pub use config::{RouterMode, RoutingConfig, FALLBACK_KV_BLOCK_SIZE};
pub use metrics::RoutingMetrics;
pub use remote::RemoteWorker;
pub use routed::RoutedBackend;
pub use watcher::{ModelWatcher, ModelWatcherConfig};

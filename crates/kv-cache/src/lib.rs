//! rotor-kv-cache: the KV block pool with prefix caching, and the KV events it emits.
//!
//! - [`BlockPool`]: fixed KV blocks with ref counts, an LRU free queue (tail blocks of a
//!   sequence evicted first), a prefix cache mapping chained block hashes to blocks
//!   ([`BlockPool::lookup`], [`BlockPool::commit_full_block`]), eviction on allocation, and
//!   [`PrefixCacheStats`] counters.
//! - KV events (`rotor_protocol::KvEvent`: stored / removed / cleared, ids monotonic from 0) are
//!   buffered by the pool until [`BlockPool::drain_events`]; a [`KvEventLog`] keeps the most
//!   recent ones in a bounded ring that consumers read with gap detection ([`KvEventBatch`]).
//!
//! Block hashes come from `rotor-tokens` (the one implementation); this crate never hashes
//! tokens. Later: offload tiers (host RAM, disk).
//!
//! Must not depend on tokio, sockets, or any Rotor crate above `protocol` and `tokens`.

mod block_pool;
mod error;
mod event_log;
mod events;
mod free_queue;

pub use block_pool::{BlockPool, PrefixCacheStats};
pub use error::Error;
pub use event_log::{KvEventBatch, KvEventLog};

/// Index of a KV block in the pool, `0..num_blocks`.
pub type BlockId = u32;

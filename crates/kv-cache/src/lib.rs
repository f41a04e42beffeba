//! rotor-kv-cache: the KV block pool with prefix caching, and the KV events it emits.
//!
//! - [`BlockPool`]: fixed KV blocks with ref counts, an LRU free queue (tail blocks of a
//!   sequence evicted first), a prefix cache mapping chained block hashes to blocks
//!   ([`BlockPool::lookup`], [`BlockPool::commit_full_block`]), eviction on allocation, and
//!   [`PrefixCacheStats`] counters.
//! - KV events (`rotor_protocol::KvEvent`: stored / removed / cleared, ids monotonic from 0) are
//!   buffered by the pool until [`BlockPool::drain_events`]; a [`KvEventLog`] keeps the most
//!   recent ones in a bounded ring that consumers read with gap detection ([`KvEventBatch`]).
//!   The offload tiers' changes ([`TierChange`], from [`KvTiers::take_changes`]) join the same
//!   stream as `host` / `disk` events ([`BlockPool::record_tier_changes`]).
//!
//! - The KV block format ([`block_format`]): one full block outside the pool — layout
//!   descriptor ([`KvBlockLayout`]), sequence and parent hash, token ids, payload, checksum —
//!   encoded into a caller's buffer ([`encode_kv_block`]) and decoded with every field checked
//!   ([`decode_kv_block`], [`decode_kv_block_expecting`]). Disaggregated transfer and the offload
//!   tiers both use it.
//!
//! - Offload tiers ([`KvTiers`], configured by [`KvTiersConfig`]): G2, encoded blocks in a file
//!   under `/dev/shm` shared by the workers of a machine ([`SharedHostPool`], per-slot seqlocks
//!   in the mapping), and G3, one file per block on local disk ([`DiskStore`], frequency-filtered
//!   admission, index rebuilt at start-up); each LRU under a capacity in bytes, written by a
//!   thread of their own, counted in [`KvTierStats`].
//!
//! Block hashes come from `rotor-tokens` (the one implementation); this crate never hashes
//! tokens itself (a decoded block's ids are verified with `rotor-tokens`).
//!
//! Must not depend on tokio, sockets, or any Rotor crate above `protocol` and `tokens`.

pub mod block_format;
mod block_pool;
mod disk_store;
mod error;
mod event_log;
mod events;
mod free_queue;
mod host_pool;
mod tiers;

pub use block_format::{
    decode_kv_block, decode_kv_block_expecting, encode_kv_block, encode_kv_block_with,
    model_fingerprint, KvBlockHeader, KvBlockLayout, KvBlockView, KvElementType, KvPayloadLayout,
    KV_BLOCK_FORMAT_VERSION,
};
pub use block_pool::{BlockPool, PrefixCacheStats};
pub use disk_store::{DiskAdmission, DiskStore};
pub use error::Error;
pub use event_log::{KvEventBatch, KvEventLog};
pub use host_pool::{PutOutcome, SegmentCheck, SharedHostPool, HOST_POOL_VERSION};
pub use tiers::{
    DiskTierConfig, HostTierConfig, KvLoadRequest, KvLoaded, KvTier, KvTierStats, KvTiers,
    KvTiersConfig, TierChange, TierStats, HOST_POOL_DIR,
};

/// Index of a KV block in the pool, `0..num_blocks`.
pub type BlockId = u32;

//! KV-cache events: what a worker's block pool reports so routers can index which worker holds
//! which prefix blocks. Block hashes are the chained sequence hashes of crate `rotor-tokens`.

use serde::{Deserialize, Serialize};

/// Identifies a worker instance (unique within a deployment).
pub type WorkerId = u64;

/// One full block that became cached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct StoredBlock {
    /// Sequence hash: this block chained onto every block before it.
    pub block_hash: u64,
    /// Local hash of this block's tokens alone.
    pub tokens_hash: u64,
}

/// What changed in a worker's prefix cache.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum KvEventData {
    /// Blocks became cached, in sequence order; `parent_hash` is the block before the first one
    /// (`None` when the first block starts a sequence).
    Stored {
        parent_hash: Option<u64>,
        blocks: Vec<StoredBlock>,
    },
    /// Blocks were evicted.
    Removed { block_hashes: Vec<u64> },
    /// Everything was dropped.
    Cleared,
}

/// One event with its per-worker monotonic id, so consumers detect gaps and resync.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KvEvent {
    pub event_id: u64,
    pub data: KvEventData,
}

/// An event as the router receives it: which worker it came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouterEvent {
    pub worker_id: WorkerId,
    pub event: KvEvent,
}

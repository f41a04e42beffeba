//! rotor-kv-router: the pure core of KV-cache-aware routing — which worker holds which prefix
//! blocks, how loaded each worker is, what sending a request there would cost, and the choice.
//!
//! Key types:
//! - [`PrefixIndex`]: global index of block hashes → workers, fed by KV events (`rotor_protocol::
//!   RouterEvent`), with per-worker event-id gap detection and resync; [`PrefixIndex::find_matches`]
//!   gives each worker's longest prefix overlap ([`OverlapScores`]) in O(overlap length).
//! - [`ApproxIndex`]: the same question without events — routed prefixes are assumed cached for a TTL.
//! - [`LoadTracker`]: per-worker pending prefill tokens and decode blocks from routing decisions,
//!   merged with what workers report ([`WorkerLoad`]).
//! - KV tiers: events carry the tier holding a block (`rotor_protocol::CacheTier`); the index
//!   keeps device, host (per G2 pool shared by a machine's workers), disk and remote blocks,
//!   and an overlap counts each block of the run with its best tier's weight ([`TierWeights`]).
//! - [`CostFunction`] and [`WorkerSelector`]: `kv_overlap_weight · prefill_blocks + decode_blocks`
//!   (queued prefill scaled by `queue_weight`),
//!   argmin with a tie-break or softmax sampling at a temperature.
//! - [`KvRouter`]: all of the above behind `route` / `apply_event` / `mark_finished`, with
//!   [`RouterMetrics`] counters, and [`ReplicaSync`] messages that keep router replicas consistent.
//!
//! Block hashes come only from `rotor-tokens`. Time is passed in (`now`), never read.
//!
//! Must not depend on tokio, sockets or any Rotor crate above `protocol` and `tokens`: the
//! frontend's embedded router and the standalone router service wrap it with their own I/O.

mod approx_index;
mod block_hash_map;
mod config;
mod cost;
mod error;
mod load_tracker;
mod metrics;
mod overlap;
mod prefix_index;
mod replica;
mod router;
mod selector;
mod worker_set;

pub use approx_index::ApproxIndex;
pub use block_hash_map::{BlockHashMap, BlockHashSet, PassThroughHasher};
pub use config::{
    IndexMode, KvRouterConfig, TierWeights, DEFAULT_KV_OVERLAP_WEIGHT, DEFAULT_QUEUE_WEIGHT,
    DEFAULT_TIER_WEIGHTS,
};
pub use cost::{CostFunction, CostTerms};
pub use error::Error;
pub use load_tracker::{ActiveLoad, LoadTracker, WorkerLoad};
pub use metrics::RouterMetrics;
pub use overlap::{Overlap, OverlapScores};
pub use prefix_index::PrefixIndex;
pub use replica::{ReplicaSync, RoutingDecision};
/// The prompt block hashes routers and disaggregated serving use (re-exported from
/// `rotor-tokens`, so the frontend hashes exactly as workers do).
pub use rotor_tokens::sequence_hashes;
pub use router::{KvRouter, RoutedRequest};
pub use selector::{Candidate, Selection, TieBreak, WorkerSelector};

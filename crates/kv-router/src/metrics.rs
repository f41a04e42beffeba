//! `RouterMetrics`: plain counters the service wrapper exports on `/metrics`.

use std::collections::BTreeMap;

use rotor_protocol::WorkerId;

/// Counters since the router was created.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RouterMetrics {
    /// Requests this replica routed.
    pub decisions: u64,
    /// Of those, per chosen worker.
    pub decisions_by_worker: BTreeMap<WorkerId, u64>,
    /// Full prompt blocks of the routed requests.
    pub requested_blocks: u64,
    /// Of those, blocks the chosen worker already held.
    pub hit_blocks: u64,
    /// `hit_blocks` by the tier the chosen worker held each in (indexed by
    /// `CacheTier::index`: device, host, disk, remote).
    pub overlap_blocks_by_tier: [u64; 4],
    /// Of those, blocks the best-placed eligible worker held: `best_overlap_blocks − hit_blocks`
    /// is the cache the router gave up to spread load.
    pub best_overlap_blocks: u64,
    /// Decisions applied from other replicas.
    pub remote_decisions: u64,
    /// KV events applied (gapped ones included).
    pub events_applied: u64,
    /// Event-id gaps detected.
    pub event_gaps: u64,
}

impl RouterMetrics {
    /// `hit_blocks / requested_blocks` (0 before any block was requested).
    pub fn hit_rate(&self) -> f64 {
        if self.requested_blocks == 0 {
            0.0
        } else {
            self.hit_blocks as f64 / self.requested_blocks as f64
        }
    }
}

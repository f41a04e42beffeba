//! What router replicas tell each other over the event plane so they agree on every worker's
//! load (and, without KV events, on which prefixes were routed where). Each replica publishes
//! its own decisions and lifecycle notices and applies the others' with
//! [`crate::KvRouter::apply_replica_sync`].

use rotor_protocol::WorkerId;
use serde::{Deserialize, Serialize};

/// One routing decision, as another replica needs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoutingDecision {
    pub request_id: String,
    pub worker: WorkerId,
    /// Sequence hashes of the request's full blocks.
    pub hashes: Vec<u64>,
    /// Prompt length in tokens.
    pub request_tokens: usize,
    /// Leading blocks the worker held when the decision was made (any tier).
    pub overlap_blocks: usize,
    /// Of those, blocks in its engine pool (shared by the request); `None` from replicas
    /// before tiers: all of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_overlap_blocks: Option<usize>,
    /// Prompt tokens the worker will compute (the prefill its tiers do not save, rounded);
    /// `None` from replicas before tiers: the tokens past `overlap_blocks`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefill_tokens: Option<u64>,
}

/// A message between router replicas.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ReplicaSync {
    Routed(RoutingDecision),
    PrefillCompleted { request_id: String },
    Finished { request_id: String },
}

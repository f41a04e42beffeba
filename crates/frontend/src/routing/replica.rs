//! Router replicas sharing decisions: several frontends (or `rotor router` instances) routing
//! the same component's workers in kv mode each see only their own requests, so each would
//! count only its own load on a worker. With `replica_sync` on, every replica publishes what
//! its kv router decides and when those requests finish ([`ReplicaMessage`], on the
//! component's [`ROUTER_SYNC_TOPIC`] subject), and applies what the others publish, so all of
//! them weigh the same load.
//!
//! The event plane is at-most-once and a replica may die with requests open: another
//! replica's request stops counting when its end arrives or after `replica_request_ttl`.

use rotor_kv_router::ReplicaSync;
use serde::{Deserialize, Serialize};

/// Event-plane topic of router replica messages, under the routed component's subject.
pub const ROUTER_SYNC_TOPIC: &str = "router_sync";

/// One replica's routing news about one model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaMessage {
    /// The sender (random per process); a replica ignores its own messages.
    pub replica: u64,
    pub model: String,
    pub sync: ReplicaSync,
}

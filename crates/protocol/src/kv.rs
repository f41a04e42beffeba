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

/// Where a worker holds a KV block: the engine's pool (G1), host memory (G2, shared by the
/// workers of a machine that name the same pool), local disk (G3) or remote storage (G4).
/// Events from publishers that predate tiers carry none and mean `device`.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum CacheTier {
    #[default]
    Device,
    Host,
    Disk,
    Remote,
}

impl CacheTier {
    /// Every tier, fastest first.
    pub const ALL: [CacheTier; 4] = [
        CacheTier::Device,
        CacheTier::Host,
        CacheTier::Disk,
        CacheTier::Remote,
    ];

    /// The name on the wire and in metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            CacheTier::Device => "device",
            CacheTier::Host => "host",
            CacheTier::Disk => "disk",
            CacheTier::Remote => "remote",
        }
    }

    /// 0 for device … 3 for remote (per-tier arrays).
    pub fn index(self) -> usize {
        self as usize
    }
}

impl std::fmt::Display for CacheTier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for CacheTier {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        CacheTier::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| format!("unknown KV tier {s:?} (device, host, disk, remote)"))
    }
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
        /// The tier now holding them (`device` when absent: publishers before tiers).
        #[serde(default)]
        tier: CacheTier,
    },
    /// Blocks left a tier (evicted, or found corrupt). A block can leave one tier and stay in
    /// another: a `device` removal says nothing of the host copy.
    Removed {
        block_hashes: Vec<u64>,
        #[serde(default)]
        tier: CacheTier,
    },
    /// Everything in the engine's pool (`device`) was dropped; lower tiers keep their blocks.
    Cleared,
}

/// One event with its per-worker monotonic id, so consumers detect gaps and resync.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KvEvent {
    pub event_id: u64,
    pub data: KvEventData,
}

impl KvEventData {
    /// `Stored` in the engine's pool.
    pub fn stored(parent_hash: Option<u64>, blocks: Vec<StoredBlock>) -> Self {
        KvEventData::Stored {
            parent_hash,
            blocks,
            tier: CacheTier::Device,
        }
    }

    /// `Removed` from the engine's pool.
    pub fn removed(block_hashes: Vec<u64>) -> Self {
        KvEventData::Removed {
            block_hashes,
            tier: CacheTier::Device,
        }
    }
}

/// An event as the router receives it: which worker it came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouterEvent {
    pub worker_id: WorkerId,
    pub event: KvEvent,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_without_a_tier_parse_as_device() {
        let old = r#"{"worker_id":7,"event":{"event_id":3,"data":{"type":"stored","parent_hash":null,"blocks":[{"block_hash":11,"tokens_hash":12}]}}}"#;
        let event: RouterEvent = serde_json::from_str(old).expect("old stored event");
        assert_eq!(
            event.event.data,
            KvEventData::stored(
                None,
                vec![StoredBlock {
                    block_hash: 11,
                    tokens_hash: 12
                }]
            )
        );
        let old = r#"{"event_id":4,"data":{"type":"removed","block_hashes":[11]}}"#;
        let event: KvEvent = serde_json::from_str(old).expect("old removed event");
        assert_eq!(event.data, KvEventData::removed(vec![11]));
    }

    #[test]
    fn tiers_round_trip_by_name() {
        let data = KvEventData::Removed {
            block_hashes: vec![5],
            tier: CacheTier::Host,
        };
        let json = serde_json::to_string(&data).expect("serialize");
        assert_eq!(
            json,
            r#"{"type":"removed","block_hashes":[5],"tier":"host"}"#
        );
        assert_eq!(
            serde_json::from_str::<KvEventData>(&json).expect("parse"),
            data
        );
        assert_eq!("disk".parse::<CacheTier>(), Ok(CacheTier::Disk));
        assert!("gpu".parse::<CacheTier>().is_err());
    }
}

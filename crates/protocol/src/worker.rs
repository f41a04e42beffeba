//! The contract between frontends, routers and workers on the runtime planes: endpoint and topic
//! names, the generate call's wire encoding, and the load figures a worker publishes.
//!
//! A worker serves [`GENERATE_ENDPOINT`] on the request plane under
//! `{namespace}/{component}/generate`. The request payload is one JSON [`GenerateRequest`]; each
//! response chunk is one JSON [`EngineOutput`]; an error ends the stream as a `WireError`.
//! On the event plane it publishes [`KvEvent`](crate::KvEvent)s under [`KV_EVENTS_TOPIC`] (as
//! [`RouterEvent`](crate::RouterEvent)s naming the worker) and [`LoadReport`]s under
//! [`LOAD_TOPIC`], both on the subject `rotor.{namespace}.{component}.{topic}`.
//! It also serves [`KV_SNAPSHOT_ENDPOINT`] (empty payload, one JSON [`KvSnapshot`] chunk): what a
//! router fetches to rebuild its index of the worker after missing events.

use serde::{Deserialize, Serialize};

use crate::engine::{EngineOutput, GenerateRequest};
use crate::kv::WorkerId;

/// The namespace workers and frontends use unless told otherwise (`--namespace`).
pub const DEFAULT_NAMESPACE: &str = "rotor";
/// The component that serves generation (`--component`).
pub const DEFAULT_COMPONENT: &str = "backend";
/// The request-plane endpoint that runs one [`GenerateRequest`].
pub const GENERATE_ENDPOINT: &str = "generate";
/// The request-plane endpoint that returns the worker's [`KvSnapshot`].
pub const KV_SNAPSHOT_ENDPOINT: &str = "kv_snapshot";
/// The request-plane endpoint of a prefill worker (`--role prefill`): runs one
/// [`PrefillRequest`] (the prompt, one sampled token that is thrown away) and then streams the
/// prompt's KV blocks it was asked for, one encoded block (`rotor_kv_cache::block_format`) per
/// response chunk, in chain order. Ends early (fewer blocks) when a block is no longer cached.
pub const KV_PREFILL_ENDPOINT: &str = "kv_prefill";
/// The request-plane endpoint that imports KV blocks into a worker's prefix cache: the payload
/// is [`encode_block_batch`]'s, the one response chunk a JSON [`KvImportOutcome`].
pub const KV_IMPORT_ENDPOINT: &str = "kv_import";
/// The component under which each `rotor frontend` registers its HTTP address (endpoint
/// [`FRONTEND_ENDPOINT`]; the instance's metadata `url` is its base URL), so that the planner
/// finds the frontends whose traffic it reads.
pub const FRONTEND_COMPONENT: &str = "frontend";
/// See [`FRONTEND_COMPONENT`].
pub const FRONTEND_ENDPOINT: &str = "http";
/// Event-plane topic of KV events.
pub const KV_EVENTS_TOPIC: &str = "kv_events";
/// Event-plane topic of load reports.
pub const LOAD_TOPIC: &str = "load";

/// Load figures a worker publishes about itself.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerLoad {
    /// KV blocks in use by running sequences.
    pub active_blocks: u64,
    /// KV blocks the worker has in total.
    pub total_blocks: u64,
    /// Requests queued, not yet scheduled.
    pub waiting: u64,
    /// Requests running (scheduled, holding KV blocks).
    #[serde(default)]
    pub running: u64,
}

impl WorkerLoad {
    /// Fraction of the KV cache in use, 0 when the capacity is unknown.
    pub fn kv_usage(&self) -> f64 {
        if self.total_blocks == 0 {
            0.0
        } else {
            self.active_blocks as f64 / self.total_blocks as f64
        }
    }
}

/// One [`WorkerLoad`] as published on [`LOAD_TOPIC`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoadReport {
    pub worker_id: WorkerId,
    pub load: WorkerLoad,
}

/// Every block hash a worker's prefix cache holds, as of a point in its KV event stream.
///
/// Applying the worker's events with ids `next_event_id..` on top of `block_hashes` gives its
/// cache at any later point: the snapshot is consistent with the event stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KvSnapshot {
    /// Sequence hashes of every block the pool holds under a hash (in use or cached-free),
    /// ascending.
    pub block_hashes: Vec<u64>,
    /// The id the worker's next KV event will carry; every earlier event is already published.
    pub next_event_id: u64,
}

/// Encodes a [`KV_SNAPSHOT_ENDPOINT`] response.
pub fn encode_snapshot(snapshot: &KvSnapshot) -> Vec<u8> {
    serde_json::to_vec(snapshot).expect("invariant: a KvSnapshot serializes")
}

/// Decodes a [`KV_SNAPSHOT_ENDPOINT`] response.
pub fn decode_snapshot(bytes: &[u8]) -> Result<KvSnapshot, serde_json::Error> {
    serde_json::from_slice(bytes)
}

/// A prefill for a decode worker: run `request` (its `max_tokens` is forced to 1), then send
/// the blocks of `sequence_hashes` (a run of the prompt's full blocks, in chain order — the
/// ones the decode worker lacks).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PrefillRequest {
    pub request: GenerateRequest,
    pub sequence_hashes: Vec<u64>,
}

/// What a [`KV_IMPORT_ENDPOINT`] call did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KvImportOutcome {
    /// Blocks written and registered in the prefix cache.
    pub imported: u64,
    /// Blocks the worker already held (skipped).
    pub already_cached: u64,
    /// Why the import stopped before the last block (a metric label such as `corrupt`,
    /// `layout`, `token_hash`, `missing_parent`, `pool_full`), and the message.
    pub stopped: Option<(String, String)>,
}

/// Encodes blocks for one [`KV_IMPORT_ENDPOINT`] call: a u32 count, then each block as a u32
/// length and its bytes (little endian).
pub fn encode_block_batch(blocks: &[Vec<u8>]) -> Vec<u8> {
    let total: usize = blocks.iter().map(|b| b.len() + 4).sum();
    let mut out = Vec::with_capacity(4 + total);
    out.extend_from_slice(&(blocks.len() as u32).to_le_bytes());
    for block in blocks {
        out.extend_from_slice(&(block.len() as u32).to_le_bytes());
        out.extend_from_slice(block);
    }
    out
}

/// Decodes [`encode_block_batch`]'s bytes; `None` when they are truncated or have bytes left over.
pub fn decode_block_batch(bytes: &[u8]) -> Option<Vec<Vec<u8>>> {
    fn take_u32(bytes: &mut &[u8]) -> Option<u32> {
        let (head, rest) = bytes.split_first_chunk::<4>()?;
        *bytes = rest;
        Some(u32::from_le_bytes(*head))
    }
    let mut rest = bytes;
    let count = take_u32(&mut rest)? as usize;
    let mut blocks = Vec::with_capacity(count.min(rest.len() / 4));
    for _ in 0..count {
        let len = take_u32(&mut rest)? as usize;
        if rest.len() < len {
            return None;
        }
        let (block, tail) = rest.split_at(len);
        blocks.push(block.to_vec());
        rest = tail;
    }
    rest.is_empty().then_some(blocks)
}

/// Encodes a generate call's payload.
pub fn encode_request(req: &GenerateRequest) -> Vec<u8> {
    serde_json::to_vec(req).expect("invariant: a GenerateRequest serializes")
}

/// Decodes a generate call's payload.
pub fn decode_request(bytes: &[u8]) -> Result<GenerateRequest, serde_json::Error> {
    serde_json::from_slice(bytes)
}

/// Encodes one response chunk.
pub fn encode_output(out: &EngineOutput) -> Vec<u8> {
    serde_json::to_vec(out).expect("invariant: an EngineOutput serializes")
}

/// Decodes one response chunk.
pub fn decode_output(bytes: &[u8]) -> Result<EngineOutput, serde_json::Error> {
    serde_json::from_slice(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{FinishReason, SamplingParams, StopConditions};

    #[test]
    fn generate_call_round_trips() {
        let req = GenerateRequest {
            task: Default::default(),
            id: "r1".into(),
            token_ids: vec![1, 2, 3],
            sampling: SamplingParams::greedy(),
            stop: StopConditions {
                max_tokens: 7,
                ..StopConditions::default()
            },
        };
        assert_eq!(decode_request(&encode_request(&req)).unwrap(), req);
        let out = EngineOutput {
            prompt_logprobs: None,
            embedding: None,
            token_ids: vec![9].into(),
            finish_reason: Some(FinishReason::Length),
            cached_prompt_tokens: Some(16),
            logprobs: None,
        };
        assert_eq!(decode_output(&encode_output(&out)).unwrap(), out);
        assert!(decode_output(b"{\"token_ids\":").is_err());
    }

    #[test]
    fn block_batches_round_trip_and_refuse_damage() {
        let blocks = vec![vec![1u8, 2, 3], vec![], vec![9u8; 70]];
        let bytes = encode_block_batch(&blocks);
        assert_eq!(decode_block_batch(&bytes).unwrap(), blocks);
        assert_eq!(
            decode_block_batch(&encode_block_batch(&[])).unwrap(),
            Vec::<Vec<u8>>::new()
        );
        assert!(decode_block_batch(&bytes[..bytes.len() - 1]).is_none());
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(decode_block_batch(&longer).is_none());
        assert!(decode_block_batch(&[5, 0, 0, 0]).is_none());
    }

    #[test]
    fn snapshot_round_trips() {
        let snapshot = KvSnapshot {
            block_hashes: vec![3, u64::MAX],
            next_event_id: 42,
        };
        assert_eq!(
            decode_snapshot(&encode_snapshot(&snapshot)).unwrap(),
            snapshot
        );
        assert!(decode_snapshot(b"{\"block_hashes\":[1]}").is_err());
    }

    #[test]
    fn kv_usage_handles_unknown_capacity() {
        assert_eq!(WorkerLoad::default().kv_usage(), 0.0);
        let l = WorkerLoad {
            active_blocks: 25,
            total_blocks: 100,
            ..WorkerLoad::default()
        };
        assert_eq!(l.kv_usage(), 0.25);
    }
}

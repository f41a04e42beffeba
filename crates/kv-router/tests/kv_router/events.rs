//! Builders for KV events and prompts used across the tests.

use rotor_protocol::{KvEvent, KvEventData, RouterEvent, StoredBlock, WorkerId};
use rotor_tokens::sequence_hashes;

/// Block size of every scenario.
pub const BLOCK: usize = 4;

/// Token ids `start..start + blocks * BLOCK`.
pub fn prompt(start: u32, blocks: usize) -> Vec<u32> {
    (start..start + (blocks * BLOCK) as u32).collect()
}

/// Sequence hashes of `tokens` at block size `BLOCK`.
pub fn hashes(tokens: &[u32]) -> Vec<u64> {
    sequence_hashes(tokens, BLOCK)
}

pub fn stored(worker: WorkerId, id: u64, parent: Option<u64>, hashes: &[u64]) -> RouterEvent {
    event(
        worker,
        id,
        KvEventData::stored(
            parent,
            hashes
                .iter()
                .map(|h| StoredBlock {
                    block_hash: *h,
                    tokens_hash: h.rotate_left(7),
                })
                .collect(),
        ),
    )
}

pub fn removed(worker: WorkerId, id: u64, hashes: &[u64]) -> RouterEvent {
    event(worker, id, KvEventData::removed(hashes.to_vec()))
}

pub fn cleared(worker: WorkerId, id: u64) -> RouterEvent {
    event(worker, id, KvEventData::Cleared)
}

fn event(worker: WorkerId, id: u64, data: KvEventData) -> RouterEvent {
    RouterEvent {
        worker_id: worker,
        event: KvEvent { event_id: id, data },
    }
}

//! `EventBuffer`: the KV events a pool emitted since the last drain, with their ids.
//!
//! Ids start at 0 and grow by one per event, with no gaps, for the pool's whole life, so a
//! consumer that sees a jump knows it missed events. Two merges keep the stream short without
//! changing its meaning: a `Stored` whose parent is the last block of the pending `Stored` just
//! before it extends that event (one sequence filling several blocks), and the removals of one
//! `allocate` call form one `Removed`.
//!
//! The pool's own events are `device` (G1). The engine adds those of its offload tiers
//! (`tier_stored`, `tier_removed`: a block written to or evicted from G2/G3) to the same buffer,
//! so one worker's events of every tier share one gap-free id sequence.

use rotor_protocol::{CacheTier, KvEvent, KvEventData, StoredBlock};
use rotor_tokens::SequenceHash;

#[derive(Debug, Default)]
pub(crate) struct EventBuffer {
    pending: Vec<KvEvent>,
    next_id: u64,
}

impl EventBuffer {
    /// The id the next new event gets.
    pub fn next_id(&self) -> u64 {
        self.next_id
    }

    pub fn stored(&mut self, parent_hash: Option<SequenceHash>, block: StoredBlock) {
        if let Some(KvEvent {
            data:
                KvEventData::Stored {
                    blocks,
                    tier: CacheTier::Device,
                    ..
                },
            ..
        }) = self.pending.last_mut()
        {
            let continues =
                parent_hash.is_some() && blocks.last().map(|b| b.block_hash) == parent_hash;
            if continues {
                blocks.push(block);
                return;
            }
        }
        self.push(KvEventData::stored(parent_hash, vec![block]));
    }

    /// Blocks now held by an offload tier (one event; nothing if empty).
    pub fn tier_stored(&mut self, tier: CacheTier, blocks: Vec<StoredBlock>) {
        if !blocks.is_empty() {
            self.push(KvEventData::Stored {
                parent_hash: None,
                blocks,
                tier,
            });
        }
    }

    /// Blocks an offload tier no longer holds (one event; nothing if empty).
    pub fn tier_removed(&mut self, tier: CacheTier, block_hashes: Vec<SequenceHash>) {
        if !block_hashes.is_empty() {
            self.push(KvEventData::Removed { block_hashes, tier });
        }
    }

    /// One `Removed` for all of `hashes` (nothing if empty).
    pub fn removed(&mut self, block_hashes: Vec<SequenceHash>) {
        if !block_hashes.is_empty() {
            self.push(KvEventData::removed(block_hashes));
        }
    }

    pub fn cleared(&mut self) {
        self.push(KvEventData::Cleared);
    }

    pub fn drain(&mut self) -> Vec<KvEvent> {
        std::mem::take(&mut self.pending)
    }

    fn push(&mut self, data: KvEventData) {
        self.pending.push(KvEvent {
            event_id: self.next_id,
            data,
        });
        self.next_id += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(h: u64) -> StoredBlock {
        StoredBlock {
            block_hash: h,
            tokens_hash: h + 100,
        }
    }

    #[test]
    fn tier_events_share_the_ids_and_never_merge_with_device_stores() {
        let mut buf = EventBuffer::default();
        buf.stored(None, block(1));
        buf.tier_stored(CacheTier::Host, vec![block(1)]);
        // Its parent is the last block of a pending `Stored`, but that one is the host's.
        buf.stored(Some(1), block(2));
        buf.stored(Some(2), block(3));
        buf.tier_removed(CacheTier::Disk, vec![]);
        buf.tier_removed(CacheTier::Host, vec![1]);
        let events = buf.drain();
        let ids: Vec<u64> = events.iter().map(|e| e.event_id).collect();
        assert_eq!(ids, vec![0, 1, 2, 3]);
        let data: Vec<KvEventData> = events.into_iter().map(|e| e.data).collect();
        assert_eq!(
            data,
            vec![
                KvEventData::stored(None, vec![block(1)]),
                KvEventData::Stored {
                    parent_hash: None,
                    blocks: vec![block(1)],
                    tier: CacheTier::Host,
                },
                KvEventData::stored(Some(1), vec![block(2), block(3)]),
                KvEventData::Removed {
                    block_hashes: vec![1],
                    tier: CacheTier::Host,
                },
            ]
        );
        assert_eq!(buf.next_id(), 4);
    }
}

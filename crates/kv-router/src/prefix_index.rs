//! `PrefixIndex`: the global index of which workers hold which KV blocks, fed by KV events.
//!
//! Rules:
//! - Blocks are keyed by their sequence hash (`rotor-tokens`). Because a sequence hash chains
//!   every block before it, a worker holding block `i` of a request holds its whole prefix up to
//!   `i` *as content*; but eviction is per block, so the index still checks every block.
//! - A request's overlap with worker `w` is the length of the longest prefix of its hash list
//!   that `w` holds entirely. `find_matches` walks the hashes in order, intersecting the set of
//!   workers still matching, and stops when it empties: O(length of the longest overlap).
//! - Workers get dense slots (reused after `remove_worker`) so a block's holder set is a bitset.
//! - Event ids are per worker and contiguous from 0. The index expects `last + 1` (0 for a worker
//!   it has never heard of). A higher id means missed events: the event is still applied (what it
//!   says is true regardless), `Error::Gap` is returned and the worker is flagged until
//!   `resync_worker` replaces its blocks with a snapshot. A lower id is a replay: ignored,
//!   `Error::StaleEvent`.
//! - `Stored.parent_hash` is not needed: sequence hashes are globally unique, so blocks are
//!   indexed as they come even when their parent is unknown (they just never start a match).

use std::collections::HashMap;

use rotor_protocol::{KvEventData, RouterEvent, WorkerId};

use crate::block_hash_map::{BlockHashMap, BlockHashSet};
use crate::error::Error;
use crate::overlap::OverlapScores;
use crate::worker_set::{for_each_slot, words_for, WorkerSet};

/// What the index knows of one worker.
#[derive(Debug)]
struct WorkerBlocks {
    worker: WorkerId,
    held: BlockHashSet,
    /// Id the next event from this worker should carry.
    next_event_id: u64,
    needs_resync: bool,
}

/// The event-fed prefix index. See the module docs for the rules.
#[derive(Debug, Default)]
pub struct PrefixIndex {
    blocks: BlockHashMap<WorkerSet>,
    slots: Vec<Option<WorkerBlocks>>,
    slot_of: HashMap<WorkerId, usize>,
    free_slots: Vec<usize>,
}

impl PrefixIndex {
    pub fn new() -> Self {
        Self::default()
    }

    /// Applies one KV event. See the module docs for how event ids are checked.
    pub fn apply(&mut self, event: &RouterEvent) -> Result<(), Error> {
        let worker = event.worker_id;
        let slot = self.slot_for(worker);
        let state = self.state_mut(slot);
        let (expected, got) = (state.next_event_id, event.event.event_id);
        if got < expected {
            return Err(Error::StaleEvent {
                worker,
                expected,
                got,
            });
        }
        state.next_event_id = got + 1;
        let gap = got > expected;
        if gap {
            state.needs_resync = true;
        }
        match &event.event.data {
            KvEventData::Stored { blocks, .. } => {
                for block in blocks {
                    self.insert_block(slot, block.block_hash);
                }
            }
            KvEventData::Removed { block_hashes } => {
                for hash in block_hashes {
                    self.remove_block(slot, *hash);
                }
            }
            KvEventData::Cleared => self.clear_slot(slot),
        }
        if gap {
            Err(Error::Gap {
                worker,
                expected,
                got,
            })
        } else {
            Ok(())
        }
    }

    /// Replaces everything known about `worker` with a snapshot of the hashes it holds, taken
    /// just before the event with id `next_event_id`; clears its resync flag.
    pub fn resync_worker(
        &mut self,
        worker: WorkerId,
        hashes: impl IntoIterator<Item = u64>,
        next_event_id: u64,
    ) {
        let slot = self.slot_for(worker);
        self.clear_slot(slot);
        for hash in hashes {
            self.insert_block(slot, hash);
        }
        let state = self.state_mut(slot);
        state.next_event_id = next_event_id;
        state.needs_resync = false;
    }

    /// Forgets `worker` and every block it held; returns whether it was known.
    pub fn remove_worker(&mut self, worker: WorkerId) -> bool {
        let Some(slot) = self.slot_of.remove(&worker) else {
            return false;
        };
        self.clear_slot(slot);
        self.slots[slot] = None;
        self.free_slots.push(slot);
        true
    }

    /// Per worker, how many leading blocks of `hashes` it holds.
    pub fn find_matches(&self, hashes: &[u64]) -> OverlapScores {
        let mut scores = OverlapScores::default();
        let Some(first) = hashes.first().and_then(|h| self.blocks.get(h)) else {
            return scores;
        };
        let words = words_for(self.slots.len());
        let mut candidates: Vec<u64> = (0..words).map(|i| first.word(i)).collect();
        let mut depth = 1;
        while depth < hashes.len() {
            let holders = self.blocks.get(&hashes[depth]);
            let mut any = false;
            for (i, word) in candidates.iter_mut().enumerate() {
                let kept = holders.map_or(0, |set| *word & set.word(i));
                for_each_slot(i, *word & !kept, |slot| {
                    scores.insert(self.worker_at(slot), depth);
                });
                *word = kept;
                any |= kept != 0;
            }
            if !any {
                return scores;
            }
            depth += 1;
        }
        for (i, word) in candidates.iter().enumerate() {
            for_each_slot(i, *word, |slot| scores.insert(self.worker_at(slot), depth));
        }
        scores
    }

    /// Whether `worker` holds the block `hash`.
    pub fn holds(&self, worker: WorkerId, hash: u64) -> bool {
        match (self.slot_of.get(&worker), self.blocks.get(&hash)) {
            (Some(slot), Some(set)) => set.contains(*slot),
            _ => false,
        }
    }

    /// Blocks held by `worker` (0 if unknown).
    pub fn worker_block_count(&self, worker: WorkerId) -> usize {
        self.slot_of
            .get(&worker)
            .map_or(0, |slot| self.state(*slot).held.len())
    }

    /// Distinct block hashes held by any worker.
    pub fn distinct_blocks(&self) -> usize {
        self.blocks.len()
    }

    /// Whether `worker` missed events and awaits `resync_worker`.
    pub fn needs_resync(&self, worker: WorkerId) -> bool {
        self.slot_of
            .get(&worker)
            .is_some_and(|slot| self.state(*slot).needs_resync)
    }

    /// Workers that missed events, sorted by id.
    pub fn workers_needing_resync(&self) -> Vec<WorkerId> {
        let mut out: Vec<WorkerId> = self
            .slots
            .iter()
            .flatten()
            .filter(|s| s.needs_resync)
            .map(|s| s.worker)
            .collect();
        out.sort_unstable();
        out
    }

    /// The event id expected next from `worker` (`None` if never heard of).
    pub fn next_event_id(&self, worker: WorkerId) -> Option<u64> {
        self.slot_of
            .get(&worker)
            .map(|slot| self.state(*slot).next_event_id)
    }

    /// Known workers, sorted by id.
    pub fn workers(&self) -> Vec<WorkerId> {
        let mut out: Vec<WorkerId> = self.slot_of.keys().copied().collect();
        out.sort_unstable();
        out
    }

    fn slot_for(&mut self, worker: WorkerId) -> usize {
        if let Some(slot) = self.slot_of.get(&worker) {
            return *slot;
        }
        let state = WorkerBlocks {
            worker,
            held: BlockHashSet::default(),
            next_event_id: 0,
            needs_resync: false,
        };
        let slot = match self.free_slots.pop() {
            Some(slot) => {
                self.slots[slot] = Some(state);
                slot
            }
            None => {
                self.slots.push(Some(state));
                self.slots.len() - 1
            }
        };
        self.slot_of.insert(worker, slot);
        slot
    }

    fn state(&self, slot: usize) -> &WorkerBlocks {
        self.slots[slot]
            .as_ref()
            .expect("invariant: slot_of points at occupied slots")
    }

    fn state_mut(&mut self, slot: usize) -> &mut WorkerBlocks {
        self.slots[slot]
            .as_mut()
            .expect("invariant: slot_of points at occupied slots")
    }

    fn worker_at(&self, slot: usize) -> WorkerId {
        self.state(slot).worker
    }

    fn insert_block(&mut self, slot: usize, hash: u64) {
        if self.state_mut(slot).held.insert(hash) {
            self.blocks.entry(hash).or_default().insert(slot);
        }
    }

    fn remove_block(&mut self, slot: usize, hash: u64) {
        if !self.state_mut(slot).held.remove(&hash) {
            return;
        }
        if let Some(set) = self.blocks.get_mut(&hash) {
            set.remove(slot);
            if set.is_empty() {
                self.blocks.remove(&hash);
            }
        }
    }

    fn clear_slot(&mut self, slot: usize) {
        let held = std::mem::take(&mut self.state_mut(slot).held);
        for hash in held {
            if let Some(set) = self.blocks.get_mut(&hash) {
                set.remove(slot);
                if set.is_empty() {
                    self.blocks.remove(&hash);
                }
            }
        }
    }
}

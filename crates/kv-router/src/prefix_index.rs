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
//!
//! Tiers (`CacheTier` on `Stored` / `Removed`):
//! - `device` blocks (the engine's pool, G1) are in the bitset index above. `disk` and `remote`
//!   blocks are kept per worker. `host` blocks (G2) are kept per *host pool*: workers that
//!   share one G2 (same machine, same `--kv-host-pool`; `set_host_pool`) share one set, so a
//!   block any of them reported stored counts for all of them, and a removal any of them
//!   reports (the writer whose write evicted it, whoever wrote it) removes it for all. A
//!   worker with no pool named has a G2 of its own.
//! - A block leaving one tier stays indexed in the others (a G1 eviction of a block in G2).
//!   `Cleared` and `resync_worker` (a snapshot of G1) concern `device` only.
//! - Overlap (`find_matches_weighted`): the run of leading request blocks the worker holds in
//!   *any* tier — a block missing from G1 but in G2 extends it — each block counted in the
//!   tier with the highest weight holding it. While no lower-tier block is indexed (and the
//!   device weight is 1) this is the bitset walk over device holders; otherwise every worker
//!   walks its own run (O(workers + Σ overlaps)).

use std::collections::HashMap;

use rotor_protocol::{CacheTier, KvEventData, RouterEvent, WorkerId};

use crate::block_hash_map::{BlockHashMap, BlockHashSet};
use crate::config::TierWeights;
use crate::error::Error;
use crate::overlap::{Overlap, OverlapScores};
use crate::worker_set::{for_each_slot, words_for, WorkerSet};

/// What the index knows of one worker.
#[derive(Debug)]
struct WorkerBlocks {
    worker: WorkerId,
    held: BlockHashSet,
    /// The key of the G2 pool this worker reads and writes (`host_pools`).
    host_pool: String,
    disk: BlockHashSet,
    remote: BlockHashSet,
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
    /// G2 blocks per host pool key.
    host_pools: HashMap<String, BlockHashSet>,
}

/// The G2 pool key of a worker that named none: a pool of its own.
fn private_pool(worker: WorkerId) -> String {
    format!("worker/{worker:016x}")
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
            KvEventData::Stored { blocks, tier, .. } => {
                for block in blocks {
                    self.insert_tier_block(slot, *tier, block.block_hash);
                }
            }
            KvEventData::Removed { block_hashes, tier } => {
                for hash in block_hashes {
                    self.remove_tier_block(slot, *tier, *hash);
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

    /// Forgets `worker` and every block it held; returns whether it was known. Its G2 pool's
    /// blocks stay while another worker of the pool is known.
    pub fn remove_worker(&mut self, worker: WorkerId) -> bool {
        let Some(slot) = self.slot_of.remove(&worker) else {
            return false;
        };
        self.clear_slot(slot);
        let pool = std::mem::take(&mut self.state_mut(slot).host_pool);
        self.slots[slot] = None;
        self.free_slots.push(slot);
        self.drop_pool_if_unused(&pool);
        true
    }

    /// Names the G2 pool `worker` shares with the other workers of its machine (`None`: a pool
    /// of its own). Blocks it reported in its previous pool move along if that pool was its
    /// own; a shared pool keeps its blocks for its other workers.
    pub fn set_host_pool(&mut self, worker: WorkerId, pool: Option<String>) {
        let key = pool.unwrap_or_else(|| private_pool(worker));
        let slot = self.slot_for(worker);
        let old = std::mem::replace(&mut self.state_mut(slot).host_pool, key.clone());
        if old == key {
            return;
        }
        let moved = if old == private_pool(worker) {
            self.host_pools.remove(&old).unwrap_or_default()
        } else {
            self.drop_pool_if_unused(&old);
            BlockHashSet::default()
        };
        self.host_pools.entry(key).or_default().extend(moved);
    }

    /// Per worker, the longest run of leading blocks of `hashes` it holds in any tier, weighted
    /// by `weights` (see the module docs).
    pub fn find_matches_weighted(&self, hashes: &[u64], weights: &TierWeights) -> OverlapScores {
        // The bitset walk counts device blocks at weight 1.
        if !self.has_lower_tier_blocks() && weights.device >= 1.0 {
            return self.find_matches(hashes);
        }
        let mut scores = OverlapScores::default();
        for (slot, state) in self.slots.iter().enumerate() {
            let Some(state) = state else {
                continue;
            };
            let host = self.host_pools.get(&state.host_pool);
            let mut overlap = Overlap::default();
            for hash in hashes {
                let held = [
                    (
                        CacheTier::Device,
                        self.blocks.get(hash).is_some_and(|s| s.contains(slot)),
                    ),
                    (CacheTier::Host, host.is_some_and(|h| h.contains(hash))),
                    (CacheTier::Disk, state.disk.contains(hash)),
                    (CacheTier::Remote, state.remote.contains(hash)),
                ];
                let best = held
                    .iter()
                    .filter(|(_, held)| *held)
                    .map(|(tier, _)| (*tier, weights.weight(*tier)))
                    .max_by(|a, b| a.1.total_cmp(&b.1).then(b.0.cmp(&a.0)));
                match best {
                    Some((tier, weight)) => overlap.push(tier, weight),
                    None => break,
                }
            }
            scores.insert_overlap(state.worker, overlap);
        }
        scores
    }

    /// Blocks indexed in `tier`: distinct hashes in the engine pools (device), summed over the
    /// G2 pools (host), summed over workers (disk, remote).
    pub fn tier_block_count(&self, tier: CacheTier) -> usize {
        match tier {
            CacheTier::Device => self.blocks.len(),
            CacheTier::Host => self.host_pools.values().map(|p| p.len()).sum(),
            CacheTier::Disk => self.slots.iter().flatten().map(|s| s.disk.len()).sum(),
            CacheTier::Remote => self.slots.iter().flatten().map(|s| s.remote.len()).sum(),
        }
    }

    fn has_lower_tier_blocks(&self) -> bool {
        self.host_pools.values().any(|p| !p.is_empty())
            || self
                .slots
                .iter()
                .flatten()
                .any(|s| !s.disk.is_empty() || !s.remote.is_empty())
    }

    fn drop_pool_if_unused(&mut self, pool: &str) {
        let used = self.slots.iter().flatten().any(|s| s.host_pool == pool);
        if !used {
            self.host_pools.remove(pool);
        }
    }

    fn insert_tier_block(&mut self, slot: usize, tier: CacheTier, hash: u64) {
        match tier {
            CacheTier::Device => self.insert_block(slot, hash),
            CacheTier::Host => {
                let pool = self.state(slot).host_pool.clone();
                self.host_pools.entry(pool).or_default().insert(hash);
            }
            CacheTier::Disk => {
                self.state_mut(slot).disk.insert(hash);
            }
            CacheTier::Remote => {
                self.state_mut(slot).remote.insert(hash);
            }
        }
    }

    fn remove_tier_block(&mut self, slot: usize, tier: CacheTier, hash: u64) {
        match tier {
            CacheTier::Device => self.remove_block(slot, hash),
            CacheTier::Host => {
                let state = self.slots[slot]
                    .as_ref()
                    .expect("invariant: events apply to occupied slots");
                if let Some(pool) = self.host_pools.get_mut(&state.host_pool) {
                    pool.remove(&hash);
                }
            }
            CacheTier::Disk => {
                self.state_mut(slot).disk.remove(&hash);
            }
            CacheTier::Remote => {
                self.state_mut(slot).remote.remove(&hash);
            }
        }
    }

    /// Per worker, how many leading blocks of `hashes` it holds in its engine pool (device
    /// tier only; see `find_matches_weighted` for every tier).
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
            host_pool: private_pool(worker),
            disk: BlockHashSet::default(),
            remote: BlockHashSet::default(),
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

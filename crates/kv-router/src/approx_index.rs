//! `ApproxIndex`: a prefix index for deployments without KV events. Every prefix the router sends
//! to a worker is assumed cached there for `ttl`.
//!
//! Rules:
//! - `record_routed(worker, hashes, now)` marks each hash held by `worker` until `now + ttl`
//!   (re-routing a hash to the same worker extends it).
//! - An entry whose expiry is `<= now` is treated as absent by `find_matches`, so answers never
//!   depend on when pruning happened.
//! - Expiry is lazy: entries sit in a queue in the order they were recorded; every
//!   `record_routed` and `prune` pops the expired head of the queue and drops the entries it
//!   names unless they were extended since. Times passed in must not go backwards (the caller
//!   owns the clock; tests inject one).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use rotor_protocol::WorkerId;

use crate::block_hash_map::BlockHashMap;
use crate::overlap::OverlapScores;

/// Holders of one block: worker and the instant its entry expires.
type Holders = Vec<(WorkerId, Instant)>;

/// The TTL-based prefix index. See the module docs for the rules.
#[derive(Debug)]
pub struct ApproxIndex {
    ttl: Duration,
    blocks: BlockHashMap<Holders>,
    /// `(expiry, worker, hash)` in recording order, hence in expiry order.
    expiries: VecDeque<(Instant, WorkerId, u64)>,
}

impl ApproxIndex {
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            blocks: BlockHashMap::default(),
            expiries: VecDeque::new(),
        }
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Assumes `worker` caches `hashes` from `now` until `now + ttl`.
    pub fn record_routed(&mut self, worker: WorkerId, hashes: &[u64], now: Instant) {
        self.prune(now);
        let expiry = now + self.ttl;
        for hash in hashes {
            let holders = self.blocks.entry(*hash).or_default();
            match holders.iter_mut().find(|(w, _)| *w == worker) {
                Some((_, until)) => *until = expiry,
                None => holders.push((worker, expiry)),
            }
            self.expiries.push_back((expiry, worker, *hash));
        }
    }

    /// Per worker, how many leading blocks of `hashes` it is assumed to hold at `now`.
    pub fn find_matches(&self, hashes: &[u64], now: Instant) -> OverlapScores {
        let mut scores = OverlapScores::default();
        let live = |hash: &u64| -> Vec<WorkerId> {
            self.blocks.get(hash).map_or_else(Vec::new, |holders| {
                holders
                    .iter()
                    .filter(|(_, until)| *until > now)
                    .map(|(w, _)| *w)
                    .collect()
            })
        };
        let Some(first) = hashes.first() else {
            return scores;
        };
        let mut candidates = live(first);
        let mut depth = 1;
        while !candidates.is_empty() && depth < hashes.len() {
            let next = live(&hashes[depth]);
            candidates.retain(|w| {
                let keep = next.contains(w);
                if !keep {
                    scores.insert(*w, depth);
                }
                keep
            });
            depth += 1;
        }
        for w in candidates {
            scores.insert(w, depth);
        }
        scores
    }

    /// Drops every entry expired at `now`.
    pub fn prune(&mut self, now: Instant) {
        while let Some(&(expiry, worker, hash)) = self.expiries.front() {
            if expiry > now {
                break;
            }
            self.expiries.pop_front();
            if let Some(holders) = self.blocks.get_mut(&hash) {
                // Only drop the entry if it was not extended by a later recording.
                holders.retain(|(w, until)| !(*w == worker && *until <= now));
                if holders.is_empty() {
                    self.blocks.remove(&hash);
                }
            }
        }
    }

    /// Forgets every entry of `worker`.
    pub fn remove_worker(&mut self, worker: WorkerId) {
        self.blocks.retain(|_, holders| {
            holders.retain(|(w, _)| *w != worker);
            !holders.is_empty()
        });
        self.expiries.retain(|(_, w, _)| *w != worker);
    }

    /// Distinct hashes with at least one entry (expired ones included until pruned).
    pub fn distinct_blocks(&self) -> usize {
        self.blocks.len()
    }
}

//! `OverlapScores`: for one request, how many of its leading blocks each worker holds.

use std::collections::HashMap;

use rotor_protocol::WorkerId;

/// Per worker, the length (in blocks) of the longest prefix of the request's block hashes that
/// the worker holds entirely. Workers with no overlap are absent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OverlapScores {
    scores: HashMap<WorkerId, usize>,
}

impl OverlapScores {
    pub(crate) fn insert(&mut self, worker: WorkerId, blocks: usize) {
        if blocks > 0 {
            self.scores.insert(worker, blocks);
        }
    }

    /// Matched blocks of `worker` (0 when it holds not even the first block).
    pub fn get(&self, worker: WorkerId) -> usize {
        self.scores.get(&worker).copied().unwrap_or(0)
    }

    /// Workers with at least one matched block, with their counts (in no particular order).
    pub fn iter(&self) -> impl Iterator<Item = (WorkerId, usize)> + '_ {
        self.scores.iter().map(|(w, n)| (*w, *n))
    }

    /// Number of workers with at least one matched block.
    pub fn len(&self) -> usize {
        self.scores.len()
    }

    pub fn is_empty(&self) -> bool {
        self.scores.is_empty()
    }

    /// The largest overlap over all workers (0 if none).
    pub fn max_blocks(&self) -> usize {
        self.scores.values().copied().max().unwrap_or(0)
    }
}

//! `OverlapScores`: for one request, how many of its leading blocks each worker holds, and in
//! which tiers.

use std::collections::HashMap;

use rotor_protocol::{CacheTier, WorkerId};

/// One worker's overlap with a request: the longest run of the request's leading blocks the
/// worker holds in any tier, each block counted in the best tier (by weight) it is held in.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Overlap {
    /// Blocks in the run, all tiers.
    pub blocks: usize,
    /// Of those, blocks in each tier (indexed by `CacheTier::index`).
    pub by_tier: [usize; 4],
    /// `Σ weight(tier of block)` over the run: the blocks of prefill the worker saves.
    pub weighted_blocks: f64,
}

impl Overlap {
    /// A run of `blocks` blocks all in the engine's pool (weight 1).
    pub fn device(blocks: usize) -> Self {
        let mut by_tier = [0; 4];
        by_tier[CacheTier::Device.index()] = blocks;
        Self {
            blocks,
            by_tier,
            weighted_blocks: blocks as f64,
        }
    }

    /// Blocks of the run held in the engine's pool (shared, not copied, by the request).
    pub fn device_blocks(&self) -> usize {
        self.by_tier[CacheTier::Device.index()]
    }

    pub(crate) fn push(&mut self, tier: CacheTier, weight: f64) {
        self.blocks += 1;
        self.by_tier[tier.index()] += 1;
        self.weighted_blocks += weight;
    }
}

/// Per worker, the longest prefix of the request's block hashes that the worker holds
/// entirely (in any tier). Workers with no overlap are absent.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OverlapScores {
    scores: HashMap<WorkerId, Overlap>,
}

impl OverlapScores {
    pub(crate) fn insert(&mut self, worker: WorkerId, blocks: usize) {
        self.insert_overlap(worker, Overlap::device(blocks));
    }

    pub(crate) fn insert_overlap(&mut self, worker: WorkerId, overlap: Overlap) {
        if overlap.blocks > 0 {
            self.scores.insert(worker, overlap);
        }
    }

    /// Matched blocks of `worker`, all tiers (0 when it holds not even the first block).
    pub fn get(&self, worker: WorkerId) -> usize {
        self.overlap(worker).blocks
    }

    /// The overlap of `worker`, per tier and weighted (empty when none).
    pub fn overlap(&self, worker: WorkerId) -> Overlap {
        self.scores.get(&worker).copied().unwrap_or_default()
    }

    /// Workers with at least one matched block, with their counts (in no particular order).
    pub fn iter(&self) -> impl Iterator<Item = (WorkerId, usize)> + '_ {
        self.scores.iter().map(|(w, o)| (*w, o.blocks))
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
        self.scores.values().map(|o| o.blocks).max().unwrap_or(0)
    }
}

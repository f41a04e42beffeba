//! `WorkerSelector`: picks a worker from the candidates' costs.
//!
//! Parameters:
//! - `cost`: the [`CostFunction`] (block size, `kv_overlap_weight`, `queue_weight`).
//! - `temperature` (`τ`, `--router-temperature`, ≥ 0): 0 picks the lowest logit; above 0 the
//!   logits are first normalised to `[0, 1]` (`(l − min) / (max − min)`, all 0 when equal) so
//!   `τ` means the same whatever the request size, and a worker is drawn with probability
//!   `softmax(−normalised / τ)`. Small `τ` is near-greedy, large `τ` near-uniform.
//! - `tie_break`: among workers whose logits are equal (within 1e-9 relative) when `τ = 0`:
//!   `LeastLoaded` takes the fewest decode blocks, then the fewest pending prefill tokens, then the
//!   lowest worker id (fully deterministic); `Random` draws uniformly from the tied workers.
//!
//! Randomness comes from the caller's generator, so a seeded generator reproduces every choice.

use rand::Rng;
use serde::{Deserialize, Serialize};
use tracing::debug;

use rotor_protocol::WorkerId;

use crate::cost::{CostFunction, CostTerms};
use crate::error::Error;
use crate::load_tracker::ActiveLoad;
use crate::overlap::Overlap;

/// How to choose among workers with equal cost (greedy mode).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TieBreak {
    /// Fewest decode blocks, then fewest pending prefill tokens, then lowest id.
    #[default]
    LeastLoaded,
    /// Uniformly at random (from the caller's generator).
    Random,
}

/// One worker the request could go to.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Candidate {
    pub worker: WorkerId,
    /// Leading request blocks the worker holds, per tier and weighted.
    pub overlap: Overlap,
    pub load: ActiveLoad,
}

/// The chosen worker and why.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Selection {
    pub worker: WorkerId,
    /// Blocks the request will occupy.
    pub request_blocks: usize,
    /// The chosen worker's cost terms (its overlap included).
    pub terms: CostTerms,
}

/// Chooses workers by cost. See the module docs for every parameter.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WorkerSelector {
    pub cost: CostFunction,
    pub temperature: f64,
    pub tie_break: TieBreak,
}

impl WorkerSelector {
    /// Chooses one of `candidates` for a request of `request_tokens` tokens.
    pub fn select<R: Rng + ?Sized>(
        &self,
        request_tokens: usize,
        candidates: &[Candidate],
        rng: &mut R,
    ) -> Result<Selection, Error> {
        if candidates.is_empty() {
            return Err(Error::NoWorkers);
        }
        let terms: Vec<CostTerms> = candidates
            .iter()
            .map(|c| self.cost.tiered_terms(request_tokens, c.overlap, c.load))
            .collect();
        for (c, t) in candidates.iter().zip(&terms) {
            debug!(
                worker = c.worker,
                overlap_blocks = t.overlap_blocks,
                prefill_blocks = t.prefill_blocks,
                decode_blocks = t.decode_blocks,
                logit = t.logit,
                "router cost"
            );
        }
        let chosen = if self.temperature > 0.0 {
            let logits: Vec<f64> = terms.iter().map(|t| t.logit).collect();
            sample_index(&self.probabilities(&logits), rng)
        } else {
            self.argmin(candidates, &terms, rng)
        };
        let selection = Selection {
            worker: candidates[chosen].worker,
            request_blocks: self.cost.request_blocks(request_tokens),
            terms: terms[chosen],
        };
        debug!(
            worker = selection.worker,
            logit = selection.terms.logit,
            "router choice"
        );
        Ok(selection)
    }

    /// The sampling distribution over `logits` at this selector's temperature (`τ > 0`).
    pub fn probabilities(&self, logits: &[f64]) -> Vec<f64> {
        let min = logits.iter().copied().fold(f64::INFINITY, f64::min);
        let max = logits.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let range = max - min;
        let weights: Vec<f64> = logits
            .iter()
            .map(|l| {
                let normalised = if range > 0.0 { (l - min) / range } else { 0.0 };
                (-normalised / self.temperature).exp()
            })
            .collect();
        let total: f64 = weights.iter().sum();
        weights.iter().map(|w| w / total).collect()
    }

    fn argmin<R: Rng + ?Sized>(
        &self,
        candidates: &[Candidate],
        terms: &[CostTerms],
        rng: &mut R,
    ) -> usize {
        let best = terms.iter().map(|t| t.logit).fold(f64::INFINITY, f64::min);
        let tolerance = 1e-9 * best.abs().max(1.0);
        let tied: Vec<usize> = (0..terms.len())
            .filter(|i| terms[*i].logit - best <= tolerance)
            .collect();
        match self.tie_break {
            TieBreak::Random => tied[rng.random_range(0..tied.len())],
            TieBreak::LeastLoaded => *tied
                .iter()
                .min_by_key(|i| {
                    let c = &candidates[**i];
                    (c.load.decode_blocks, c.load.prefill_tokens, c.worker)
                })
                .expect("invariant: the best logit belongs to some candidate"),
        }
    }
}

/// Draws an index with the given probabilities (which sum to 1).
fn sample_index<R: Rng + ?Sized>(probabilities: &[f64], rng: &mut R) -> usize {
    let mut u: f64 = rng.random();
    for (i, p) in probabilities.iter().enumerate() {
        if u < *p {
            return i;
        }
        u -= p;
    }
    // Rounding left u just above the last bucket's width.
    probabilities.len() - 1
}

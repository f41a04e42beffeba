//! Turning one row of logits into the next token.
//!
//! Order, as in the brief and HF/vLLM: penalties → temperature → top-k → top-p → min-p → draw.
//! - `repetition_penalty` r (HF/CTRL): for every token seen in prompt or output, a positive logit
//!   is divided by r and a negative one multiplied by r (r = 1 is off).
//! - `frequency_penalty` f and `presence_penalty` p (OpenAI): for every token with count c > 0 in
//!   the output, `logit -= c·f + p`.
//! - temperature T: 0 is greedy (argmax of the penalised logits, lowest id on ties; truncation is
//!   then irrelevant); otherwise logits are divided by T.
//! - top-k k: keep the k largest logits (`None` or 0 keeps all); ties broken by lower id.
//! - top-p P: over the kept set sorted by probability, keep the shortest prefix whose mass
//!   reaches P (always at least one token; 1 is off).
//! - min-p m: keep tokens whose probability is at least m × the largest probability (0 is off).
//!
//! Cost: with top-p on, only the tokens whose scaled logit is within 17 of the largest are
//! exponentiated and sorted (a handful at temperature 0.2, instead of the whole 49,152-token
//! vocabulary); the draws are bit-identical to the full sort (proof at `truncate_nucleus`; the
//! old full-sort sampler is the naive twin in the tests). Without top-p the work is one pass.
//!
//! The `Sampler` owns its scratch buffers and is reused across tokens and sequences, so drawing a
//! token does not allocate once the buffers reached vocabulary size.

use std::cmp::Ordering;
use std::collections::{HashMap, HashSet};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rotor_protocol::{SamplingParams, TokenLogprob};

/// Below this temperature sampling is greedy.
const GREEDY_TEMPERATURE: f32 = 1e-6;

/// Scaled logits this far or further below the largest have exp(v - max) < 2^-24: they cannot
/// change an f32 sum that already holds the top token's 1.0 (see `Sampler::truncate_nucleus`).
const NEGLIGIBLE_GAP: f32 = -17.0;

/// Logits per chunk of the candidate scans.
const SCAN_CHUNK: usize = 64;

/// The per-sequence token history the penalties need.
#[derive(Debug, Default, Clone)]
pub struct PenaltyState {
    /// Output token → count (frequency and presence penalties).
    output_counts: HashMap<u32, u32>,
    /// Prompt ∪ output tokens (repetition penalty); only filled when that penalty is on.
    seen: HashSet<u32>,
    track_seen: bool,
    track_counts: bool,
}

impl PenaltyState {
    pub fn new(prompt: &[u32], params: &SamplingParams) -> Self {
        let track_seen = params.repetition_penalty != 1.0;
        let track_counts = params.frequency_penalty != 0.0 || params.presence_penalty != 0.0;
        let seen = if track_seen {
            prompt.iter().copied().collect()
        } else {
            HashSet::new()
        };
        Self {
            output_counts: HashMap::new(),
            seen,
            track_seen,
            track_counts,
        }
    }

    /// Records a generated token.
    pub fn record(&mut self, token: u32) {
        if self.track_seen {
            self.seen.insert(token);
        }
        if self.track_counts {
            *self.output_counts.entry(token).or_insert(0) += 1;
        }
    }
}

/// Applies repetition, then frequency and presence penalties to `logits` in place.
pub fn apply_penalties(logits: &mut [f32], params: &SamplingParams, state: &PenaltyState) {
    let r = params.repetition_penalty;
    if r != 1.0 {
        for &token in &state.seen {
            if let Some(l) = logits.get_mut(token as usize) {
                *l = if *l > 0.0 { *l / r } else { *l * r };
            }
        }
    }
    let (f, p) = (params.frequency_penalty, params.presence_penalty);
    if f != 0.0 || p != 0.0 {
        for (&token, &count) in &state.output_counts {
            if let Some(l) = logits.get_mut(token as usize) {
                *l -= count as f32 * f + p;
            }
        }
    }
}

/// Largest bias `logit_bias` may add or subtract (OpenAI's range).
pub const MAX_LOGIT_BIAS: f32 = 100.0;

/// Adds OpenAI `logit_bias` to `logits`, each bias clamped to ±[`MAX_LOGIT_BIAS`]; ids outside
/// the row are ignored (requests are validated against the vocabulary first).
pub fn apply_logit_bias(logits: &mut [f32], bias: &[(u32, f32)]) {
    for &(token, b) in bias {
        if let Some(l) = logits.get_mut(token as usize) {
            *l += b.clamp(-MAX_LOGIT_BIAS, MAX_LOGIT_BIAS);
        }
    }
}

/// The log-probability of `chosen` under softmax(`logits`) and the `top` most likely tokens
/// (most likely first, lower id on ties), computed in f64 over the whole row. Tokens at -inf
/// (masked by a constraint) are never listed; a chosen token at -inf reports `f32::MIN`
/// (JSON has no -inf).
pub fn token_logprob(logits: &[f32], chosen: u32, top: usize) -> TokenLogprob {
    let max = logits
        .iter()
        .copied()
        .filter(|l| !l.is_nan())
        .fold(f32::NEG_INFINITY, f32::max);
    let lse = if max.is_finite() {
        let sum: f64 = logits
            .iter()
            .filter(|l| !l.is_nan())
            .map(|&l| ((l - max) as f64).exp())
            .sum();
        max as f64 + sum.ln()
    } else {
        0.0
    };
    let logprob = |l: f32| -> f32 {
        let lp = (l as f64 - lse) as f32;
        if lp.is_finite() {
            lp.min(0.0)
        } else {
            f32::MIN
        }
    };
    let chosen_lp = logits
        .get(chosen as usize)
        .map_or(f32::MIN, |&l| logprob(l));
    let mut best: Vec<(u32, f32)> = Vec::with_capacity(top + 1);
    if top > 0 {
        for (i, &l) in logits.iter().enumerate() {
            if l.is_nan() || l == f32::NEG_INFINITY {
                continue;
            }
            if best.len() == top && l <= best[top - 1].1 {
                continue;
            }
            let at = best.partition_point(|&(_, v)| v >= l);
            best.insert(at, (i as u32, l));
            best.truncate(top);
        }
    }
    TokenLogprob {
        token_id: chosen,
        logprob: chosen_lp,
        top: best.into_iter().map(|(id, l)| (id, logprob(l))).collect(),
    }
}

/// Index of the largest value, lowest index on ties (NaN never wins).
pub fn argmax(logits: &[f32]) -> u32 {
    let mut best = 0usize;
    let mut best_value = f32::NEG_INFINITY;
    for (i, &v) in logits.iter().enumerate() {
        if v > best_value {
            best = i;
            best_value = v;
        }
    }
    best as u32
}

/// A per-sequence random source, seeded from the request (or at random).
pub fn seeded_rng(seed: Option<u64>) -> StdRng {
    StdRng::seed_from_u64(seed.unwrap_or_else(rand::random))
}

#[derive(Debug, Clone, Copy)]
struct Candidate {
    id: u32,
    /// Temperature-scaled logit, then (after `normalise`) its probability.
    value: f32,
}

/// Length of the shortest prefix of `sorted` (probabilities, most probable first) whose mass
/// reaches `top_p`; `None` if the whole slice does not reach it.
fn nucleus_len(sorted: &[Candidate], top_p: f32) -> Option<usize> {
    let mut mass = 0.0f32;
    for (i, c) in sorted.iter().enumerate() {
        mass += c.value;
        if mass >= top_p {
            return Some(i + 1);
        }
    }
    None
}

/// Larger value first, then lower id: a total order so truncation is deterministic.
fn by_value_desc(a: &Candidate, b: &Candidate) -> Ordering {
    b.value.total_cmp(&a.value).then(a.id.cmp(&b.id))
}

/// Draws tokens; holds reusable scratch buffers (one per engine, not per sequence).
#[derive(Debug, Default)]
pub struct Sampler {
    candidates: Vec<Candidate>,
    /// Always take the full-sort path (the reference the shortcut is measured against).
    full_sort: bool,
}

impl Sampler {
    pub fn new() -> Self {
        Self::default()
    }

    /// A sampler that never takes the nucleus shortcut: every top-p draw sorts the whole
    /// vocabulary. Same draws as `new()`, slower; for benchmarks and tests.
    pub fn full_sort() -> Self {
        Self {
            full_sort: true,
            ..Self::default()
        }
    }

    /// Penalises `logits` in place, then draws the next token.
    pub fn sample(
        &mut self,
        logits: &mut [f32],
        params: &SamplingParams,
        state: &PenaltyState,
        rng: &mut StdRng,
    ) -> u32 {
        apply_penalties(logits, params, state);
        self.draw(logits, params, rng)
    }

    /// Draws the next token from already-penalised (and biased, masked) `logits`: temperature,
    /// top-k, top-p, min-p, then a draw (greedy below the temperature threshold).
    pub fn draw(&mut self, logits: &[f32], params: &SamplingParams, rng: &mut StdRng) -> u32 {
        if params.temperature < GREEDY_TEMPERATURE {
            return argmax(logits);
        }
        self.truncate(logits, params);
        let total: f32 = self.candidates.iter().map(|c| c.value).sum();
        if !(total.is_finite() && total > 0.0) {
            // All logits -inf or NaN: no distribution to draw from.
            return argmax(logits);
        }
        let u: f32 = rng.random();
        let mut remaining = u * total;
        for c in &self.candidates {
            remaining -= c.value;
            if remaining < 0.0 {
                return c.id;
            }
        }
        // Rounding left a sliver of mass: it belongs to the last kept token.
        self.candidates
            .last()
            .map_or_else(|| argmax(logits), |c| c.id)
    }

    /// Applies temperature, top-k, top-p and min-p to already-penalised `logits`, leaving the
    /// kept tokens and their normalised probabilities in the scratch set (see `kept`).
    /// `params.temperature` must be above the greedy threshold.
    ///
    /// With top-p on, the nucleus is found among the few tokens whose logit is within
    /// [`NEGLIGIBLE_GAP`] of the largest (see `truncate_nucleus`); the result is bit-identical to
    /// sorting the whole vocabulary (`truncate_full`), which remains the fallback.
    pub fn truncate(&mut self, logits: &[f32], params: &SamplingParams) {
        if params.top_p < 1.0 && !self.full_sort && self.truncate_nucleus(logits, params) {
            self.apply_min_p(params.min_p);
            return;
        }
        self.truncate_full(logits, params);
    }

    /// The nucleus from the candidates near the top, exactly as `truncate_full` would find it.
    ///
    /// Why this is exact: `truncate_full` sorts all tokens by scaled logit v (descending), takes
    /// e = exp(v - max), sums the e in that order in f32, and walks the sorted prefix until the
    /// mass reaches top_p. The first e is exp(0) = 1, so the running sum is ≥ 1 from then on,
    /// and any e < 2^-24 (half an ulp of 1) added to it rounds to no change at all. Every token
    /// with v - max < `NEGLIGIBLE_GAP` (= -17, e^-17 ≈ 4.1e-8 < 2^-24) sorts after every kept
    /// candidate and adds exactly nothing. So the candidates, sorted the same way, give the
    /// same sum, the same probabilities and, if their cumulative mass reaches top_p, the same
    /// nucleus. If it does not (or a logit is NaN or the maximum is not finite) this returns
    /// false and the caller takes the full path.
    fn truncate_nucleus(&mut self, logits: &[f32], params: &SamplingParams) -> bool {
        let inv_t = 1.0 / params.temperature.max(GREEDY_TEMPERATURE);
        // Both scans go over fixed-size chunks with branch-free bodies so they vectorise; only
        // chunks holding a candidate are walked again to collect it.
        let mut max_logit = f32::NEG_INFINITY;
        let mut any_nan = false;
        for chunk in logits.chunks(SCAN_CHUNK) {
            for &l in chunk {
                any_nan |= l.is_nan();
                max_logit = if l > max_logit { l } else { max_logit };
            }
        }
        // Scaling by inv_t > 0 is monotonic, so this is the largest scaled logit.
        let max = max_logit * inv_t;
        if any_nan || !max.is_finite() {
            return false;
        }
        self.candidates.clear();
        let near_top = |l: f32| l * inv_t - max >= NEGLIGIBLE_GAP;
        for (c, chunk) in logits.chunks(SCAN_CHUNK).enumerate() {
            if !chunk.iter().fold(false, |hit, &l| hit | near_top(l)) {
                continue;
            }
            for (j, &l) in chunk.iter().enumerate() {
                if near_top(l) {
                    self.candidates.push(Candidate {
                        id: (c * SCAN_CHUNK + j) as u32,
                        value: l * inv_t,
                    });
                }
            }
        }
        // Top-k of the whole vocabulary starts with the candidates (they are its largest), and
        // the tokens it adds beyond them weigh nothing, as above.
        let k = params.top_k.map_or(0, |k| k as usize);
        if k > 0 && k < self.candidates.len() {
            self.candidates.select_nth_unstable_by(k - 1, by_value_desc);
            self.candidates.truncate(k);
        }
        self.candidates.sort_unstable_by(by_value_desc);
        self.normalise_from_logits();
        let Some(keep) = nucleus_len(&self.candidates, params.top_p) else {
            return false;
        };
        self.candidates.truncate(keep);
        self.renormalise();
        true
    }

    /// The reference path: every token is a candidate; a full sort when top-p is on.
    fn truncate_full(&mut self, logits: &[f32], params: &SamplingParams) {
        let inv_t = 1.0 / params.temperature.max(GREEDY_TEMPERATURE);
        self.candidates.clear();
        self.candidates
            .extend(logits.iter().enumerate().map(|(i, &l)| Candidate {
                id: i as u32,
                value: l * inv_t,
            }));
        let k = params.top_k.map_or(0, |k| k as usize);
        if k > 0 && k < self.candidates.len() {
            self.candidates.select_nth_unstable_by(k - 1, by_value_desc);
            self.candidates.truncate(k);
        }
        let needs_order = params.top_p < 1.0;
        if needs_order {
            self.candidates.sort_unstable_by(by_value_desc);
        }
        self.normalise_from_logits();
        if needs_order {
            let keep = nucleus_len(&self.candidates, params.top_p).unwrap_or(self.candidates.len());
            self.candidates.truncate(keep);
            self.renormalise();
        }
        self.apply_min_p(params.min_p);
    }

    fn apply_min_p(&mut self, min_p: f32) {
        if min_p > 0.0 {
            let top = self
                .candidates
                .iter()
                .map(|c| c.value)
                .fold(0.0f32, f32::max);
            let threshold = min_p * top;
            self.candidates.retain(|c| c.value >= threshold);
            self.renormalise();
        }
    }

    /// The tokens kept by the last `truncate`, with their probabilities (order unspecified
    /// unless top-p was on, then most probable first).
    pub fn kept(&self) -> impl Iterator<Item = (u32, f32)> + '_ {
        self.candidates.iter().map(|c| (c.id, c.value))
    }

    fn normalise_from_logits(&mut self) {
        let max = self
            .candidates
            .iter()
            .map(|c| c.value)
            .fold(f32::NEG_INFINITY, f32::max);
        for c in &mut self.candidates {
            c.value = (c.value - max).exp();
        }
        self.renormalise();
    }

    fn renormalise(&mut self) {
        let sum: f32 = self.candidates.iter().map(|c| c.value).sum();
        if sum > 0.0 {
            for c in &mut self.candidates {
                c.value /= sum;
            }
        }
    }
}

#[cfg(test)]
#[path = "sampler_tests.rs"]
mod tests;

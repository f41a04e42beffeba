//! Percentiles and summary statistics of latency samples.
//!
//! Percentiles interpolate linearly between the closest ranks (numpy's default): for sorted
//! samples `x[0..n]` and `p` in `[0, 100]`, rank `r = p / 100 * (n - 1)`, and the value is
//! `x[floor r] + (x[ceil r] - x[floor r]) * (r - floor r)`.

use serde::Serialize;

/// The `p`-th percentile of `sorted` (ascending); `None` when empty.
pub fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (p.clamp(0.0, 100.0) / 100.0) * (sorted.len() - 1) as f64;
    let lo = rank.floor() as usize;
    let hi = rank.ceil() as usize;
    Some(sorted[lo] + (sorted[hi] - sorted[lo]) * (rank - lo as f64))
}

/// Count, mean, min, max and p50/p90/p99 of a sample set.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Distribution {
    pub count: usize,
    pub mean: f64,
    pub min: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
}

impl Distribution {
    /// Summarises `samples` (any order; NaNs are dropped); `None` when there are none.
    pub fn of(samples: impl IntoIterator<Item = f64>) -> Option<Distribution> {
        let mut xs: Vec<f64> = samples.into_iter().filter(|x| !x.is_nan()).collect();
        if xs.is_empty() {
            return None;
        }
        xs.sort_by(f64::total_cmp);
        let pct = |p| percentile(&xs, p).expect("invariant: non-empty");
        Some(Distribution {
            count: xs.len(),
            mean: xs.iter().sum::<f64>() / xs.len() as f64,
            min: xs[0],
            p50: pct(50.0),
            p90: pct(90.0),
            p99: pct(99.0),
            max: xs[xs.len() - 1],
        })
    }
}

//! The performance profile of one worker (`rotor profile` writes it as JSON):
//!
//! - **TTFT(ISL)**: time to first token of a request alone on the worker, by uncached prompt
//!   length. Piecewise linear between measured points; below the first point, the first point's
//!   time (a floor: a step has a fixed cost); above the last, the last segment extended.
//! - **ITL(batch, context)**: time of one decode step with `batch` sequences at `context`
//!   tokens each. Linear in batch along each measured context, then linear across contexts
//!   (same extension rules); never extrapolated past `max_batch`.
//! - **Throughput** follows: prefill tokens/s = ISL / TTFT(ISL); decode tokens/s at an ITL
//!   target = b·1000 / ITL(b, context) for the largest batch b whose ITL meets the target.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::Error;

/// One prefill measurement: a prompt of `isl` uncached tokens alone on the worker.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PrefillPoint {
    pub isl: u32,
    pub ttft_ms: f64,
}

/// One decode measurement: a step of `batch` sequences of `context` tokens.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DecodePoint {
    pub batch: u32,
    pub context: u32,
    pub itl_ms: f64,
}

/// A worker's measured performance. See the module docs for the model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PerfProfile {
    /// What was profiled (`native`, `mocker fitted`, …), for the logs.
    pub engine: String,
    /// Largest decode batch the worker runs (its `max_num_seqs`).
    pub max_batch: u32,
    pub prefill: Vec<PrefillPoint>,
    pub decode: Vec<DecodePoint>,
}

/// The decode operating point that meets an ITL target.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct DecodeCapacity {
    /// Largest batch whose step time meets the target (1 when even batch 1 misses it).
    pub batch: u32,
    pub itl_ms: f64,
    /// Whether the target is met at all.
    pub meets_target: bool,
}

impl DecodeCapacity {
    /// Generated tokens per second at this point.
    pub fn tokens_per_s(&self) -> f64 {
        f64::from(self.batch) * 1000.0 / self.itl_ms
    }
}

impl PerfProfile {
    /// Sorts the points and checks the profile can answer every question.
    pub fn validated(mut self) -> Result<Self, Error> {
        let bad = |reason: String| Err(Error::InvalidProfile { reason });
        if self.prefill.is_empty() {
            return bad("no prefill points".into());
        }
        if self.decode.is_empty() {
            return bad("no decode points".into());
        }
        if self.max_batch == 0 {
            return bad("max_batch must be at least 1".into());
        }
        for p in &self.prefill {
            if p.isl == 0 || !(p.ttft_ms.is_finite() && p.ttft_ms > 0.0) {
                return bad(format!(
                    "prefill point {p:?}: isl and ttft_ms must be positive"
                ));
            }
        }
        for d in &self.decode {
            if d.batch == 0 || !(d.itl_ms.is_finite() && d.itl_ms > 0.0) {
                return bad(format!(
                    "decode point {d:?}: batch and itl_ms must be positive"
                ));
            }
        }
        self.prefill.sort_by_key(|p| p.isl);
        self.prefill.dedup_by_key(|p| p.isl);
        self.decode.sort_by_key(|d| (d.context, d.batch));
        self.decode.dedup_by_key(|d| (d.context, d.batch));
        Ok(self)
    }

    pub fn load(path: &Path) -> Result<Self, Error> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::ReadProfile {
            path: path.to_owned(),
            source,
        })?;
        let profile: Self = serde_json::from_str(&text).map_err(|source| Error::ParseProfile {
            path: path.to_owned(),
            source,
        })?;
        profile.validated()
    }

    /// TTFT in ms of a request of `isl` uncached tokens alone on the worker (0 for 0 tokens).
    pub fn ttft_ms(&self, isl: f64) -> f64 {
        if isl <= 0.0 {
            return 0.0;
        }
        let pts: Vec<(f64, f64)> = self
            .prefill
            .iter()
            .map(|p| (f64::from(p.isl), p.ttft_ms))
            .collect();
        interpolate(&pts, isl)
    }

    /// Prefill tokens per second at prompt length `isl`.
    pub fn prefill_tokens_per_s(&self, isl: f64) -> f64 {
        let isl = isl.max(1.0);
        isl * 1000.0 / self.ttft_ms(isl)
    }

    /// Decode step time in ms at `batch` sequences of `context` tokens.
    pub fn itl_ms(&self, batch: f64, context: f64) -> f64 {
        let mut per_context: Vec<(f64, f64)> = Vec::new();
        let mut i = 0;
        while i < self.decode.len() {
            let ctx = self.decode[i].context;
            let row: Vec<(f64, f64)> = self.decode[i..]
                .iter()
                .take_while(|d| d.context == ctx)
                .map(|d| (f64::from(d.batch), d.itl_ms))
                .collect();
            i += row.len();
            per_context.push((f64::from(ctx), interpolate(&row, batch)));
        }
        interpolate(&per_context, context)
    }

    /// The largest batch (≤ `max_batch`) whose decode step at `context` meets `itl_target_ms`.
    pub fn decode_capacity(&self, itl_target_ms: f64, context: f64) -> DecodeCapacity {
        let at = |b: u32| self.itl_ms(f64::from(b), context);
        if at(1) > itl_target_ms {
            return DecodeCapacity {
                batch: 1,
                itl_ms: at(1),
                meets_target: false,
            };
        }
        // ITL does not fall with the batch, so the feasible batches are a prefix: bisect.
        let (mut lo, mut hi) = (1u32, self.max_batch);
        while lo < hi {
            let mid = lo + (hi - lo).div_ceil(2);
            if at(mid) <= itl_target_ms {
                lo = mid;
            } else {
                hi = mid - 1;
            }
        }
        DecodeCapacity {
            batch: lo,
            itl_ms: at(lo),
            meets_target: true,
        }
    }
}

/// Piecewise-linear `y(x)` through sorted `pts`: the first point's y below the first x, the
/// last segment extended (never below the last y) above the last x.
fn interpolate(pts: &[(f64, f64)], x: f64) -> f64 {
    match pts {
        [] => 0.0,
        [(_, y)] => *y,
        _ => {
            let first = pts[0];
            if x <= first.0 {
                return first.1;
            }
            let seg = pts
                .windows(2)
                .find(|w| x <= w[1].0)
                .unwrap_or(&pts[pts.len() - 2..]);
            let ((x0, y0), (x1, y1)) = (seg[0], seg[1]);
            let y = y0 + (y1 - y0) * (x - x0) / (x1 - x0);
            if x > x1 {
                y.max(y1)
            } else {
                y
            }
        }
    }
}

//! Load predictors: each sees one value per interval and forecasts the next interval's.
//!
//! - **Constant**: the last value.
//! - **Moving average** over the last `window` values.
//! - **Holt** (double exponential smoothing): level `l ← α·x + (1−α)(l + b)`, trend
//!   `b ← β(l_new − l) + (1−β)·b`, forecast `l + b`; the first value sets `l = x, b = 0`.
//! - **Kalman** (local-level model): process noise `q`, measurement noise `r`; predict
//!   `P ← P + q`, gain `K = P/(P + r)`, update `x̂ ← x̂ + K(z − x̂)`, `P ← (1 − K)P`; the first
//!   value sets `x̂ = z, P = r`. Forecast `x̂`.
//!
//! Forecasts are never negative nor NaN: before any value they are 0, and a non-finite input is
//! ignored (a series with no requests gives no prompt length: the caller skips it).

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use crate::error::Error;

/// Which predictor, with its parameters.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum PredictorKind {
    Constant,
    MovingAverage { window: usize },
    Holt { alpha: f64, beta: f64 },
    Kalman { q: f64, r: f64 },
}

impl PredictorKind {
    /// `constant`, `moving-average`, `holt` or `kalman` with default parameters.
    pub fn parse(name: &str) -> Result<Self, Error> {
        Ok(match name {
            "constant" => Self::Constant,
            "moving-average" => Self::MovingAverage { window: 5 },
            "holt" => Self::Holt {
                alpha: 0.5,
                beta: 0.3,
            },
            "kalman" => Self::Kalman { q: 1.0, r: 1.0 },
            other => {
                return Err(Error::UnknownPredictor {
                    name: other.to_owned(),
                })
            }
        })
    }
}

/// A predictor's state. Clone it to keep a decision reproducible from its inputs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Predictor {
    kind: PredictorKind,
    history: VecDeque<f64>,
    level: f64,
    trend: f64,
    variance: f64,
    seen: u64,
}

impl Predictor {
    pub fn new(kind: PredictorKind) -> Self {
        Self {
            kind,
            history: VecDeque::new(),
            level: 0.0,
            trend: 0.0,
            variance: 0.0,
            seen: 0,
        }
    }

    pub fn kind(&self) -> PredictorKind {
        self.kind
    }

    /// Values observed so far.
    pub fn seen(&self) -> u64 {
        self.seen
    }

    pub fn observe(&mut self, x: f64) {
        if !x.is_finite() {
            return;
        }
        let first = self.seen == 0;
        self.seen += 1;
        match self.kind {
            PredictorKind::Constant => self.level = x,
            PredictorKind::MovingAverage { window } => {
                self.history.push_back(x);
                while self.history.len() > window.max(1) {
                    self.history.pop_front();
                }
                self.level = self.history.iter().sum::<f64>() / self.history.len() as f64;
            }
            PredictorKind::Holt { alpha, beta } => {
                if first {
                    self.level = x;
                    self.trend = 0.0;
                } else {
                    let prev = self.level;
                    self.level = alpha * x + (1.0 - alpha) * (prev + self.trend);
                    self.trend = beta * (self.level - prev) + (1.0 - beta) * self.trend;
                }
            }
            PredictorKind::Kalman { q, r } => {
                if first {
                    self.level = x;
                    self.variance = r;
                } else {
                    let p = self.variance + q;
                    let gain = p / (p + r);
                    self.level += gain * (x - self.level);
                    self.variance = (1.0 - gain) * p;
                }
            }
        }
    }

    /// The forecast for the next interval (≥ 0, finite).
    pub fn predict(&self) -> f64 {
        let y = match self.kind {
            PredictorKind::Holt { .. } => self.level + self.trend,
            _ => self.level,
        };
        if y.is_finite() {
            y.max(0.0)
        } else {
            0.0
        }
    }
}

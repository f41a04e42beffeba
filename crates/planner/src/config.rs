//! Planner settings: the SLA, the bounds per role, the budget and the damping.

use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::predictor::PredictorKind;
use crate::role::{Role, RoleMap};

/// Latency targets.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Sla {
    pub ttft_ms: f64,
    pub itl_ms: f64,
}

/// Replica bounds of one role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleBounds {
    pub min: usize,
    pub max: usize,
}

/// Aggregated workers only, or separate prefill and decode pools.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Topology {
    Aggregated,
    Disaggregated,
}

impl Topology {
    pub fn roles(self) -> &'static [Role] {
        match self {
            Topology::Aggregated => &[Role::Aggregated],
            Topology::Disaggregated => &[Role::Prefill, Role::Decode],
        }
    }
}

/// Everything the plan function needs besides the observation and the profile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlannerConfig {
    pub sla: Sla,
    pub topology: Topology,
    pub bounds: RoleMap<RoleBounds>,
    /// Most workers of all roles together.
    pub budget_workers: usize,
    pub predictor: PredictorKind,
    /// Busy fraction a worker is planned at (also capped by the TTFT queueing headroom).
    pub scale_up_utilization: f64,
    /// A worker is removed only if the survivors' busy fraction stays at or below this
    /// (below `scale_up_utilization`: the band between them is the hysteresis).
    pub scale_down_utilization: f64,
    /// Consecutive intervals a smaller target must hold before a worker is removed.
    pub scale_down_intervals: u32,
    /// How long a new worker takes to serve; a smaller target must also hold this long before
    /// a worker is removed (one needed again sooner would cost more than it saves).
    #[serde(default)]
    pub worker_startup_s: f64,
    /// Correct the profile with observed latency.
    pub correction: bool,
    /// Corrections stay within [1/max, max].
    pub max_correction: f64,
    /// Latency samples an interval needs before it moves a correction.
    pub min_latency_samples: u64,
}

impl PlannerConfig {
    /// Defaults around an SLA: aggregated, 1..=`max_workers` workers, Holt prediction.
    pub fn new(sla: Sla, min_workers: usize, max_workers: usize) -> Self {
        let b = RoleBounds {
            min: min_workers,
            max: max_workers,
        };
        Self {
            sla,
            topology: Topology::Aggregated,
            bounds: RoleMap {
                aggregated: b,
                prefill: b,
                decode: b,
            },
            budget_workers: max_workers,
            predictor: PredictorKind::Holt {
                alpha: 0.5,
                beta: 0.3,
            },
            scale_up_utilization: 0.8,
            scale_down_utilization: 0.6,
            scale_down_intervals: 3,
            worker_startup_s: 0.0,
            correction: true,
            max_correction: 3.0,
            min_latency_samples: 10,
        }
    }

    pub fn validate(self) -> Result<Self, Error> {
        let invalid = |field, value: String, reason| {
            Err(Error::InvalidConfig {
                field,
                value,
                reason,
            })
        };
        for (field, v) in [
            ("sla.ttft_ms", self.sla.ttft_ms),
            ("sla.itl_ms", self.sla.itl_ms),
        ] {
            if !(v.is_finite() && v > 0.0) {
                return invalid(field, v.to_string(), "must be a positive number of ms");
            }
        }
        let (up, down) = (self.scale_up_utilization, self.scale_down_utilization);
        if !(up > 0.0 && up < 1.0) {
            return invalid("scale_up_utilization", up.to_string(), "must be in (0, 1)");
        }
        if !(down > 0.0 && down <= up) {
            return invalid(
                "scale_down_utilization",
                down.to_string(),
                "must be in (0, scale_up_utilization]",
            );
        }
        if !(self.max_correction.is_finite() && self.max_correction >= 1.0) {
            return invalid(
                "max_correction",
                self.max_correction.to_string(),
                "must be at least 1",
            );
        }
        let mut min_total = 0;
        for &role in self.topology.roles() {
            let b = self.bounds.get(role);
            if b.min > b.max || b.max == 0 {
                return invalid(
                    "bounds",
                    format!("{role}: {}..={}", b.min, b.max),
                    "need min <= max and max >= 1",
                );
            }
            min_total += b.min;
        }
        if self.budget_workers < min_total.max(1) {
            return invalid(
                "budget_workers",
                self.budget_workers.to_string(),
                "must cover every role's minimum (and be at least 1)",
            );
        }
        Ok(self)
    }
}

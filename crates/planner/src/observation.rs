//! What the planner sees at the end of an interval, and what it forecasts from it.

use serde::{Deserialize, Serialize};

use crate::role::RoleMap;

/// Latency seen over an interval (finished first tokens for TTFT, token gaps for ITL).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencyObservation {
    pub count: u64,
    pub mean_ms: f64,
}

/// Replicas of one role as the source of truth (discovery, the orchestrator) says.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Replicas {
    /// What is asked for (the planner's last target, or a count changed by hand).
    pub desired: usize,
    /// Registered and serving.
    pub ready: usize,
}

/// One interval of traffic, from the frontends' counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Observation {
    pub interval_s: f64,
    /// Requests that arrived.
    pub requests: u64,
    /// Their prompt tokens, of which `cached_tokens` were prefix-cache hits.
    pub input_tokens: u64,
    pub cached_tokens: u64,
    /// Tokens generated.
    pub output_tokens: u64,
    pub ttft: LatencyObservation,
    pub itl: LatencyObservation,
    /// Requests in flight at the end of the interval (queued or running): the backlog.
    #[serde(default)]
    pub inflight_requests: u64,
    pub replicas: RoleMap<Replicas>,
}

impl Observation {
    /// Requests per second (0 for an empty interval; never NaN).
    pub fn rate_per_s(&self) -> f64 {
        if self.interval_s > 0.0 {
            self.requests as f64 / self.interval_s
        } else {
            0.0
        }
    }

    /// Mean prompt length, if any request arrived.
    pub fn mean_isl(&self) -> Option<f64> {
        (self.requests > 0).then(|| self.input_tokens as f64 / self.requests as f64)
    }

    /// Mean output length, if any request arrived.
    pub fn mean_osl(&self) -> Option<f64> {
        (self.requests > 0).then(|| self.output_tokens as f64 / self.requests as f64)
    }

    /// Prefix-cache hit fraction of prompt tokens, if any arrived.
    pub fn hit_rate(&self) -> Option<f64> {
        (self.input_tokens > 0).then(|| self.cached_tokens as f64 / self.input_tokens as f64)
    }
}

/// The forecast for the next interval.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Load {
    pub rate_per_s: f64,
    pub isl: f64,
    pub osl: f64,
    pub hit_rate: f64,
}

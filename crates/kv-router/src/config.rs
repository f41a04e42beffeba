//! `KvRouterConfig`: the validated settings of a [`crate::KvRouter`]. The `rotor` binary maps its
//! flags (`--kv-overlap-weight`, `--router-temperature`, …) onto it.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::selector::TieBreak;

/// Default `kv_overlap_weight`. With [`DEFAULT_QUEUE_WEIGHT`] it beat Dynamo's weights (1, and a
/// queue counted in full) in TTFT and hit rate on the Mooncake trace at 3 pool sizes and 2 loads,
/// and in hit rate on shared system prompts (docs/BENCHMARKS.md). Dynamo's weights lose to
/// round-robin on long prompts at light load.
pub const DEFAULT_KV_OVERLAP_WEIGHT: f64 = 8.0;
/// Default `queue_weight`: a token already queued for prefill counts a quarter of one the
/// request must compute.
pub const DEFAULT_QUEUE_WEIGHT: f64 = 0.25;

/// Where the router learns which worker caches what.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum IndexMode {
    /// From the workers' KV events (exact, needs the event plane).
    Events,
    /// Without events: a prefix routed to a worker is assumed cached there for `ttl`.
    Approximate { ttl: Duration },
}

/// Router settings. Build one, then `validate()` it (`KvRouter::new` does).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct KvRouterConfig {
    /// Tokens per KV block; must equal the workers' block size.
    pub block_size_tokens: usize,
    /// Weight of prefill work against decode load (`--kv-overlap-weight`), ≥ 0.
    pub kv_overlap_weight: f64,
    /// Weight of a token waiting for prefill on a worker against one the request must compute
    /// there (`--kv-queue-weight`), ≥ 0; see [`crate::CostFunction`].
    pub queue_weight: f64,
    /// Softmax sampling temperature (`--router-temperature`); 0 is argmin.
    pub temperature: f64,
    /// Choice among equal costs when `temperature` is 0.
    pub tie_break: TieBreak,
    pub index_mode: IndexMode,
    /// Seed of the generator behind sampling and random tie-breaks.
    pub seed: u64,
}

impl Default for KvRouterConfig {
    fn default() -> Self {
        Self {
            block_size_tokens: 16,
            kv_overlap_weight: DEFAULT_KV_OVERLAP_WEIGHT,
            queue_weight: DEFAULT_QUEUE_WEIGHT,
            temperature: 0.0,
            tie_break: TieBreak::LeastLoaded,
            index_mode: IndexMode::Events,
            seed: 0,
        }
    }
}

impl KvRouterConfig {
    /// Checks every value's range.
    pub fn validate(self) -> Result<Self, Error> {
        let invalid = |field, value: String, reason| Error::InvalidConfig {
            field,
            value,
            reason,
        };
        if self.block_size_tokens == 0 {
            return Err(invalid("block_size_tokens", "0".into(), "must be positive"));
        }
        if !(self.kv_overlap_weight.is_finite() && self.kv_overlap_weight >= 0.0) {
            return Err(invalid(
                "kv_overlap_weight",
                self.kv_overlap_weight.to_string(),
                "must be finite and >= 0",
            ));
        }
        if !(self.queue_weight.is_finite() && self.queue_weight >= 0.0) {
            return Err(invalid(
                "queue_weight",
                self.queue_weight.to_string(),
                "must be finite and >= 0",
            ));
        }
        if !(self.temperature.is_finite() && self.temperature >= 0.0) {
            return Err(invalid(
                "temperature",
                self.temperature.to_string(),
                "must be finite and >= 0",
            ));
        }
        if let IndexMode::Approximate { ttl } = self.index_mode {
            if ttl.is_zero() {
                return Err(invalid("ttl", "0s".into(), "must be positive"));
            }
        }
        Ok(self)
    }
}

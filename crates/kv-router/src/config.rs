//! `KvRouterConfig`: the validated settings of a [`crate::KvRouter`]. The `rotor` binary maps its
//! flags (`--kv-overlap-weight`, `--router-temperature`, …) onto it.

use std::time::Duration;

use rotor_protocol::CacheTier;
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

/// How much of a block's prefill a worker saves by holding the block in each tier
/// (`--kv-tier-weights`), each in `[0, 1]`: 1 = the block is free, 0 = it is recomputed.
///
/// A block in the engine's pool is used in place (1). One in G2 or G3 is loaded, verified and
/// copied into the pool first, and takes a new pool block. The `kv_tiers_onboard` example
/// (figures in docs/ARCHITECTURE.md, KV offload tiers) measured onboarding a 2,000-token
/// history at about 1% of recomputing it on the CPU engine, from G2 and from G3 with a warm
/// page cache (0.08 s and 0.07 s against 8.4 s). The defaults stay well below that 0.99: an
/// accelerator prefills ~100× faster than that CPU while a host-memory or disk read does not
/// get faster, G3 is not always in the page cache, and the remote tier is not measured. They
/// keep a device copy ahead of any lower tier (it also costs no pool block), G2 ahead of G3,
/// and any tier far ahead of recomputing.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TierWeights {
    pub device: f64,
    pub host: f64,
    pub disk: f64,
    pub remote: f64,
}

/// Default [`TierWeights`]: device 1, host 0.8, disk 0.6, remote 0.4.
pub const DEFAULT_TIER_WEIGHTS: TierWeights = TierWeights {
    device: 1.0,
    host: 0.8,
    disk: 0.6,
    remote: 0.4,
};

impl Default for TierWeights {
    fn default() -> Self {
        DEFAULT_TIER_WEIGHTS
    }
}

impl TierWeights {
    pub fn weight(&self, tier: CacheTier) -> f64 {
        match tier {
            CacheTier::Device => self.device,
            CacheTier::Host => self.host,
            CacheTier::Disk => self.disk,
            CacheTier::Remote => self.remote,
        }
    }

    fn weight_mut(&mut self, tier: CacheTier) -> &mut f64 {
        match tier {
            CacheTier::Device => &mut self.device,
            CacheTier::Host => &mut self.host,
            CacheTier::Disk => &mut self.disk,
            CacheTier::Remote => &mut self.remote,
        }
    }

    /// Parses `host=0.8,disk=0.5,remote=0.3` (any subset of `device`, `host`, `disk`,
    /// `remote`; the others keep their defaults) and checks every weight is in `[0, 1]`.
    pub fn parse(input: &str) -> Result<Self, Error> {
        let invalid = |reason: String| Error::InvalidTierWeights {
            input: input.to_owned(),
            reason,
        };
        let mut weights = DEFAULT_TIER_WEIGHTS;
        for part in input.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, value) = part
                .split_once('=')
                .ok_or_else(|| invalid(format!("{part:?} is not TIER=WEIGHT")))?;
            let tier: CacheTier = name.trim().parse().map_err(invalid)?;
            let value: f64 = value
                .trim()
                .parse()
                .map_err(|_| invalid(format!("{tier} weight {value:?} is not a number")))?;
            *weights.weight_mut(tier) = value;
        }
        weights.check().map_err(invalid)?;
        Ok(weights)
    }

    fn check(&self) -> Result<(), String> {
        for tier in CacheTier::ALL {
            let w = self.weight(tier);
            if !(w.is_finite() && (0.0..=1.0).contains(&w)) {
                return Err(format!("{tier} weight {w} is not in [0, 1]"));
            }
        }
        Ok(())
    }
}

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
    /// What a cached block is worth in each tier (`--kv-tier-weights`).
    #[serde(default)]
    pub tier_weights: TierWeights,
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
            tier_weights: DEFAULT_TIER_WEIGHTS,
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
        self.tier_weights
            .check()
            .map_err(|reason| Error::InvalidTierWeights {
                input: format!("{:?}", self.tier_weights),
                reason,
            })?;
        if let IndexMode::Approximate { ttl } = self.index_mode {
            if ttl.is_zero() {
                return Err(invalid("ttl", "0s".into(), "must be positive"));
            }
        }
        Ok(self)
    }
}

//! [`RouterMode`] and [`RoutingConfig`]: how a model's requests are spread over its workers and
//! how often a failed request may move to another worker.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use crate::error::FrontendError;

/// How the next worker is chosen (`--router-mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RouterMode {
    /// Each worker in turn, in worker-id order.
    #[default]
    RoundRobin,
    /// Uniformly at random.
    Random,
    /// The worker with the fewest requests this frontend has in flight on it; ties go to the
    /// lowest reported load (waiting + running requests, then KV blocks in use), then in turn.
    LeastLoaded,
    /// KV-cache aware: prefix overlap against load, by `rotor_kv_router::KvRouter`.
    Kv,
}

impl RouterMode {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::RoundRobin => "round-robin",
            Self::Random => "random",
            Self::LeastLoaded => "least-loaded",
            Self::Kv => "kv",
        }
    }
}

impl FromStr for RouterMode {
    type Err = FrontendError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "round-robin" => Ok(Self::RoundRobin),
            "random" => Ok(Self::Random),
            "least-loaded" => Ok(Self::LeastLoaded),
            "kv" => Ok(Self::Kv),
            other => Err(FrontendError::InvalidRoutingConfig {
                field: "router_mode",
                value: other.to_string(),
                reason: "expected round-robin, random, least-loaded or kv",
            }),
        }
    }
}

impl fmt::Display for RouterMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How KV blocks travel from a prefill worker to a decode worker (`--kv-transport`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KvTransportPolicy {
    /// Shared memory when both workers' cards have the same `host_id`, TCP otherwise.
    #[default]
    Auto,
    /// Always shared memory (a transfer between hosts then fails and falls back to local
    /// prefill).
    Shm,
    /// Always TCP.
    Tcp,
}

impl KvTransportPolicy {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Shm => "shm",
            Self::Tcp => "tcp",
        }
    }

    /// The transport between a prefill and a decode worker with these `host_id`s (an unknown
    /// host is never taken as shared).
    pub fn resolve(
        self,
        prefill_host: Option<&str>,
        decode_host: Option<&str>,
    ) -> rotor_protocol::KvTransport {
        use rotor_protocol::KvTransport;
        match self {
            Self::Shm => KvTransport::Shm,
            Self::Tcp => KvTransport::Tcp,
            Self::Auto => match (prefill_host, decode_host) {
                (Some(a), Some(b)) if a == b => KvTransport::Shm,
                _ => KvTransport::Tcp,
            },
        }
    }
}

impl FromStr for KvTransportPolicy {
    type Err = FrontendError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "auto" => Ok(Self::Auto),
            "shm" => Ok(Self::Shm),
            "tcp" => Ok(Self::Tcp),
            other => Err(FrontendError::InvalidRoutingConfig {
                field: "kv_transport",
                value: other.to_string(),
                reason: "expected auto, shm or tcp",
            }),
        }
    }
}

impl fmt::Display for KvTransportPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Block size the KV router hashes prompts at when a model card does not say.
pub const FALLBACK_KV_BLOCK_SIZE: u32 = 16;

/// Routing settings shared by every model of a frontend.
#[derive(Debug, Clone, PartialEq)]
pub struct RoutingConfig {
    pub mode: RouterMode,
    /// Times one request may move to another worker after its worker died (`--migration-limit`);
    /// 0 disables migration.
    pub migration_limit: u32,
    /// Weight of prefill work against decode load in kv mode (`--kv-overlap-weight`), ≥ 0.
    pub kv_overlap_weight: f64,
    /// Weight of a token queued for prefill on a worker against one the request must compute
    /// there, in kv mode (`--kv-queue-weight`), ≥ 0.
    pub kv_queue_weight: f64,
    /// Softmax temperature of the kv choice (`--router-temperature`), ≥ 0; 0 is argmin.
    pub router_temperature: f64,
    /// What a cached block is worth per tier in kv mode (`--kv-tier-weights`).
    pub kv_tier_weights: rotor_kv_router::TierWeights,
    /// Whether workers' KV events will be fed in (a shared event plane). Without them the kv
    /// mode assumes a routed prefix stays cached for `approx_ttl`.
    pub kv_events: bool,
    /// How long a routed prefix counts as cached in the approximate kv mode.
    pub approx_ttl: Duration,
    /// How long a worker whose request failed with `Disconnected`/`EngineStopped` is skipped.
    /// Discovery normally removes a dead worker within its lease TTL; this keeps new requests
    /// off it until then.
    pub quarantine: Duration,
    /// kv mode: share routing decisions with the other router replicas (frontends, `rotor
    /// router` instances) of the same component over the event plane, so each counts the load
    /// the others put on a worker (`--router-replica-sync`). Needs a shared event plane.
    pub replica_sync: bool,
    /// How long another replica's request counts as load when its end is never heard of (the
    /// replica died or a message was lost).
    pub replica_request_ttl: Duration,
    /// Seed of the random choices (random mode, kv sampling); `None` seeds from the OS.
    pub seed: Option<u64>,
    /// Disaggregated serving (prefill workers discovered): how and when to prefill remotely.
    pub disagg: DisaggConfig,
}

/// When a request is prefilled on a prefill worker and its KV moved to the decode worker.
#[derive(Debug, Clone, PartialEq)]
pub struct DisaggConfig {
    /// Prefill locally on the decode worker when fewer prompt tokens than this are uncached
    /// there (`--disagg-min-prefill-tokens`). 0 sends every prompt with a full uncached block.
    pub min_prefill_tokens: usize,
    /// Prefill locally when the chosen prefill worker already runs this many prefills of this
    /// frontend (`--disagg-max-prefill-queue`): waiting there would be slower than local.
    pub max_prefill_queue: u64,
    /// Refuse requests (503) while a model has no prefill worker instead of serving them
    /// aggregated (`--enforce-disagg`).
    pub enforce: bool,
    /// Longest a remote prefill plus its transfer may take before the request falls back to
    /// local prefill (`--disagg-timeout-secs`).
    pub timeout: Duration,
    /// Largest batch of blocks sent to the decode worker in one import call.
    pub import_batch_bytes: usize,
    /// How the blocks travel between workers on the request plane (`--kv-transport`).
    pub transport: KvTransportPolicy,
}

impl Default for DisaggConfig {
    fn default() -> Self {
        Self {
            // Dynamo's conditional disaggregation keeps prompts under ~1,000 uncached tokens
            // local; on a CPU worker a 512-token prefill is ~1 s of stalled decode steps.
            min_prefill_tokens: 512,
            max_prefill_queue: 4,
            enforce: false,
            timeout: Duration::from_secs(120),
            import_batch_bytes: 8 << 20,
            transport: KvTransportPolicy::Auto,
        }
    }
}

impl Default for RoutingConfig {
    fn default() -> Self {
        Self {
            mode: RouterMode::RoundRobin,
            migration_limit: 3,
            kv_overlap_weight: rotor_kv_router::DEFAULT_KV_OVERLAP_WEIGHT,
            kv_queue_weight: rotor_kv_router::DEFAULT_QUEUE_WEIGHT,
            router_temperature: 0.0,
            kv_tier_weights: rotor_kv_router::DEFAULT_TIER_WEIGHTS,
            kv_events: true,
            approx_ttl: Duration::from_secs(120),
            quarantine: Duration::from_secs(10),
            replica_sync: false,
            replica_request_ttl: Duration::from_secs(600),
            seed: None,
            disagg: DisaggConfig::default(),
        }
    }
}

impl RoutingConfig {
    /// Checks every value's range.
    pub fn validate(self) -> Result<Self, FrontendError> {
        let invalid = |field, value: f64, reason| FrontendError::InvalidRoutingConfig {
            field,
            value: value.to_string(),
            reason,
        };
        if !(self.kv_overlap_weight.is_finite() && self.kv_overlap_weight >= 0.0) {
            return Err(invalid(
                "kv_overlap_weight",
                self.kv_overlap_weight,
                "must be finite and >= 0",
            ));
        }
        if !(self.kv_queue_weight.is_finite() && self.kv_queue_weight >= 0.0) {
            return Err(invalid(
                "kv_queue_weight",
                self.kv_queue_weight,
                "must be finite and >= 0",
            ));
        }
        if !(self.router_temperature.is_finite() && self.router_temperature >= 0.0) {
            return Err(invalid(
                "router_temperature",
                self.router_temperature,
                "must be finite and >= 0",
            ));
        }
        if self.approx_ttl.is_zero() {
            return Err(invalid("approx_ttl", 0.0, "must be positive"));
        }
        if self.replica_request_ttl.is_zero() {
            return Err(invalid("replica_request_ttl", 0.0, "must be positive"));
        }
        if self.disagg.timeout.is_zero() {
            return Err(invalid("disagg_timeout", 0.0, "must be positive"));
        }
        if self.disagg.import_batch_bytes == 0 {
            return Err(invalid(
                "disagg_import_batch_bytes",
                0.0,
                "must be positive",
            ));
        }
        if self.replica_sync && !self.kv_events {
            return Err(FrontendError::InvalidRoutingConfig {
                field: "replica_sync",
                value: "true".to_string(),
                reason: "router replicas share decisions over the event plane: give one (nats://)",
            });
        }
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kv_transports_parse_and_resolve_by_host() {
        use rotor_protocol::KvTransport;
        for policy in [
            KvTransportPolicy::Auto,
            KvTransportPolicy::Shm,
            KvTransportPolicy::Tcp,
        ] {
            assert_eq!(
                policy.to_string().parse::<KvTransportPolicy>().unwrap(),
                policy
            );
        }
        assert!(matches!(
            "rdma".parse::<KvTransportPolicy>(),
            Err(FrontendError::InvalidRoutingConfig {
                field: "kv_transport",
                ..
            })
        ));
        let auto = KvTransportPolicy::Auto;
        assert_eq!(auto.resolve(Some("a"), Some("a")), KvTransport::Shm);
        assert_eq!(auto.resolve(Some("a"), Some("b")), KvTransport::Tcp);
        assert_eq!(auto.resolve(None, None), KvTransport::Tcp);
        assert_eq!(
            KvTransportPolicy::Tcp.resolve(Some("a"), Some("a")),
            KvTransport::Tcp
        );
        assert_eq!(
            KvTransportPolicy::Shm.resolve(Some("a"), Some("b")),
            KvTransport::Shm
        );
    }

    #[test]
    fn modes_round_trip_through_their_names() {
        for mode in [
            RouterMode::RoundRobin,
            RouterMode::Random,
            RouterMode::LeastLoaded,
            RouterMode::Kv,
        ] {
            assert_eq!(mode.to_string().parse::<RouterMode>().unwrap(), mode);
        }
        assert!(matches!(
            "fastest".parse::<RouterMode>(),
            Err(FrontendError::InvalidRoutingConfig {
                field: "router_mode",
                ..
            })
        ));
    }

    #[test]
    fn validate_rejects_negative_weights_and_temperatures() {
        assert!(RoutingConfig::default().validate().is_ok());
        let weight = RoutingConfig {
            kv_overlap_weight: -1.0,
            ..RoutingConfig::default()
        };
        assert!(matches!(
            weight.validate(),
            Err(FrontendError::InvalidRoutingConfig {
                field: "kv_overlap_weight",
                ..
            })
        ));
        let temperature = RoutingConfig {
            router_temperature: f64::NAN,
            ..RoutingConfig::default()
        };
        assert!(temperature.validate().is_err());
    }
}

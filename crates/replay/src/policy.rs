//! Who sets the replica count during a replay: nobody (static), Rotor's planner, or Dynamo's
//! published SLA-planner rule as a baseline.
//!
//! The Dynamo rule (its SLA planner, adapted to one aggregated pool): with the forecast rate λ,
//! ISL and OSL, prefill correction `p = observed TTFT / profile TTFT(ISL)` and decode correction
//! `q = observed ITL / profile ITL at the observed batch`,
//! `replicas = ceil(λ·ISL·min(1, p) / prefill_tokens_per_s(ISL) + λ·OSL / decode_tokens_per_s(ITL_target / q))`,
//! clamped to the bounds, every interval, with no utilization headroom and no hysteresis.

use rotor_planner::{
    Connector, Decision, Error as PlannerError, Observation, PerfProfile, PlannerConfig, Predictor,
    Replicas, Role,
};
use serde::Serialize;

/// The replica policy of a replay.
#[derive(Debug, Clone)]
pub enum Policy {
    Static {
        workers: usize,
    },
    Planner {
        config: PlannerConfig,
        profile: PerfProfile,
    },
    DynamoRule {
        config: PlannerConfig,
        profile: PerfProfile,
    },
}

impl Policy {
    pub fn name(&self) -> String {
        match self {
            Policy::Static { workers } => format!("static-{workers}"),
            Policy::Planner { .. } => "planner".into(),
            Policy::DynamoRule { .. } => "dynamo-rule".into(),
        }
    }
}

/// One interval's decision, as logged.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LoggedDecision {
    pub t_s: f64,
    pub target: usize,
    /// The planner's full decision (inputs included); `None` for the Dynamo rule.
    pub decision: Option<Decision>,
}

/// The replay's connector: the simulation writes the replicas it has before each plan and
/// carries out the target afterwards.
#[derive(Debug, Default)]
pub(crate) struct SimConnector {
    pub replicas: Replicas,
}

impl Connector for SimConnector {
    fn name(&self) -> &'static str {
        "replay"
    }

    fn replicas(&mut self, _role: Role) -> Result<Replicas, PlannerError> {
        Ok(self.replicas)
    }

    fn set_target(&mut self, _role: Role, target: usize) -> Result<(), PlannerError> {
        self.replicas.desired = target;
        Ok(())
    }
}

/// The state of the Dynamo-rule baseline.
#[derive(Debug, Clone)]
pub(crate) struct DynamoRule {
    config: PlannerConfig,
    profile: PerfProfile,
    rate: Predictor,
    isl: Predictor,
    osl: Predictor,
    prefill_correction: f64,
    decode_correction: f64,
}

impl DynamoRule {
    pub fn new(config: PlannerConfig, profile: PerfProfile) -> Self {
        let p = || Predictor::new(config.predictor);
        Self {
            rate: p(),
            isl: p(),
            osl: p(),
            config,
            profile,
            prefill_correction: 1.0,
            decode_correction: 1.0,
        }
    }

    pub fn target(&mut self, obs: &Observation, current: usize) -> usize {
        self.rate.observe(obs.rate_per_s());
        if let (Some(isl), Some(osl)) = (obs.mean_isl(), obs.mean_osl()) {
            self.isl.observe(isl);
            self.osl.observe(osl);
            if obs.ttft.count > 0 {
                let expected = self.profile.ttft_ms(isl);
                self.prefill_correction = obs.ttft.mean_ms / expected;
            }
            if obs.itl.count > 0 && current > 0 {
                let lambda_w = obs.rate_per_s() / current as f64;
                let batch = (lambda_w * osl * obs.itl.mean_ms / 1000.0).max(1.0);
                let expected = self.profile.itl_ms(batch, isl + osl / 2.0);
                self.decode_correction = obs.itl.mean_ms / expected;
            }
        }
        let (rate, isl, osl) = (self.rate.predict(), self.isl.predict(), self.osl.predict());
        let bounds = self.config.bounds.aggregated;
        if rate <= 0.0 {
            return bounds.min;
        }
        let prefill =
            rate * isl * self.prefill_correction.min(1.0) / self.profile.prefill_tokens_per_s(isl);
        let itl_target = self.config.sla.itl_ms / self.decode_correction.max(1e-3);
        let cap = self.profile.decode_capacity(itl_target, isl + osl / 2.0);
        let decode = rate * osl / cap.tokens_per_s();
        let wanted = (prefill + decode).ceil();
        let wanted = if wanted.is_finite() {
            wanted as usize
        } else {
            bounds.max
        };
        wanted
            .clamp(bounds.min, bounds.max)
            .min(self.config.budget_workers)
    }
}

//! `Planner`: one interval at a time, observe (traffic from the caller, replicas from the
//! connector) → `plan` → actuate (only roles whose target changed) → record.

use crate::config::PlannerConfig;
use crate::connector::Connector;
use crate::error::Error;
use crate::metrics::PlannerMetrics;
use crate::observation::Observation;
use crate::plan::{plan, Decision, PlannerState};
use crate::profile::PerfProfile;

/// The planner loop's state, driven by whoever owns the clock (a live loop or a replay).
#[derive(Debug)]
pub struct Planner<C: Connector> {
    cfg: PlannerConfig,
    profile: PerfProfile,
    state: PlannerState,
    connector: C,
    metrics: PlannerMetrics,
}

impl<C: Connector> Planner<C> {
    pub fn new(cfg: PlannerConfig, profile: PerfProfile, connector: C) -> Result<Self, Error> {
        let cfg = cfg.validate()?;
        let profile = profile.validated()?;
        let state = PlannerState::new(&cfg);
        let metrics = PlannerMetrics {
            connector: connector.name(),
            ..PlannerMetrics::default()
        };
        Ok(Self {
            cfg,
            profile,
            state,
            connector,
            metrics,
        })
    }

    /// Plans one interval from `traffic` (its `replicas` are filled in from the connector) and
    /// asks the connector for every changed target. A connector error is counted and logged;
    /// the decision stands and the next interval plans again.
    pub fn step(&mut self, mut traffic: Observation) -> Decision {
        for &role in self.cfg.topology.roles() {
            let read = self.connector.replicas(role);
            self.metrics.connector_reads.count(&read);
            match read {
                Ok(r) => *traffic.replicas.get_mut(role) = r,
                Err(e) => {
                    self.metrics.connector_errors += 1;
                    tracing::warn!(error = %e, %role, "cannot read replicas; assuming last target");
                    let last = self.state.last_target.get(role).unwrap_or(0);
                    traffic.replicas.get_mut(role).desired = last;
                }
            }
        }
        let (decision, next) = plan(&self.cfg, &self.profile, &self.state, &traffic);
        self.state = next;
        for r in &decision.roles {
            if r.target != r.current {
                let set = self.connector.set_target(r.role, r.target);
                self.metrics.connector_sets.count(&set);
                if let Err(e) = set {
                    self.metrics.connector_errors += 1;
                    tracing::warn!(error = %e, role = %r.role, target = r.target, "connector refused the target");
                }
            }
        }
        for w in &decision.warnings {
            tracing::warn!(warning = ?w, interval = decision.interval, "planner");
        }
        tracing::info!(
            decision = %serde_json::to_string(&decision).unwrap_or_default(),
            "planner decision"
        );
        self.metrics.record(&decision);
        decision
    }

    pub fn metrics(&self) -> &PlannerMetrics {
        &self.metrics
    }

    pub fn connector(&self) -> &C {
        &self.connector
    }

    pub fn connector_mut(&mut self) -> &mut C {
        &mut self.connector
    }

    pub fn config(&self) -> &PlannerConfig {
        &self.cfg
    }

    pub fn profile(&self) -> &PerfProfile {
        &self.profile
    }
}

//! The planner's counters and gauges, rendered for `/metrics` (Prometheus text format).

use std::fmt::Write;

use crate::plan::{Action, Decision, Warning};
use crate::role::{Role, RoleMap};

/// Calls that succeeded and failed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Outcomes {
    pub ok: u64,
    pub error: u64,
}

impl Outcomes {
    pub fn count<T, E>(&mut self, r: &Result<T, E>) {
        match r {
            Ok(_) => self.ok += 1,
            Err(_) => self.error += 1,
        }
    }
}

/// What the planner did, as of its last decision.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PlannerMetrics {
    pub decisions: u64,
    pub scale_ups: u64,
    pub scale_downs: u64,
    pub warnings: u64,
    pub manual_changes: u64,
    pub unfulfilled_scale_ups: u64,
    pub connector_errors: u64,
    /// The connector's name (the `connector` label).
    pub connector: &'static str,
    /// Replica reads through the connector, by outcome.
    pub connector_reads: Outcomes,
    /// Targets sent through the connector (decisions carried out), by outcome.
    pub connector_sets: Outcomes,
    pub predicted_rate_per_s: f64,
    pub predicted_isl: f64,
    pub predicted_osl: f64,
    pub target: RoleMap<Option<usize>>,
    pub ready: RoleMap<Option<usize>>,
}

impl PlannerMetrics {
    pub fn record(&mut self, d: &Decision) {
        self.decisions += 1;
        self.predicted_rate_per_s = d.load.rate_per_s;
        self.predicted_isl = d.load.isl;
        self.predicted_osl = d.load.osl;
        for r in &d.roles {
            match r.action {
                Action::ScaleUp => self.scale_ups += 1,
                Action::ScaleDown => self.scale_downs += 1,
                _ => {}
            }
            *self.target.get_mut(r.role) = Some(r.target);
            *self.ready.get_mut(r.role) = Some(r.ready);
        }
        for w in &d.warnings {
            self.warnings += 1;
            match w {
                Warning::ManualChangeObserved { .. } => self.manual_changes += 1,
                Warning::ScaleUpUnfulfilled { .. } => self.unfulfilled_scale_ups += 1,
                _ => {}
            }
        }
    }

    /// Prometheus text exposition, metric names `rotor_planner_*`.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let counters = [
            ("decisions_total", "Plans made.", self.decisions),
            ("scale_ups_total", "Role scale-ups decided.", self.scale_ups),
            (
                "scale_downs_total",
                "Role scale-downs decided.",
                self.scale_downs,
            ),
            ("warnings_total", "Warnings of all kinds.", self.warnings),
            (
                "manual_changes_total",
                "Replica counts changed outside the planner, observed.",
                self.manual_changes,
            ),
            (
                "unfulfilled_scale_ups_total",
                "Intervals with desired replicas not ready for long.",
                self.unfulfilled_scale_ups,
            ),
            (
                "connector_errors_total",
                "Connector calls that failed.",
                self.connector_errors,
            ),
        ];
        for (name, help, v) in counters {
            let _ = writeln!(s, "# HELP rotor_planner_{name} {help}\n# TYPE rotor_planner_{name} counter\nrotor_planner_{name} {v}");
        }
        let _ = writeln!(
            s,
            "# HELP rotor_planner_connector_requests_total Connector calls (read: replicas; set_target: a decision carried out), by outcome.\n# TYPE rotor_planner_connector_requests_total counter"
        );
        for (op, o) in [
            ("read", self.connector_reads),
            ("set_target", self.connector_sets),
        ] {
            for (outcome, v) in [("ok", o.ok), ("error", o.error)] {
                let _ = writeln!(
                    s,
                    "rotor_planner_connector_requests_total{{connector=\"{}\",op=\"{op}\",outcome=\"{outcome}\"}} {v}",
                    self.connector
                );
            }
        }
        let gauges = [
            (
                "predicted_request_rate",
                "Forecast requests per second.",
                self.predicted_rate_per_s,
            ),
            (
                "predicted_input_tokens",
                "Forecast mean prompt length.",
                self.predicted_isl,
            ),
            (
                "predicted_output_tokens",
                "Forecast mean output length.",
                self.predicted_osl,
            ),
        ];
        for (name, help, v) in gauges {
            let _ = writeln!(s, "# HELP rotor_planner_{name} {help}\n# TYPE rotor_planner_{name} gauge\nrotor_planner_{name} {v}");
        }
        for (name, help, map) in [
            (
                "target_replicas",
                "Replicas the planner asked for, per role.",
                &self.target,
            ),
            (
                "ready_replicas",
                "Replicas ready at the last plan, per role.",
                &self.ready,
            ),
        ] {
            let _ = writeln!(
                s,
                "# HELP rotor_planner_{name} {help}\n# TYPE rotor_planner_{name} gauge"
            );
            for role in Role::ALL {
                if let Some(v) = map.get(role) {
                    let _ = writeln!(s, "rotor_planner_{name}{{role=\"{role}\"}} {v}");
                }
            }
        }
        s
    }
}

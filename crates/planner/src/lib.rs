//! rotor-planner: the SLA planner. Observe (traffic and latency per interval) → plan (a pure
//! function of the observation, the profile, the SLA and the carried state: every decision is
//! reproducible from its inputs, which it logs) → actuate (a [`Connector`]).
//!
//! Key types:
//! - [`PerfProfile`]: a worker's TTFT(ISL), ITL(batch, context) and the throughputs that follow
//!   (`rotor profile` writes it).
//! - [`Predictor`] ([`PredictorKind`]: constant, moving average, Holt, Kalman): next interval's
//!   request rate, prompt and output lengths, prefix hit rate.
//! - [`plan`]: [`PlannerConfig`] + [`PerfProfile`] + [`PlannerState`] + [`Observation`] →
//!   [`Decision`] (replicas per [`Role`], with its inputs and [`Warning`]s) + the next state. The
//!   formulas are in the `plan` module docs.
//! - [`Connector`]: what carries a decision out (local processes, Kubernetes, virtual, or a
//!   simulation); [`LocalConnector`] runs workers as local processes; `KubernetesConnector`
//!   (cargo feature `kubernetes`) scales one Deployment per role; [`FrontendCounters`]
//!   turns two scrapes of the frontends' `/metrics` into an [`Observation`];
//!   [`PlannerMetrics`] counts decisions for `/metrics`.
//!
//! Must not depend on the engine or the model (it sees workers only through metrics and a
//! connector), nor read the environment (except kube's in-cluster configuration, which reads
//! `KUBERNETES_SERVICE_HOST`/`_PORT` as every Kubernetes client does). kube and k8s-openapi
//! (about 3 minutes of build) come only with the `kubernetes` feature.

mod config;
mod connector;
mod error;
#[cfg(feature = "kubernetes")]
mod kubernetes;
mod local;
mod metrics;
mod observation;
mod plan;
mod planner;
mod predictor;
mod profile;
mod role;
mod scrape;

pub use config::{PlannerConfig, RoleBounds, Sla, Topology};
pub use connector::{Connector, FixedConnector, VirtualConnector};
pub use error::Error;
#[cfg(feature = "kubernetes")]
pub use kubernetes::{KubernetesApi, KubernetesConfig, KubernetesConnector};
pub use local::LocalConnector;
pub use metrics::{Outcomes, PlannerMetrics};
pub use observation::{LatencyObservation, Load, Observation, Replicas};
pub use plan::{plan, utilization_cap, Action, Decision, PlannerState, RoleDecision, Warning};
pub use planner::Planner;
pub use predictor::{Predictor, PredictorKind};
pub use profile::{DecodeCapacity, DecodePoint, PerfProfile, PrefillPoint};
pub use role::{Role, RoleMap};
pub use scrape::FrontendCounters;

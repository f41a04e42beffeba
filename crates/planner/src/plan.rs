//! The plan: a pure function from (config, profile, state, observation) to a decision and the
//! next state. Every decision is reproducible from its inputs, which it carries.
//!
//! Per role, with the forecast load (rate λ req/s, prompt length ISL of which a fraction h is
//! cached, output length OSL) and corrections `c_ttft`, `c_itl` (≥ 1/max, ≤ max; 1 = the
//! profile is right):
//!
//! - prefill work per request `s = TTFT(ISL·(1−h))·c_ttft / 1000` worker-seconds;
//! - decode work per request `d = OSL · ITL(b*, ctx)·c_itl / (1000·b*)`, with `b*` the largest
//!   batch meeting `ITL_target / c_itl` at context `ctx = ISL + OSL/2`;
//! - work `W` = `s + d` (aggregated), `s` (prefill) or `d` (decode); required workers
//!   `R = λ·W + B·W/interval`, the second term draining the backlog `B` (requests in flight at
//!   the end of the interval) within the next interval, so a burst is met with more than its
//!   rate.
//! - Utilization cap `ρ`: `scale_up_utilization`, and for roles that prefill also the M/D/1
//!   queueing headroom that keeps the mean TTFT within target: the wait is `ρ·s/(2(1−ρ))`, so
//!   `s + wait ≤ TTFT_target` gives `ρ ≤ 2k/(1+2k)` with `k = (TTFT_target − s)/s`.
//! - Scale up at once to `ceil(R/ρ)`; scale down only when the survivors stay at or below
//!   `ρ·scale_down_utilization/scale_up_utilization` — the load the removed worker carried is
//!   absorbed by the rest, so a flat load does not flap between n and n−1 (Dynamo PR #9294) —
//!   and only after `scale_down_intervals` consecutive intervals that agree (and at least
//!   `worker_startup_s` of them: a worker needed again sooner costs more than it saves).
//! - Clamp to the role's bounds, then all roles to `budget_workers`; a clamp that cuts the
//!   wanted replicas, or a TTFT/ITL the profile cannot meet at any replica count, is a warning,
//!   never a reason to grow further (Dynamo PR #6145).
//! - Zero traffic forecasts a zero load (never NaN) and goes to the minimum (Dynamo #6985).
//! - The current replicas are what the source of truth says (`Replicas::desired`), so a count
//!   changed by hand is adopted and logged, not overwritten (a scale-down from it waits its
//!   intervals like any other). A scale-up that does not become ready is reported, and never
//!   blocks the next decision (Dynamo #14251); while one is starting, a scale-down happens only
//!   to at most the ready count (cancelling the starts) — a dip that still needs some of the
//!   starting workers does not restart them from zero.
//! - Corrections: when an interval had `min_latency_samples` samples and a utilization below
//!   0.9, the observed mean TTFT is divided by the expected one (profile + M/D/1 wait at the
//!   observed utilization), the observed ITL by the profile's at the observed batch; each
//!   correction moves half way to its ratio.

use serde::{Deserialize, Serialize};

use crate::config::PlannerConfig;
use crate::observation::{Load, Observation};
use crate::predictor::Predictor;
use crate::profile::PerfProfile;
use crate::role::{Role, RoleMap};

/// What the plan carries from one interval to the next.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlannerState {
    pub interval: u64,
    pub rate: Predictor,
    pub isl: Predictor,
    pub osl: Predictor,
    pub hit_rate: Predictor,
    pub ttft_correction: f64,
    pub itl_correction: f64,
    /// The target each role was last given.
    pub last_target: RoleMap<Option<usize>>,
    /// Consecutive intervals each role wanted fewer workers.
    pub low_intervals: RoleMap<u32>,
    /// Consecutive intervals each role had fewer ready workers than desired.
    pub unready_intervals: RoleMap<u32>,
}

impl PlannerState {
    pub fn new(cfg: &PlannerConfig) -> Self {
        let p = || Predictor::new(cfg.predictor);
        Self {
            interval: 0,
            rate: p(),
            isl: p(),
            osl: p(),
            hit_rate: p(),
            ttft_correction: 1.0,
            itl_correction: 1.0,
            last_target: RoleMap::default(),
            low_intervals: RoleMap::default(),
            unready_intervals: RoleMap::default(),
        }
    }
}

/// What was done to a role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Hold,
    ScaleUp,
    ScaleDown,
    /// A smaller target, waiting for its intervals.
    WaitToScaleDown,
}

/// The decision for one role.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RoleDecision {
    pub role: Role,
    /// Replicas before the decision (desired, per the source of truth) and ready.
    pub current: usize,
    pub ready: usize,
    /// Worker-seconds per request and busy workers needed (R).
    pub work_per_request_s: f64,
    pub required_workers: f64,
    pub utilization_cap: f64,
    /// Before the bounds and the budget.
    pub wanted: usize,
    pub target: usize,
    pub action: Action,
}

/// Something the operator should know.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Warning {
    /// The profile's TTFT for the forecast prompt alone exceeds the target: no replica count meets it.
    TtftUnreachable { ttft_ms: f64, target_ms: f64 },
    /// Even batch 1 misses the ITL target.
    ItlUnreachable { itl_ms: f64, target_ms: f64 },
    /// The role's maximum or the budget cut the wanted replicas.
    BudgetExhausted {
        role: Role,
        wanted: usize,
        target: usize,
    },
    /// The replicas were changed outside the planner; adopted as current.
    ManualChangeObserved {
        role: Role,
        expected: usize,
        observed: usize,
    },
    /// Fewer workers ready than desired for several intervals (a scale-up not fulfilled).
    ScaleUpUnfulfilled {
        role: Role,
        desired: usize,
        ready: usize,
        intervals: u32,
    },
}

/// One interval's decision with its inputs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    pub interval: u64,
    pub observation: Observation,
    pub load: Load,
    pub ttft_correction: f64,
    pub itl_correction: f64,
    pub roles: Vec<RoleDecision>,
    pub warnings: Vec<Warning>,
}

impl Decision {
    pub fn target(&self, role: Role) -> Option<usize> {
        self.roles.iter().find(|r| r.role == role).map(|r| r.target)
    }

    /// Whether any role's replicas change.
    pub fn scales(&self) -> bool {
        self.roles
            .iter()
            .any(|r| matches!(r.action, Action::ScaleUp | Action::ScaleDown))
    }
}

/// Intervals of `desired > ready` before a `ScaleUpUnfulfilled` warning.
const UNFULFILLED_WARN_INTERVALS: u32 = 3;
/// Above this observed utilization latency is queueing, not model error: no correction.
const CORRECTION_MAX_UTILIZATION: f64 = 0.9;

/// The plan function. See the module docs.
pub fn plan(
    cfg: &PlannerConfig,
    profile: &PerfProfile,
    state: &PlannerState,
    obs: &Observation,
) -> (Decision, PlannerState) {
    let mut next = state.clone();
    next.interval += 1;
    let mut warnings = Vec::new();
    if cfg.correction {
        update_corrections(cfg, profile, state, obs, &mut next);
    }
    next.rate.observe(obs.rate_per_s());
    if let Some(isl) = obs.mean_isl() {
        next.isl.observe(isl);
    }
    if let Some(osl) = obs.mean_osl() {
        next.osl.observe(osl);
    }
    if let Some(h) = obs.hit_rate() {
        next.hit_rate.observe(h);
    }
    let load = Load {
        rate_per_s: next.rate.predict(),
        isl: next.isl.predict(),
        osl: next.osl.predict(),
        hit_rate: next.hit_rate.predict().min(1.0),
    };
    let work = Work::estimate(cfg, profile, &load, &next, &mut warnings);
    let mut roles: Vec<RoleDecision> = cfg
        .topology
        .roles()
        .iter()
        .map(|&role| decide_role(cfg, role, &work, &load, obs, &mut next, &mut warnings))
        .collect();
    apply_budget(cfg, &mut roles, &mut warnings);
    for r in &mut roles {
        if r.target < r.current {
            r.action = Action::ScaleDown;
        } else if r.target > r.current {
            r.action = Action::ScaleUp;
        }
        *next.last_target.get_mut(r.role) = Some(r.target);
        if r.action == Action::ScaleDown {
            *next.low_intervals.get_mut(r.role) = 0;
        }
    }
    let decision = Decision {
        interval: next.interval,
        observation: *obs,
        load,
        ttft_correction: next.ttft_correction,
        itl_correction: next.itl_correction,
        roles,
        warnings,
    };
    (decision, next)
}

/// Worker-seconds per request of each phase at the forecast load.
struct Work {
    prefill_s: f64,
    decode_s: f64,
}

impl Work {
    fn estimate(
        cfg: &PlannerConfig,
        profile: &PerfProfile,
        load: &Load,
        state: &PlannerState,
        warnings: &mut Vec<Warning>,
    ) -> Self {
        if load.rate_per_s <= 0.0 {
            return Self {
                prefill_s: 0.0,
                decode_s: 0.0,
            };
        }
        let uncached = load.isl * (1.0 - load.hit_rate);
        let ttft_ms = profile.ttft_ms(uncached) * state.ttft_correction;
        if ttft_ms > cfg.sla.ttft_ms {
            warnings.push(Warning::TtftUnreachable {
                ttft_ms,
                target_ms: cfg.sla.ttft_ms,
            });
        }
        let ctx = load.isl + load.osl / 2.0;
        let cap = profile.decode_capacity(cfg.sla.itl_ms / state.itl_correction, ctx);
        let itl_ms = cap.itl_ms * state.itl_correction;
        if !cap.meets_target {
            warnings.push(Warning::ItlUnreachable {
                itl_ms,
                target_ms: cfg.sla.itl_ms,
            });
        }
        Self {
            prefill_s: ttft_ms / 1000.0,
            decode_s: load.osl * itl_ms / (1000.0 * f64::from(cap.batch)),
        }
    }

    fn for_role(&self, role: Role) -> f64 {
        match role {
            Role::Aggregated => self.prefill_s + self.decode_s,
            Role::Prefill => self.prefill_s,
            Role::Decode => self.decode_s,
        }
    }
}

/// The busy fraction a role is planned at: `scale_up_utilization`, capped for roles that
/// prefill by the M/D/1 headroom of the TTFT target (see the module docs).
pub fn utilization_cap(cfg: &PlannerConfig, role: Role, prefill_s: f64) -> f64 {
    let up = cfg.scale_up_utilization;
    if role == Role::Decode || prefill_s <= 0.0 {
        return up;
    }
    let target_s = cfg.sla.ttft_ms / 1000.0;
    if prefill_s >= target_s {
        // Unreachable TTFT: queueing cannot be avoided; plan at the normal cap (warned).
        return up;
    }
    let k = (target_s - prefill_s) / prefill_s;
    up.min(2.0 * k / (1.0 + 2.0 * k))
}

fn ceil_workers(required: f64, cap: f64) -> usize {
    if required <= 0.0 {
        return 0;
    }
    // A tolerance so that exact multiples (2.0 / 0.5 = 4) do not round up through float error.
    (required / cap - 1e-9).ceil().max(0.0) as usize
}

fn decide_role(
    cfg: &PlannerConfig,
    role: Role,
    work: &Work,
    load: &Load,
    obs: &Observation,
    next: &mut PlannerState,
    warnings: &mut Vec<Warning>,
) -> RoleDecision {
    let bounds = *cfg.bounds.get(role);
    let replicas = *obs.replicas.get(role);
    if let Some(expected) = *next.last_target.get(role) {
        if replicas.desired != expected {
            warnings.push(Warning::ManualChangeObserved {
                role,
                expected,
                observed: replicas.desired,
            });
            *next.low_intervals.get_mut(role) = 0;
        }
    }
    let unready = next.unready_intervals.get_mut(role);
    *unready = if replicas.ready < replicas.desired {
        *unready + 1
    } else {
        0
    };
    if *unready >= UNFULFILLED_WARN_INTERVALS {
        warnings.push(Warning::ScaleUpUnfulfilled {
            role,
            desired: replicas.desired,
            ready: replicas.ready,
            intervals: *unready,
        });
    }
    let current = replicas.desired;
    let w = work.for_role(role);
    let backlog = if obs.interval_s > 0.0 {
        obs.inflight_requests as f64 * w / obs.interval_s
    } else {
        0.0
    };
    let required = load.rate_per_s * w + backlog;
    let cap = utilization_cap(cfg, role, work.prefill_s);
    let wanted = ceil_workers(required, cap);
    let up_target = wanted.clamp(bounds.min, bounds.max);
    let mut decision = RoleDecision {
        role,
        current,
        ready: replicas.ready,
        work_per_request_s: w,
        required_workers: required,
        utilization_cap: cap,
        wanted,
        target: current,
        action: Action::Hold,
    };
    let low = next.low_intervals.get_mut(role);
    if up_target > current || current < bounds.min {
        decision.target = up_target.max(bounds.min);
        *low = 0;
        return decision;
    }
    if current > bounds.max {
        decision.target = bounds.max;
        *low = 0;
        return decision;
    }
    // Survivors must stay at or below the scale-down utilization.
    let down_cap = cap * cfg.scale_down_utilization / cfg.scale_up_utilization;
    let mut down_target = ceil_workers(required, down_cap).clamp(bounds.min, bounds.max);
    if replicas.ready < current && down_target > replicas.ready {
        // A scale-up is still starting: a dip that leaves it needed in part does not cancel
        // workers half started (they would start again from zero on the next rise).
        down_target = current;
    }
    if down_target >= current {
        *low = 0;
        return decision;
    }
    *low += 1;
    let startup_intervals = if obs.interval_s > 0.0 && cfg.worker_startup_s > 0.0 {
        (cfg.worker_startup_s / obs.interval_s).ceil() as u32
    } else {
        0
    };
    if *low >= cfg.scale_down_intervals.max(startup_intervals) {
        decision.target = down_target;
    } else {
        decision.action = Action::WaitToScaleDown;
    }
    decision
}

/// Cuts targets above the budget: each role keeps its minimum, the rest of the budget is
/// shared in proportion to what each wanted above its minimum (largest remainders first).
fn apply_budget(cfg: &PlannerConfig, roles: &mut [RoleDecision], warnings: &mut Vec<Warning>) {
    for r in roles.iter() {
        if r.wanted > r.target && r.target == cfg.bounds.get(r.role).max {
            warnings.push(Warning::BudgetExhausted {
                role: r.role,
                wanted: r.wanted,
                target: r.target,
            });
        }
    }
    let total: usize = roles.iter().map(|r| r.target).sum();
    if total <= cfg.budget_workers {
        return;
    }
    let mins: Vec<usize> = roles
        .iter()
        .map(|r| cfg.bounds.get(r.role).min.min(r.target))
        .collect();
    let spare = cfg.budget_workers.saturating_sub(mins.iter().sum());
    let extra: Vec<usize> = roles.iter().zip(&mins).map(|(r, m)| r.target - m).collect();
    let extra_total: usize = extra.iter().sum();
    let shares: Vec<f64> = extra
        .iter()
        .map(|&e| spare as f64 * e as f64 / extra_total as f64)
        .collect();
    let mut given: Vec<usize> = shares.iter().map(|s| s.floor() as usize).collect();
    let mut left = spare - given.iter().sum::<usize>();
    let mut order: Vec<usize> = (0..roles.len()).collect();
    order.sort_by(|&a, &b| {
        let fa = shares[a] - shares[a].floor();
        let fb = shares[b] - shares[b].floor();
        fb.total_cmp(&fa).then(a.cmp(&b))
    });
    for i in order {
        if left == 0 {
            break;
        }
        if given[i] < extra[i] {
            given[i] += 1;
            left -= 1;
        }
    }
    for (i, r) in roles.iter_mut().enumerate() {
        let cut = mins[i] + given[i];
        if cut < r.target {
            warnings.push(Warning::BudgetExhausted {
                role: r.role,
                wanted: r.wanted,
                target: cut,
            });
            r.target = cut;
        }
    }
}

/// Moves the corrections toward observed/expected latency (see the module docs).
fn update_corrections(
    cfg: &PlannerConfig,
    profile: &PerfProfile,
    state: &PlannerState,
    obs: &Observation,
    next: &mut PlannerState,
) {
    let (Some(isl), Some(osl)) = (obs.mean_isl(), obs.mean_osl()) else {
        return;
    };
    let workers: usize = cfg
        .topology
        .roles()
        .iter()
        .map(|&r| obs.replicas.get(r).ready)
        .sum();
    if workers == 0 {
        return;
    }
    let uncached = isl * (1.0 - obs.hit_rate().unwrap_or(0.0));
    let s = profile.ttft_ms(uncached) / 1000.0;
    let ctx = isl + osl / 2.0;
    // Observed batch per decoding worker by Little's law: λ_w · OSL · ITL.
    let lambda_w = obs.rate_per_s() / workers as f64;
    let observed_itl_s = obs.itl.mean_ms / 1000.0;
    let batch = (lambda_w * osl * observed_itl_s).max(1.0);
    let itl_model_ms = profile.itl_ms(batch, ctx);
    let d = osl * itl_model_ms / 1000.0 / batch;
    let rho = lambda_w * (s + d);
    // NaN (no traffic observed) also skips the correction.
    if rho.is_nan() || rho >= CORRECTION_MAX_UTILIZATION {
        return;
    }
    let lo = 1.0 / cfg.max_correction;
    let hi = cfg.max_correction;
    if obs.ttft.count >= cfg.min_latency_samples && s > 0.0 {
        let expected_ms = 1000.0 * (s + rho * s / (2.0 * (1.0 - rho)));
        let ratio = obs.ttft.mean_ms / expected_ms;
        if ratio.is_finite() {
            next.ttft_correction = (0.5 * (state.ttft_correction + ratio)).clamp(lo, hi);
        }
    }
    if obs.itl.count >= cfg.min_latency_samples {
        let ratio = obs.itl.mean_ms / itl_model_ms;
        if ratio.is_finite() {
            next.itl_correction = (0.5 * (state.itl_correction + ratio)).clamp(lo, hi);
        }
    }
}

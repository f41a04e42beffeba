//! The replay: one event loop on a simulated clock (seconds, f64). Events, earliest first, ties
//! in this order: a worker becomes ready, a request arrives, the planner's interval ends, a
//! worker steps (lowest id first). Nothing sleeps and nothing reads the wall clock, so the same
//! inputs give the same decisions.
//!
//! - Arrivals are routed by `rotor_kv_router::KvRouter` (approximate prefix index: routed
//!   prefixes are assumed cached) over the ready workers; with none ready they wait in the
//!   frontend's queue, their TTFT running.
//! - A worker with work steps as soon as its previous step ended; a step's outputs are stamped
//!   with its modelled end.
//! - At each interval the policy sees the interval's traffic and latency and sets a target;
//!   added workers serve after `startup_delay` (and cost from their launch); removed workers
//!   leave the router at once, drain their requests and stop (starting ones first, then the
//!   least loaded).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use rotor_kv_router::{IndexMode, KvRouter, KvRouterConfig};
use rotor_planner::{
    LatencyObservation, Observation, Planner, PlannerConfig, Replicas, RoleMap, Sla,
};
use rotor_protocol::{GenerateRequest, SamplingParams, StopConditions};
use serde::Serialize;

use crate::error::Error;
use crate::policy::{DynamoRule, LoggedDecision, Policy, SimConnector};
use crate::stats::Percentiles;
use crate::worker::{EngineSpec, SimWorker};
use crate::workload::{prompt_tokens, ReplayRequest};

/// Everything a replay needs besides the requests.
#[derive(Debug, Clone)]
pub struct ReplayConfig {
    pub engine: EngineSpec,
    pub policy: Policy,
    pub sla: Sla,
    /// Workers at the start (ready at once).
    pub initial_workers: usize,
    pub startup_delay: Duration,
    pub interval: Duration,
    pub seed: u64,
    pub block_size_tokens: usize,
}

/// A change of the replica count.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ScalingEvent {
    pub t_s: f64,
    pub from: usize,
    pub to: usize,
}

/// What a replay measured.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReplayReport {
    pub policy: String,
    pub requests: usize,
    pub completed: usize,
    pub failed: usize,
    /// Requests with TTFT and mean ITL within the SLA (failed ones miss it).
    pub sla_met: usize,
    pub sla_attainment: f64,
    pub worker_seconds: f64,
    pub duration_s: f64,
    pub mean_workers: f64,
    pub peak_workers: usize,
    pub startup_delay_s: f64,
    pub ttft_ms: Percentiles,
    pub itl_ms: Percentiles,
    pub scaling_events: Vec<ScalingEvent>,
    #[serde(skip)]
    pub decisions: Vec<LoggedDecision>,
}

#[derive(Debug, Clone, Default)]
struct RequestRecord {
    first_token: Option<f64>,
    last_token: f64,
    tokens: u32,
    itl_sum_s: f64,
    done: bool,
    failed: bool,
}

/// Traffic of the current interval, for the policy.
#[derive(Debug, Default)]
struct IntervalTraffic {
    requests: u64,
    input_tokens: u64,
    output_tokens: u64,
    cached_tokens: u64,
    ttft_ms: Vec<f64>,
    itl_sum_ms: f64,
    itl_count: u64,
}

impl IntervalTraffic {
    fn observation(&self, interval_s: f64) -> Observation {
        let mean = |sum: f64, n: u64| if n > 0 { sum / n as f64 } else { 0.0 };
        Observation {
            interval_s,
            requests: self.requests,
            input_tokens: self.input_tokens,
            cached_tokens: self.cached_tokens,
            output_tokens: self.output_tokens,
            ttft: LatencyObservation {
                count: self.ttft_ms.len() as u64,
                mean_ms: mean(self.ttft_ms.iter().sum(), self.ttft_ms.len() as u64),
            },
            itl: LatencyObservation {
                count: self.itl_count,
                mean_ms: mean(self.itl_sum_ms, self.itl_count),
            },
            inflight_requests: 0,
            replicas: RoleMap::default(),
        }
    }
}

enum Controller {
    Static,
    Planner(Box<Planner<SimConnector>>),
    DynamoRule(Box<DynamoRule>),
}

/// The replay's state. See the module docs.
struct Sim<'a> {
    cfg: &'a ReplayConfig,
    requests: &'a [ReplayRequest],
    records: Vec<RequestRecord>,
    workers: Vec<SimWorker>,
    router: KvRouter,
    epoch: Instant,
    waiting: VecDeque<usize>,
    traffic: IntervalTraffic,
    itl_all_ms: Vec<f64>,
    events: Vec<ScalingEvent>,
    decisions: Vec<LoggedDecision>,
    controller: Controller,
}

/// Replays `requests` (sorted by arrival) under `cfg`.
pub fn replay(cfg: &ReplayConfig, requests: &[ReplayRequest]) -> Result<ReplayReport, Error> {
    if requests.is_empty() {
        return Err(Error::EmptyTrace);
    }
    if cfg.interval.is_zero() {
        return Err(Error::InvalidConfig {
            field: "interval",
            reason: "must be positive".into(),
        });
    }
    let controller = match &cfg.policy {
        Policy::Static { .. } => Controller::Static,
        Policy::Planner { config, profile } => Controller::Planner(Box::new(Planner::new(
            PlannerConfig {
                worker_startup_s: cfg.startup_delay.as_secs_f64(),
                ..config.clone()
            },
            profile.clone(),
            SimConnector::default(),
        )?)),
        Policy::DynamoRule { config, profile } => Controller::DynamoRule(Box::new(
            DynamoRule::new(config.clone().validate()?, profile.clone().validated()?),
        )),
    };
    let initial = match cfg.policy {
        Policy::Static { workers } => workers,
        _ => cfg.initial_workers,
    };
    if initial == 0 {
        return Err(Error::InvalidConfig {
            field: "initial_workers",
            reason: "at least one worker must start".into(),
        });
    }
    let router = KvRouter::new(KvRouterConfig {
        block_size_tokens: cfg.block_size_tokens,
        index_mode: IndexMode::Approximate {
            ttl: Duration::from_secs(120),
        },
        seed: cfg.seed,
        ..KvRouterConfig::default()
    })?;
    let mut sim = Sim {
        cfg,
        requests,
        records: vec![RequestRecord::default(); requests.len()],
        workers: Vec::new(),
        router,
        epoch: Instant::now(),
        waiting: VecDeque::new(),
        traffic: IntervalTraffic::default(),
        itl_all_ms: Vec::new(),
        events: Vec::new(),
        decisions: Vec::new(),
        controller,
    };
    for _ in 0..initial {
        sim.launch(0.0, 0.0)?;
    }
    sim.mark_ready(0.0);
    let end = sim.run()?;
    Ok(sim.report(end))
}

impl Sim<'_> {
    fn launch(&mut self, now: f64, startup_s: f64) -> Result<(), Error> {
        let id = self.workers.len() as u64;
        self.workers
            .push(SimWorker::launch(id, &self.cfg.engine, now, startup_s)?);
        Ok(())
    }

    fn counted(&self) -> usize {
        self.workers.iter().filter(|w| w.counted()).count()
    }

    fn mark_ready(&mut self, now: f64) {
        for w in &mut self.workers {
            if w.counted() && !w.ready && w.ready_at <= now {
                w.ready = true;
                self.router.add_worker(w.id);
            }
        }
        while let Some(&r) = self.waiting.front() {
            if !self.dispatch(r, now) {
                break;
            }
            self.waiting.pop_front();
        }
    }

    fn run(&mut self) -> Result<f64, Error> {
        let interval = self.cfg.interval.as_secs_f64();
        let mut next_arrival = 0;
        let mut next_tick = interval;
        let mut now = 0.0f64;
        loop {
            let t_ready = self
                .workers
                .iter()
                .filter(|w| w.counted() && !w.ready)
                .map(|w| w.ready_at)
                .fold(f64::INFINITY, f64::min);
            let t_arrival = self
                .requests
                .get(next_arrival)
                .map_or(f64::INFINITY, |r| r.arrival.as_secs_f64());
            let step = self
                .workers
                .iter()
                .enumerate()
                .filter_map(|(i, w)| w.next_step_at(now).map(|t| (t, i)))
                .min_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            let t_step = step.map_or(f64::INFINITY, |s| s.0);
            let busy = next_arrival < self.requests.len()
                || !self.waiting.is_empty()
                || self
                    .workers
                    .iter()
                    .any(|w| w.alive() && !w.inflight.is_empty());
            if !busy {
                return Ok(now);
            }
            let t_tick = if matches!(self.controller, Controller::Static) {
                f64::INFINITY
            } else {
                next_tick
            };
            let t = t_ready.min(t_arrival).min(t_tick).min(t_step);
            if !t.is_finite() {
                // Requests wait for a worker that will never come (no policy adds one).
                return Ok(now);
            }
            now = t;
            if t_ready <= t {
                self.mark_ready(now);
            } else if t_arrival <= t {
                self.arrive(next_arrival, now);
                next_arrival += 1;
            } else if t_tick <= t {
                self.tick(now, interval)?;
                next_tick += interval;
            } else if let Some((_, i)) = step {
                self.step_worker(i, now);
            }
        }
    }

    fn arrive(&mut self, r: usize, now: f64) {
        let req = &self.requests[r];
        self.traffic.requests += 1;
        self.traffic.input_tokens += u64::from(req.input_tokens);
        self.traffic.output_tokens += u64::from(req.output_tokens);
        if self.waiting.is_empty() && self.dispatch(r, now) {
            return;
        }
        self.waiting.push_back(r);
    }

    /// Routes and submits request `r`; false if no worker serves.
    fn dispatch(&mut self, r: usize, now: f64) -> bool {
        if self.router.workers().is_empty() {
            return false;
        }
        let req = &self.requests[r];
        let spec = &self.cfg.engine;
        let tokens = prompt_tokens(req, r, self.cfg.seed, spec.vocab_size);
        let id = format!("r{r}");
        let at = self.epoch + Duration::from_secs_f64(now);
        let worker = match self.router.route(&id, &tokens, at) {
            Ok(routed) => routed.selection.worker,
            Err(_) => {
                self.fail(r);
                return true;
            }
        };
        let gen = GenerateRequest {
            task: Default::default(),
            id: id.clone(),
            token_ids: tokens,
            sampling: SamplingParams {
                temperature: 0.0,
                ..SamplingParams::default()
            },
            stop: StopConditions {
                max_tokens: req.output_tokens.max(1),
                ignore_eos: true,
                ..StopConditions::default()
            },
        };
        let w = &mut self.workers[worker as usize];
        if w.busy_until < now {
            w.busy_until = now;
        }
        if w.submit(r, gen).is_err() {
            let _ = self.router.mark_finished(&id);
            self.fail(r);
        }
        true
    }

    fn fail(&mut self, r: usize) {
        let rec = &mut self.records[r];
        rec.failed = true;
        rec.done = true;
    }

    fn step_worker(&mut self, i: usize, now: f64) {
        let outcome = self.workers[i].step(now);
        let t = outcome.end;
        for (r, out) in outcome.outputs {
            let id = format!("r{r}");
            let arrival = self.requests[r].arrival.as_secs_f64();
            let rec = &mut self.records[r];
            match out {
                Err(_) => {
                    rec.failed = true;
                    rec.done = true;
                    let _ = self.router.mark_finished(&id);
                }
                Ok(o) => {
                    let n = o.token_ids.len() as u32;
                    if n > 0 {
                        match rec.first_token {
                            None => {
                                rec.first_token = Some(t);
                                let ttft_ms = 1000.0 * (t - arrival);
                                self.traffic.ttft_ms.push(ttft_ms);
                                self.traffic.cached_tokens +=
                                    u64::from(o.cached_prompt_tokens.unwrap_or(0));
                                let _ = self.router.mark_prefill_completed(&id);
                            }
                            Some(_) => {
                                let gap_ms = 1000.0 * (t - rec.last_token);
                                rec.itl_sum_s += gap_ms / 1000.0;
                                self.traffic.itl_sum_ms += gap_ms;
                                self.traffic.itl_count += 1;
                                self.itl_all_ms.push(gap_ms);
                            }
                        }
                        rec.tokens += n;
                        rec.last_token = t;
                    }
                    if o.finish_reason.is_some() {
                        rec.done = true;
                        let _ = self.router.mark_finished(&id);
                    }
                }
            }
        }
        self.workers[i].stop_if_drained(t);
    }

    fn tick(&mut self, now: f64, interval_s: f64) -> Result<(), Error> {
        let mut obs = std::mem::take(&mut self.traffic).observation(interval_s);
        obs.inflight_requests = self.waiting.len() as u64
            + self
                .workers
                .iter()
                .map(|w| w.inflight.len() as u64)
                .sum::<u64>();
        let replicas = Replicas {
            desired: self.counted(),
            ready: self.workers.iter().filter(|w| w.serving()).count(),
        };
        let (target, decision) = match &mut self.controller {
            Controller::Static => return Ok(()),
            Controller::Planner(p) => {
                p.connector_mut().replicas = replicas;
                let d = p.step(obs);
                (p.connector().replicas.desired, Some(d))
            }
            Controller::DynamoRule(rule) => (rule.target(&obs, replicas.ready.max(1)), None),
        };
        self.decisions.push(LoggedDecision {
            t_s: now,
            target,
            decision,
        });
        self.scale_to(target, now)
    }

    fn scale_to(&mut self, target: usize, now: f64) -> Result<(), Error> {
        let from = self.counted();
        if target == from {
            return Ok(());
        }
        self.events.push(ScalingEvent {
            t_s: now,
            from,
            to: target,
        });
        let startup = self.cfg.startup_delay.as_secs_f64();
        for _ in from..target {
            self.launch(now, startup)?;
        }
        if startup == 0.0 {
            self.mark_ready(now);
        }
        for _ in target..from {
            // Starting workers first (newest first), then the ready one with least in flight.
            let victim = self
                .workers
                .iter()
                .enumerate()
                .filter(|(_, w)| w.counted())
                .min_by_key(|(i, w)| (w.ready, w.inflight.len(), usize::MAX - i))
                .map(|(i, _)| i);
            let Some(i) = victim else { break };
            let w = &mut self.workers[i];
            w.draining = true;
            if w.ready {
                self.router.remove_worker(w.id);
            }
            w.stop_if_drained(now);
        }
        Ok(())
    }

    fn report(self, end: f64) -> ReplayReport {
        let sla = self.cfg.sla;
        let mut ttft = Vec::new();
        let (mut completed, mut failed, mut met) = (0, 0, 0);
        for (r, rec) in self.records.iter().enumerate() {
            if rec.failed || !rec.done {
                failed += 1;
                continue;
            }
            completed += 1;
            let Some(first) = rec.first_token else {
                continue;
            };
            let ttft_ms = 1000.0 * (first - self.requests[r].arrival.as_secs_f64());
            ttft.push(ttft_ms);
            let gaps = rec.tokens.saturating_sub(1);
            let mean_itl_ms = if gaps > 0 {
                1000.0 * rec.itl_sum_s / f64::from(gaps)
            } else {
                0.0
            };
            if ttft_ms <= sla.ttft_ms && mean_itl_ms <= sla.itl_ms {
                met += 1;
            }
        }
        let worker_seconds: f64 = self
            .workers
            .iter()
            .map(|w| w.stopped_at.unwrap_or(end).max(w.launched_at) - w.launched_at)
            .sum();
        let peak = {
            let mut n = self.events.first().map_or(self.workers.len(), |e| e.from);
            let mut peak = n;
            for e in &self.events {
                n = e.to;
                peak = peak.max(n);
            }
            peak
        };
        let requests = self.requests.len();
        ReplayReport {
            policy: self.cfg.policy.name(),
            requests,
            completed,
            failed,
            sla_met: met,
            sla_attainment: met as f64 / requests as f64,
            worker_seconds,
            duration_s: end,
            mean_workers: if end > 0.0 { worker_seconds / end } else { 0.0 },
            peak_workers: peak,
            startup_delay_s: self.cfg.startup_delay.as_secs_f64(),
            ttft_ms: Percentiles::of(&ttft),
            itl_ms: Percentiles::of(&self.itl_all_ms),
            scaling_events: self.events,
            decisions: self.decisions,
        }
    }
}

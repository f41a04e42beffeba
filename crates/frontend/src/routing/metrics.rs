//! [`RoutingMetrics`]: the routing figures of every [`RoutedBackend`] in /metrics.
//!
//! - `rotor_frontend_router_decisions_total{model,worker}`: requests (attempts) routed to a worker.
//! - `rotor_frontend_worker_inflight_requests{model,worker}`: this frontend's requests running there.
//! - `rotor_frontend_routable_workers{model}`: workers that take new requests now.
//! - `rotor_frontend_migrations_total{model}`: requests moved to another worker after a failure.
//! - `rotor_frontend_migration_failures_total{model}`: requests that failed because they could
//!   not move (limit reached or no worker left).
//! - kv mode: `rotor_frontend_kv_router_requested_blocks_total{model}`,
//!   `rotor_frontend_kv_router_hit_blocks_total{model}` (blocks the chosen worker held),
//!   `rotor_frontend_kv_router_hit_rate{model}`, `rotor_frontend_kv_router_events_applied_total{model}`,
//!   `rotor_frontend_kv_router_event_gaps_total{model}`, `rotor_frontend_kv_router_resyncs_total{model}`
//!   (index rebuilt from a worker's snapshot after a gap),
//!   `rotor_frontend_kv_router_remote_decisions_total{model}` (other replicas' decisions applied),
//!   `rotor_frontend_kv_router_remote_requests{model}` (other replicas' requests counted now),
//!   `rotor_frontend_kv_router_overlap_blocks_total{model,tier}` (the hit blocks by the tier the
//!   chosen worker held each in: device, host, disk, remote),
//!   `rotor_frontend_kv_router_indexed_blocks{model,tier}` (blocks the index holds per tier).
//!
//! - disaggregated serving: `rotor_frontend_disagg_active{model}` (1 while prefill and
//!   generating workers are both routable), `rotor_frontend_workers_by_role{model,role}`,
//!   `rotor_frontend_remote_prefill_total{model}`, `rotor_frontend_local_prefill_total{model,reason}`
//!   (pools with roles only), `rotor_kv_transfer_blocks_total{model}`,
//!   `rotor_kv_transfer_bytes_total{model,transport}` (`shm`, `tcp`, `relay`),
//!   `rotor_kv_transfer_shm_fallbacks_total{model}`, `rotor_kv_transfer_already_cached_blocks_total{model}`,
//!   `rotor_kv_transfer_seconds{model}` (histogram: prefill + move), `rotor_kv_transfers_in_flight{model}`.
//!
//! Workers are labelled with their id as 16 hex digits (as discovery shows instance ids).

use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use std::sync::{Mutex, PoisonError, Weak};

use rotor_protocol::{CacheTier, WorkerRole};

use super::disagg::{LocalReason, TransferPath, TRANSFER_BUCKETS};
use super::routed::{RoutedBackend, RoutedInner};
use crate::metrics::{escape_label, MetricsSource};

/// Renders the routing metrics of the backends added to it. Add it to the frontend's metrics
/// with [`Metrics::add_source`](crate::Metrics::add_source).
#[derive(Default)]
pub struct RoutingMetrics {
    backends: Mutex<Vec<Weak<RoutedInner>>>,
}

impl RoutingMetrics {
    /// Includes `backend` in every later rendering (until it is dropped).
    pub fn add(&self, backend: &RoutedBackend) {
        let mut backends = self.backends.lock().unwrap_or_else(PoisonError::into_inner);
        backends.retain(|weak| weak.strong_count() > 0);
        backends.push(std::sync::Arc::downgrade(backend.inner()));
    }
}

/// One metric family: its header and its sample lines.
struct Family {
    name: &'static str,
    kind: &'static str,
    help: &'static str,
    lines: String,
}

impl Family {
    fn new(name: &'static str, kind: &'static str, help: &'static str) -> Self {
        Self {
            name,
            kind,
            help,
            lines: String::new(),
        }
    }

    fn sample(&mut self, labels: &str, value: impl std::fmt::Display) {
        let _ = writeln!(self.lines, "{}{{{labels}}} {value}", self.name);
    }

    fn render(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "# HELP {} {}\n# TYPE {} {}",
            self.name, self.help, self.name, self.kind
        );
        out.push_str(&self.lines);
    }
}

impl MetricsSource for RoutingMetrics {
    fn render(&self, out: &mut String) {
        let backends: Vec<_> = self
            .backends
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter_map(Weak::upgrade)
            .collect();
        let mut decisions = Family::new(
            "rotor_frontend_router_decisions_total",
            "counter",
            "Requests routed to each worker.",
        );
        let mut inflight = Family::new(
            "rotor_frontend_worker_inflight_requests",
            "gauge",
            "Requests of this frontend running on each worker.",
        );
        let mut routable = Family::new(
            "rotor_frontend_routable_workers",
            "gauge",
            "Workers taking new requests.",
        );
        let mut migrations = Family::new(
            "rotor_frontend_migrations_total",
            "counter",
            "Requests moved to another worker after their worker failed.",
        );
        let mut failures = Family::new(
            "rotor_frontend_migration_failures_total",
            "counter",
            "Requests that failed because they could not be moved to another worker.",
        );
        let mut requested = Family::new(
            "rotor_frontend_kv_router_requested_blocks_total",
            "counter",
            "Full prompt blocks of requests routed in kv mode.",
        );
        let mut hits = Family::new(
            "rotor_frontend_kv_router_hit_blocks_total",
            "counter",
            "Of those, blocks the chosen worker already held.",
        );
        let mut best = Family::new(
            "rotor_frontend_kv_router_best_overlap_blocks_total",
            "counter",
            "Of the requested blocks, those the best-placed worker held (the hits routing for load gave up = this - hit_blocks).",
        );
        let mut overlap_by_tier = Family::new(
            "rotor_frontend_kv_router_overlap_blocks_total",
            "counter",
            "Hit blocks by the tier the chosen worker held each in (a run continues across tiers).",
        );
        let mut indexed_by_tier = Family::new(
            "rotor_frontend_kv_router_indexed_blocks",
            "gauge",
            "Blocks the kv router's index holds per tier (host: summed over shared host pools).",
        );
        let mut hit_rate = Family::new(
            "rotor_frontend_kv_router_hit_rate",
            "gauge",
            "hit_blocks / requested_blocks of the kv router.",
        );
        let mut events = Family::new(
            "rotor_frontend_kv_router_events_applied_total",
            "counter",
            "KV events applied to the kv router's index.",
        );
        let mut gaps = Family::new(
            "rotor_frontend_kv_router_event_gaps_total",
            "counter",
            "KV event-id gaps detected.",
        );
        let mut resyncs = Family::new(
            "rotor_frontend_kv_router_resyncs_total",
            "counter",
            "Workers' index entries rebuilt from their KV snapshot after lost events.",
        );
        let mut affinity = Family::new(
            "rotor_frontend_sibling_affinity_total",
            "counter",
            "Sequences of an n > 1 request sent to their first sequence's worker (its prompt blocks are there).",
        );
        let mut remote = Family::new(
            "rotor_frontend_kv_router_remote_decisions_total",
            "counter",
            "Routing decisions of other router replicas applied (replica sync).",
        );
        let mut remote_open = Family::new(
            "rotor_frontend_kv_router_remote_requests",
            "gauge",
            "Other router replicas' requests counted as load now.",
        );
        let mut active = Family::new(
            "rotor_frontend_disagg_active",
            "gauge",
            "1 while the model has routable prefill and generating workers (requests are disaggregated), else 0.",
        );
        let mut by_role = Family::new(
            "rotor_frontend_workers_by_role",
            "gauge",
            "Routable workers by disaggregation role.",
        );
        let mut remote_prefill = Family::new(
            "rotor_frontend_remote_prefill_total",
            "counter",
            "Requests prefilled on a prefill worker, their KV blocks moved to the decode worker.",
        );
        let mut local_prefill = Family::new(
            "rotor_frontend_local_prefill_total",
            "counter",
            "Requests of a pool with roles prefilled on their decode worker, by reason.",
        );
        let mut moved_blocks = Family::new(
            "rotor_kv_transfer_blocks_total",
            "counter",
            "KV blocks imported by decode workers from prefill workers.",
        );
        let mut moved_bytes = Family::new(
            "rotor_kv_transfer_bytes_total",
            "counter",
            "Bytes of KV blocks moved from prefill to decode workers, by transport: shm and tcp worker to worker, relay through this router.",
        );
        let mut shm_fallbacks = Family::new(
            "rotor_kv_transfer_shm_fallbacks_total",
            "counter",
            "KV block batches meant for shared memory that went over TCP (the prefill worker could not write the file).",
        );
        let mut moved_cached = Family::new(
            "rotor_kv_transfer_already_cached_blocks_total",
            "counter",
            "Moved KV blocks the decode worker already held.",
        );
        let mut transfers_open = Family::new(
            "rotor_kv_transfers_in_flight",
            "gauge",
            "Requests running a remote prefill and KV transfer now.",
        );
        let mut transfer_seconds = Family::new(
            "rotor_kv_transfer_seconds",
            "histogram",
            "Time of a remote prefill and its KV transfer, until the decode worker can start.",
        );
        let mut sorted = backends;
        sorted.sort_by(|a, b| a.model.cmp(&b.model));
        for backend in &sorted {
            let model = format!("model=\"{}\"", escape_label(&backend.model));
            migrations.sample(&model, backend.migrations.load(Ordering::Relaxed));
            failures.sample(&model, backend.migration_failures.load(Ordering::Relaxed));
            let counters = &backend.disagg_counters;
            remote_prefill.sample(&model, counters.remote_prefills.load(Ordering::Relaxed));
            for reason in LocalReason::ALL {
                local_prefill.sample(
                    &format!("{model},reason=\"{}\"", reason.label()),
                    counters.local(reason),
                );
            }
            moved_blocks.sample(&model, counters.transferred_blocks.load(Ordering::Relaxed));
            for path in TransferPath::ALL {
                moved_bytes.sample(
                    &format!("{model},transport=\"{}\"", path.label()),
                    counters.transferred_bytes(path),
                );
            }
            shm_fallbacks.sample(&model, counters.shm_fallbacks.load(Ordering::Relaxed));
            moved_cached.sample(
                &model,
                counters.already_cached_blocks.load(Ordering::Relaxed),
            );
            transfers_open.sample(&model, counters.in_transfer.load(Ordering::Relaxed));
            let (buckets, sum) = counters.transfer_histogram();
            for (bound, count) in TRANSFER_BUCKETS.iter().zip(&buckets) {
                let _ = writeln!(
                    transfer_seconds.lines,
                    "rotor_kv_transfer_seconds_bucket{{{model},le=\"{bound}\"}} {count}"
                );
            }
            let total = buckets.last().copied().unwrap_or(0);
            let _ = writeln!(
                transfer_seconds.lines,
                "rotor_kv_transfer_seconds_bucket{{{model},le=\"+Inf\"}} {total}\n\
                 rotor_kv_transfer_seconds_sum{{{model}}} {sum}\n\
                 rotor_kv_transfer_seconds_count{{{model}}} {total}"
            );
            let pool = backend.pool();
            affinity.sample(&model, pool.sibling_affinity());
            routable.sample(&model, pool.routable());
            let prefill = pool.routable_of(WorkerRole::Prefill);
            let generating =
                pool.routable_of(WorkerRole::Decode) + pool.routable_of(WorkerRole::Aggregated);
            active.sample(&model, u8::from(prefill > 0 && generating > 0));
            for role in WorkerRole::ALL {
                by_role.sample(&format!("{model},role=\"{role}\""), pool.routable_of(role));
            }
            for figures in pool.figures() {
                let labels = format!("{model},worker=\"{:016x}\"", figures.worker);
                decisions.sample(&labels, figures.decisions);
                inflight.sample(&labels, figures.inflight);
            }
            if let Some(kv) = pool.kv_metrics() {
                requested.sample(&model, kv.requested_blocks);
                hits.sample(&model, kv.hit_blocks);
                best.sample(&model, kv.best_overlap_blocks);
                for tier in CacheTier::ALL {
                    overlap_by_tier.sample(
                        &format!("{model},tier=\"{tier}\""),
                        kv.overlap_blocks_by_tier[tier.index()],
                    );
                }
                hit_rate.sample(&model, kv.hit_rate());
                events.sample(&model, kv.events_applied);
                gaps.sample(&model, kv.event_gaps);
                remote.sample(&model, kv.remote_decisions);
                resyncs.sample(&model, pool.resyncs());
                remote_open.sample(&model, pool.remote_requests());
            }
            if let Some(indexed) = pool.kv_indexed_blocks() {
                for tier in CacheTier::ALL {
                    indexed_by_tier
                        .sample(&format!("{model},tier=\"{tier}\""), indexed[tier.index()]);
                }
            }
        }
        for family in [
            &decisions,
            &inflight,
            &routable,
            &migrations,
            &failures,
            &requested,
            &hits,
            &best,
            &overlap_by_tier,
            &indexed_by_tier,
            &hit_rate,
            &events,
            &gaps,
            &resyncs,
            &affinity,
            &remote,
            &remote_open,
            &active,
            &by_role,
            &remote_prefill,
            &local_prefill,
            &moved_blocks,
            &moved_bytes,
            &shm_fallbacks,
            &moved_cached,
            &transfers_open,
            &transfer_seconds,
        ] {
            family.render(out);
        }
    }
}

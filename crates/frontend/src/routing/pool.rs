//! [`WorkerPool`]: the workers of one model, their in-flight counts and reported loads, and the
//! choice of the next worker in each [`RouterMode`]. Plain synchronous state: its owner keeps it
//! behind a mutex held only for a choice or an update, never across an await.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rotor_kv_router::{IndexMode, KvRouter, KvRouterConfig, ReplicaSync, RouterMetrics, TieBreak};
use rotor_protocol::{KvSnapshot, RouterEvent, WorkerId, WorkerLoad, WorkerRole};
use tokio::sync::mpsc::UnboundedSender;

use super::config::{RouterMode, RoutingConfig, FALLBACK_KV_BLOCK_SIZE};
use super::replica::ReplicaMessage;
use crate::backend::Backend;
use crate::error::FrontendError;

/// One worker as the pool sees it.
struct WorkerSlot {
    backend: Arc<dyn Backend>,
    /// Prefill workers take only prefills (unless no other worker is left).
    role: WorkerRole,
    /// Requests of this frontend running there now.
    inflight: u64,
    /// Requests routed there since it joined.
    decisions: u64,
    reported: Option<WorkerLoad>,
    /// Skipped for new requests until then (its last request failed as if it were dead).
    quarantined_until: Option<Instant>,
    /// The G2 host pool it shares with the workers of its machine (`ModelCard::host_pool_key`).
    host_pool: Option<String>,
}

/// A worker chosen for one attempt. Hand it back to [`WorkerPool::finish`] when the attempt ends.
pub struct Choice {
    pub worker: WorkerId,
    pub backend: Arc<dyn Backend>,
    /// The KV router's id for this attempt (kv mode only).
    pub tracking: Option<String>,
}

/// A request's place among the sequences of one `n > 1` prompt: the first announces the others
/// (its worker is remembered for `SIBLING_TTL`), the others name it and go to that worker while
/// it is routable, in every routing mode but kv (whose prefix-overlap cost already prefers it,
/// and which must track the load it places).
#[derive(Debug, Clone, Copy, Default)]
pub struct Siblings<'a> {
    pub announced: bool,
    pub first: Option<&'a str>,
}

/// How long a first sibling's worker is remembered (its siblings are sent right after its first
/// output).
const SIBLING_TTL: Duration = Duration::from_secs(10);

/// Per-worker figures for /metrics.
pub struct WorkerFigures {
    pub worker: WorkerId,
    pub inflight: u64,
    pub decisions: u64,
}

/// The workers of one model and the routing policy over them.
pub struct WorkerPool {
    mode: RouterMode,
    workers: BTreeMap<WorkerId, WorkerSlot>,
    /// Turn counter of round-robin, and of ties in least-loaded mode.
    turn: u64,
    rng: StdRng,
    /// kv mode: the router of the generating workers (aggregated and decode roles).
    kv: Option<KvRouter>,
    /// kv mode: the router of the prefill workers (prefix overlap + pending prefill).
    prefill_kv: Option<KvRouter>,
    quarantine: Duration,
    next_tracking_id: u64,
    model: String,
    /// This router replica (random per pool); prefixes its tracking ids so replicas never clash.
    replica_id: u64,
    /// Where this replica's kv decisions go for the other replicas (replica sync on).
    replica_out: Option<UnboundedSender<ReplicaMessage>>,
    /// Other replicas' open requests, with when they were routed (expired after the TTL).
    remote_requests: HashMap<String, Instant>,
    replica_request_ttl: Duration,
    last_remote_sweep: Option<Instant>,
    /// Workers being resynchronised after an event gap.
    resyncing: HashMap<WorkerId, Resync>,
    /// Resyncs completed.
    resyncs: u64,
    /// First siblings' workers, until when they are remembered (see `Siblings`).
    sibling_workers: HashMap<String, (WorkerId, Instant)>,
    sibling_affinity: u64,
}

/// Events of one worker kept while its snapshot is fetched; beyond that the resync starts over.
const MAX_BUFFERED_EVENTS: usize = 65_536;

/// A worker whose KV events had a gap, while its snapshot is on its way: its later events wait
/// here, to be replayed on top of the snapshot (those it already covers are ignored as stale).
#[derive(Default)]
struct Resync {
    buffered: Vec<RouterEvent>,
    overflowed: bool,
}

/// How often, at most, other replicas' requests are checked for expiry.
const REMOTE_SWEEP_INTERVAL: Duration = Duration::from_secs(1);

impl WorkerPool {
    /// An empty pool for `model`; in kv mode its router hashes prompts at `kv_block_size`.
    pub fn new(
        model: &str,
        kv_block_size: Option<u32>,
        config: &RoutingConfig,
    ) -> Result<Self, FrontendError> {
        let seed = config.seed.unwrap_or_else(rand::random);
        let kv = match config.mode {
            RouterMode::Kv => {
                let block_size = kv_block_size.unwrap_or_else(|| {
                    tracing::warn!(
                        model,
                        block_size = FALLBACK_KV_BLOCK_SIZE,
                        "model card has no kv_block_size; the kv router assumes one"
                    );
                    FALLBACK_KV_BLOCK_SIZE
                });
                let index_mode = if config.kv_events {
                    IndexMode::Events
                } else {
                    IndexMode::Approximate {
                        ttl: config.approx_ttl,
                    }
                };
                let kv_config = KvRouterConfig {
                    block_size_tokens: block_size as usize,
                    kv_overlap_weight: config.kv_overlap_weight,
                    queue_weight: config.kv_queue_weight,
                    temperature: config.router_temperature,
                    tie_break: TieBreak::LeastLoaded,
                    index_mode,
                    seed,
                    tier_weights: config.kv_tier_weights,
                };
                let make = |config| {
                    KvRouter::new(config).map_err(|source| FrontendError::KvRouter {
                        model: model.to_string(),
                        source,
                    })
                };
                Some((make(kv_config)?, make(kv_config)?))
            }
            _ => None,
        };
        let (kv, prefill_kv) = match kv {
            Some((kv, prefill)) => (Some(kv), Some(prefill)),
            None => (None, None),
        };
        Ok(Self {
            mode: config.mode,
            workers: BTreeMap::new(),
            turn: 0,
            rng: StdRng::seed_from_u64(seed),
            kv,
            prefill_kv,
            quarantine: config.quarantine,
            next_tracking_id: 0,
            model: model.to_string(),
            replica_id: rand::random(),
            replica_out: None,
            remote_requests: HashMap::new(),
            replica_request_ttl: config.replica_request_ttl,
            last_remote_sweep: None,
            resyncing: HashMap::new(),
            resyncs: 0,
            sibling_workers: HashMap::new(),
            sibling_affinity: 0,
        })
    }

    /// Publishes this pool's kv decisions and request ends to `out` as replica `replica`
    /// (ignored outside kv mode).
    pub fn enable_replica_sync(&mut self, replica: u64, out: UnboundedSender<ReplicaMessage>) {
        if self.kv.is_some() {
            self.replica_id = replica;
            self.replica_out = Some(out);
        }
    }

    fn publish(&self, sync: ReplicaSync) {
        if let Some(out) = &self.replica_out {
            // The receiver lives as long as the watcher; after it stops, nobody listens anyway.
            let _ = out.send(ReplicaMessage {
                replica: self.replica_id,
                model: self.model.clone(),
                sync,
            });
        }
    }

    /// Applies another replica's message (own messages and other modes are ignored).
    pub fn apply_replica_message(&mut self, message: &ReplicaMessage, now: Instant) {
        if message.replica == self.replica_id {
            return;
        }
        let Some(kv) = &mut self.kv else {
            return;
        };
        match &message.sync {
            ReplicaSync::Routed(decision) => {
                self.remote_requests
                    .insert(decision.request_id.clone(), now);
            }
            ReplicaSync::Finished { request_id } => {
                self.remote_requests.remove(request_id);
            }
            ReplicaSync::PrefillCompleted { .. } => {}
        }
        if let Err(error) = kv.apply_replica_sync(&message.sync, now) {
            tracing::debug!(%error, replica = message.replica, "replica message not applied");
        }
    }

    /// Forgets other replicas' requests whose end never arrived within the TTL.
    fn expire_remote_requests(&mut self, now: Instant) {
        if self
            .last_remote_sweep
            .is_some_and(|at| now.duration_since(at) < REMOTE_SWEEP_INTERVAL)
        {
            return;
        }
        self.last_remote_sweep = Some(now);
        let ttl = self.replica_request_ttl;
        let expired: Vec<String> = self
            .remote_requests
            .iter()
            .filter(|(_, at)| now.duration_since(**at) >= ttl)
            .map(|(id, _)| id.clone())
            .collect();
        for id in expired {
            self.remote_requests.remove(&id);
            if let Some(kv) = &mut self.kv {
                let _ = kv.mark_finished(&id);
            }
            tracing::debug!(request = %id, "another replica's request expired");
        }
    }

    /// Other replicas' requests this pool counts now.
    pub fn remote_requests(&self) -> usize {
        self.remote_requests.len()
    }

    /// Adds `worker`, or replaces its backend (new address) and lifts any quarantine.
    pub fn add_worker(&mut self, worker: WorkerId, backend: Arc<dyn Backend>, role: WorkerRole) {
        match self.workers.get_mut(&worker) {
            Some(slot) => {
                slot.backend = backend;
                slot.quarantined_until = None;
                let old_role = std::mem::replace(&mut slot.role, role);
                if old_role != role {
                    if let Some(kv) = self.router_of_role(old_role) {
                        kv.remove_worker(worker);
                    }
                }
            }
            None => {
                self.workers.insert(
                    worker,
                    WorkerSlot {
                        backend,
                        role,
                        inflight: 0,
                        decisions: 0,
                        reported: None,
                        quarantined_until: None,
                        host_pool: None,
                    },
                );
            }
        }
        let host_pool = self.workers.get(&worker).and_then(|s| s.host_pool.clone());
        if let Some(kv) = self.router_of_role(role) {
            kv.add_worker(worker);
            kv.set_host_pool(worker, host_pool);
        }
    }

    /// Names the G2 host pool `worker` shares with the other workers of its machine (from its
    /// card), so the kv router credits that pool's blocks to it.
    pub fn set_host_pool(&mut self, worker: WorkerId, host_pool: Option<String>) {
        let Some(slot) = self.workers.get_mut(&worker) else {
            return;
        };
        slot.host_pool.clone_from(&host_pool);
        if let Some(kv) = self.router_of(worker) {
            kv.set_host_pool(worker, host_pool);
        }
    }

    /// The kv router that indexes workers of `role` (kv mode only).
    fn router_of_role(&mut self, role: WorkerRole) -> Option<&mut KvRouter> {
        match role {
            WorkerRole::Prefill => self.prefill_kv.as_mut(),
            WorkerRole::Aggregated | WorkerRole::Decode => self.kv.as_mut(),
        }
    }

    /// The kv router that indexes `worker` (kv mode, known worker).
    fn router_of(&mut self, worker: WorkerId) -> Option<&mut KvRouter> {
        let role = self.workers.get(&worker)?.role;
        self.router_of_role(role)
    }

    /// Removes `worker`; attempts running on it end on their own. Returns whether it was there.
    pub fn remove_worker(&mut self, worker: WorkerId) -> bool {
        self.resyncing.remove(&worker);
        if let Some(kv) = self.router_of(worker) {
            kv.remove_worker(worker);
        }
        self.workers.remove(&worker).is_some()
    }

    /// Routable (not quarantined) workers of `role`.
    pub fn routable_of(&self, role: WorkerRole) -> usize {
        self.workers
            .values()
            .filter(|slot| slot.role == role && slot.quarantined_until.is_none())
            .count()
    }

    /// The role of `worker`.
    pub fn role_of(&self, worker: WorkerId) -> Option<WorkerRole> {
        self.workers.get(&worker).map(|slot| slot.role)
    }

    /// Workers of `role`, quarantined ones included.
    pub fn count_of(&self, role: WorkerRole) -> usize {
        self.workers
            .values()
            .filter(|slot| slot.role == role)
            .count()
    }

    /// Chooses a prefill worker for a prompt of `tokens`: in kv mode by the prefill workers'
    /// router (prefix overlap and prefill already queued there), else the one with the fewest
    /// prefills in flight. Returns the choice and the prefills it already runs from here.
    pub fn select_prefill(
        &mut self,
        request_id: &str,
        tokens: &[u32],
        now: Instant,
    ) -> Option<(Choice, u64)> {
        self.readmit(now);
        let eligible: Vec<WorkerId> = self
            .workers
            .iter()
            .filter(|(_, slot)| {
                slot.role == WorkerRole::Prefill && slot.quarantined_until.is_none()
            })
            .map(|(id, _)| *id)
            .collect();
        if eligible.is_empty() {
            return None;
        }
        let mut tracking = None;
        let mut worker = None;
        if let Some(kv) = self.prefill_kv.as_mut() {
            let id = format!(
                "{:016x}/{request_id}#{}p",
                self.replica_id, self.next_tracking_id
            );
            self.next_tracking_id += 1;
            match kv.route(&id, tokens, now) {
                Ok(routed) if eligible.contains(&routed.selection.worker) => {
                    worker = Some(routed.selection.worker);
                    tracking = Some(id);
                }
                Ok(_) => {
                    let _ = kv.mark_finished(&id);
                }
                Err(error) => tracing::debug!(request_id, %error, "prefill router"),
            }
        }
        let worker = match worker {
            Some(worker) => worker,
            None => self.least_loaded(&eligible),
        };
        let slot = self
            .workers
            .get_mut(&worker)
            .expect("invariant: the chosen worker is in the pool");
        let queued = slot.inflight;
        slot.inflight += 1;
        slot.decisions += 1;
        Some((
            Choice {
                worker,
                backend: Arc::clone(&slot.backend),
                tracking,
            },
            queued,
        ))
    }

    /// Workers of the pool (quarantined ones included), sorted.
    pub fn workers(&self) -> Vec<WorkerId> {
        self.workers.keys().copied().collect()
    }

    /// Chooses a worker for a request whose prompt (plus tokens already generated) is `tokens`,
    /// never one of `excluded`. `None` when no worker is eligible.
    pub fn select(
        &mut self,
        request_id: &str,
        tokens: &[u32],
        excluded: &[WorkerId],
        siblings: Siblings<'_>,
        now: Instant,
    ) -> Option<Choice> {
        self.readmit(now);
        let usable = |(id, slot): &(&WorkerId, &WorkerSlot)| {
            slot.quarantined_until.is_none() && !excluded.contains(id)
        };
        // Prefill workers generate only when no other worker is left.
        let mut eligible: Vec<WorkerId> = self
            .workers
            .iter()
            .filter(|entry| usable(entry) && entry.1.role != WorkerRole::Prefill)
            .map(|(id, _)| *id)
            .collect();
        if eligible.is_empty() {
            eligible = self
                .workers
                .iter()
                .filter(usable)
                .map(|(id, _)| *id)
                .collect();
        }
        if eligible.is_empty() {
            return None;
        }
        let first_siblings_worker = siblings
            .first
            .and_then(|first| self.sibling_workers.get(first))
            .filter(|(worker, until)| *until > now && eligible.contains(worker))
            .map(|(worker, _)| *worker);
        let (worker, tracking) = match (first_siblings_worker, self.mode) {
            (Some(worker), mode) if mode != RouterMode::Kv => {
                self.sibling_affinity += 1;
                (worker, None)
            }
            _ => self.choose(request_id, tokens, &eligible, now),
        };
        if siblings.announced {
            if self.sibling_workers.len() >= 1024 {
                self.sibling_workers.retain(|_, (_, until)| *until > now);
            }
            self.sibling_workers
                .insert(request_id.to_string(), (worker, now + SIBLING_TTL));
        }
        let slot = self
            .workers
            .get_mut(&worker)
            .expect("invariant: the chosen worker is in the pool");
        slot.inflight += 1;
        slot.decisions += 1;
        tracing::debug!(
            request_id,
            worker = format_args!("{worker:016x}"),
            mode = %self.mode,
            inflight = slot.inflight,
            "routed"
        );
        Some(Choice {
            worker,
            backend: Arc::clone(&slot.backend),
            tracking,
        })
    }

    /// Requests sent to their first sibling's worker.
    pub fn sibling_affinity(&self) -> u64 {
        self.sibling_affinity
    }

    /// The routing mode's pick among `eligible` (not empty).
    fn choose(
        &mut self,
        request_id: &str,
        tokens: &[u32],
        eligible: &[WorkerId],
        now: Instant,
    ) -> (WorkerId, Option<String>) {
        match self.mode {
            RouterMode::RoundRobin => {
                let index = (self.turn % eligible.len() as u64) as usize;
                self.turn += 1;
                (eligible[index], None)
            }
            RouterMode::Random => (eligible[self.rng.random_range(0..eligible.len())], None),
            RouterMode::LeastLoaded => (self.least_loaded(eligible), None),
            RouterMode::Kv => self.kv_choice(request_id, tokens, eligible, now),
        }
    }

    /// Fewest requests in flight from here, then the lowest reported load, then in turn.
    fn least_loaded(&mut self, eligible: &[WorkerId]) -> WorkerId {
        let key = |id: &WorkerId| {
            let slot = &self.workers[id];
            let reported = slot.reported.unwrap_or_default();
            (
                slot.inflight,
                reported.waiting + reported.running,
                reported.active_blocks,
            )
        };
        let best = eligible
            .iter()
            .map(key)
            .min()
            .expect("invariant: eligible is not empty");
        let tied: Vec<WorkerId> = eligible
            .iter()
            .filter(|id| key(id) == best)
            .copied()
            .collect();
        let index = (self.turn % tied.len() as u64) as usize;
        self.turn += 1;
        tied[index]
    }

    fn kv_choice(
        &mut self,
        request_id: &str,
        tokens: &[u32],
        eligible: &[WorkerId],
        now: Instant,
    ) -> (WorkerId, Option<String>) {
        let tracking = format!(
            "{:016x}/{request_id}#{}",
            self.replica_id, self.next_tracking_id
        );
        self.next_tracking_id += 1;
        if !self.remote_requests.is_empty() {
            self.expire_remote_requests(now);
        }
        let kv = self.kv.as_mut().expect("invariant: kv mode has a router");
        match kv.route(&tracking, tokens, now) {
            Ok(routed) if eligible.contains(&routed.selection.worker) => {
                let worker = routed.selection.worker;
                self.publish(ReplicaSync::Routed(routed.decision));
                (worker, Some(tracking))
            }
            Ok(_) => {
                // The router's choice is excluded for this request (it failed here before).
                let _ = kv.mark_finished(&tracking);
                (self.least_loaded(eligible), None)
            }
            Err(error) => {
                tracing::warn!(request_id, %error, "kv router could not route; using least-loaded");
                (self.least_loaded(eligible), None)
            }
        }
    }

    /// The attempt's first token arrived (its prefill is done).
    pub fn first_token(&mut self, tracking: &str) {
        if let Some(kv) = &mut self.prefill_kv {
            if kv.mark_prefill_completed(tracking).is_ok() {
                return;
            }
        }
        if let Some(kv) = &mut self.kv {
            // Unknown when the worker was removed meanwhile; nothing to update then.
            if kv.mark_prefill_completed(tracking).is_ok() {
                self.publish(ReplicaSync::PrefillCompleted {
                    request_id: tracking.to_string(),
                });
            }
        }
    }

    /// An attempt ended (finished, failed or dropped).
    pub fn finish(&mut self, worker: WorkerId, tracking: Option<&str>) {
        if let Some(slot) = self.workers.get_mut(&worker) {
            slot.inflight = slot.inflight.saturating_sub(1);
        }
        if let (Some(kv), Some(tracking)) = (&mut self.prefill_kv, tracking) {
            if kv.mark_finished(tracking).is_ok() {
                return;
            }
        }
        if let (Some(kv), Some(tracking)) = (&mut self.kv, tracking) {
            let _ = kv.mark_finished(tracking);
            // Published even when the worker left meanwhile: the others may still count it.
            self.publish(ReplicaSync::Finished {
                request_id: tracking.to_string(),
            });
        }
    }

    /// Keeps new requests off `worker` for the quarantine period (it looked dead).
    pub fn quarantine(&mut self, worker: WorkerId, now: Instant) {
        if let Some(slot) = self.workers.get_mut(&worker) {
            slot.quarantined_until = Some(now + self.quarantine);
            if let Some(kv) = self.router_of(worker) {
                kv.remove_worker(worker);
            }
        }
    }

    fn readmit(&mut self, now: Instant) {
        let mut readmitted = Vec::new();
        for (id, slot) in &mut self.workers {
            if slot.quarantined_until.is_some_and(|until| until <= now) {
                slot.quarantined_until = None;
                readmitted.push(*id);
            }
        }
        for id in readmitted {
            let host_pool = self.workers.get(&id).and_then(|s| s.host_pool.clone());
            if let Some(kv) = self.router_of(id) {
                kv.add_worker(id);
                kv.set_host_pool(id, host_pool);
            }
        }
    }

    /// Feeds a worker's KV event to the kv router (ignored in other modes). When the event
    /// reveals a gap (events were lost), returns the worker's backend: the caller fetches its
    /// snapshot and hands it to [`complete_resync`](Self::complete_resync) (or calls
    /// [`abandon_resync`](Self::abandon_resync)); until then the worker's events are buffered.
    pub fn apply_kv_event(&mut self, event: &RouterEvent) -> Option<Arc<dyn Backend>> {
        let worker = event.worker_id;
        let slot = self.workers.get(&worker)?;
        let kv = match slot.role {
            WorkerRole::Prefill => self.prefill_kv.as_mut()?,
            _ => self.kv.as_mut()?,
        };
        if let Some(resync) = self.resyncing.get_mut(&worker) {
            if resync.buffered.len() < MAX_BUFFERED_EVENTS {
                resync.buffered.push(event.clone());
            } else {
                resync.overflowed = true;
            }
            return None;
        }
        match kv.apply_event(event) {
            Ok(()) => None,
            Err(rotor_kv_router::Error::EventsInApproximateMode { .. }) => None,
            Err(error @ rotor_kv_router::Error::Gap { .. }) => {
                tracing::info!(%error, worker = format_args!("{worker:016x}"),
                    "KV events were lost; fetching the worker's snapshot");
                self.resyncing.insert(worker, Resync::default());
                Some(Arc::clone(&slot.backend))
            }
            Err(error) => {
                tracing::debug!(%error, "kv event");
                None
            }
        }
    }

    /// Replaces the worker's indexed blocks with `snapshot` and replays the events that came
    /// meanwhile. Returns the backend again when those overflowed the buffer (fetch anew).
    pub fn complete_resync(
        &mut self,
        worker: WorkerId,
        snapshot: KvSnapshot,
    ) -> Option<Arc<dyn Backend>> {
        let resync = self.resyncing.remove(&worker)?;
        let backend = Arc::clone(&self.workers.get(&worker)?.backend);
        let kv = self.router_of(worker)?;
        if let Err(error) = kv.resync_worker(worker, snapshot.block_hashes, snapshot.next_event_id)
        {
            tracing::warn!(%error, "resync");
            return None;
        }
        let mut gap = false;
        for event in &resync.buffered {
            // Stale events (the snapshot already covers them) are refused and skipped.
            if let Err(rotor_kv_router::Error::Gap { .. }) = kv.apply_event(event) {
                gap = true;
            }
        }
        self.resyncs += 1;
        tracing::info!(
            worker = format_args!("{worker:016x}"),
            replayed = resync.buffered.len(),
            next_event_id = snapshot.next_event_id,
            "KV index resynchronised"
        );
        if resync.overflowed || gap {
            self.resyncing.insert(worker, Resync::default());
            return Some(backend);
        }
        None
    }

    /// Gives up resynchronising `worker` (no snapshot to be had): the buffered events are
    /// applied as they are and the index stays flagged for it.
    pub fn abandon_resync(&mut self, worker: WorkerId) {
        let Some(resync) = self.resyncing.remove(&worker) else {
            return;
        };
        let Some(kv) = self.router_of(worker) else {
            return;
        };
        for event in &resync.buffered {
            let _ = kv.apply_event(event);
        }
    }

    /// Resyncs completed since the pool was made.
    pub fn resyncs(&self) -> u64 {
        self.resyncs
    }

    /// Records the load a worker reported.
    pub fn update_load(&mut self, worker: WorkerId, load: WorkerLoad) {
        let Some(slot) = self.workers.get_mut(&worker) else {
            return;
        };
        slot.reported = Some(load);
        if let Some(kv) = self.router_of(worker) {
            kv.update_worker_load(worker, load);
        }
    }

    /// Routable workers now (not quarantined).
    pub fn routable(&self) -> usize {
        self.workers
            .values()
            .filter(|slot| slot.quarantined_until.is_none())
            .count()
    }

    /// Each routable worker's backend and its last reported load.
    pub fn routable_loads(&self) -> Vec<(Arc<dyn Backend>, Option<WorkerLoad>)> {
        self.workers
            .values()
            .filter(|slot| slot.quarantined_until.is_none())
            .map(|slot| (Arc::clone(&slot.backend), slot.reported))
            .collect()
    }

    pub fn figures(&self) -> Vec<WorkerFigures> {
        self.workers
            .iter()
            .map(|(id, slot)| WorkerFigures {
                worker: *id,
                inflight: slot.inflight,
                decisions: slot.decisions,
            })
            .collect()
    }

    /// The kv router's counters (kv mode only).
    pub fn kv_metrics(&self) -> Option<&RouterMetrics> {
        self.kv.as_ref().map(KvRouter::metrics)
    }

    /// Blocks the kv router indexes in each tier (kv mode only; `CacheTier::index` order).
    pub fn kv_indexed_blocks(&self) -> Option<[usize; 4]> {
        let kv = self.kv.as_ref()?;
        Some(rotor_protocol::CacheTier::ALL.map(|tier| kv.indexed_blocks(tier)))
    }
}

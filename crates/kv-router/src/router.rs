//! `KvRouter`: the routing core — prefix index (event-fed or approximate), load tracker, cost
//! and selection — behind one object that a frontend's embedded router or the standalone router
//! service drives from its own task.
//!
//! The caller owns time (`now` arguments), I/O and the worker list (`add_worker` /
//! `remove_worker`, from discovery). A request's life: `route` → `mark_prefill_completed` on its
//! first token → `mark_finished`. Each of these can be published to other replicas as a
//! [`ReplicaSync`] and applied there with `apply_replica_sync`.

use std::collections::BTreeSet;
use std::time::Instant;

use rand::rngs::StdRng;
use rand::SeedableRng;
use rotor_protocol::{CacheTier, RouterEvent, WorkerId};
use rotor_tokens::sequence_hashes;

use crate::approx_index::ApproxIndex;
use crate::config::{IndexMode, KvRouterConfig};
use crate::cost::CostFunction;
use crate::error::Error;
use crate::load_tracker::{LoadTracker, WorkerLoad};
use crate::metrics::RouterMetrics;
use crate::overlap::OverlapScores;
use crate::prefix_index::PrefixIndex;
use crate::replica::{ReplicaSync, RoutingDecision};
use crate::selector::{Candidate, Selection, WorkerSelector};

#[derive(Debug)]
enum Index {
    Events(PrefixIndex),
    Approximate(ApproxIndex),
}

/// The result of routing one request.
#[derive(Debug, Clone, PartialEq)]
pub struct RoutedRequest {
    pub selection: Selection,
    /// What to publish to other router replicas (`ReplicaSync::Routed`).
    pub decision: RoutingDecision,
}

/// The routing core. See the module docs.
#[derive(Debug)]
pub struct KvRouter {
    config: KvRouterConfig,
    selector: WorkerSelector,
    index: Index,
    loads: LoadTracker,
    workers: BTreeSet<WorkerId>,
    rng: StdRng,
    metrics: RouterMetrics,
}

impl KvRouter {
    pub fn new(config: KvRouterConfig) -> Result<Self, Error> {
        let config = config.validate()?;
        let index = match config.index_mode {
            IndexMode::Events => Index::Events(PrefixIndex::new()),
            IndexMode::Approximate { ttl } => Index::Approximate(ApproxIndex::new(ttl)),
        };
        Ok(Self {
            selector: WorkerSelector {
                cost: CostFunction {
                    block_size_tokens: config.block_size_tokens,
                    kv_overlap_weight: config.kv_overlap_weight,
                    queue_weight: config.queue_weight,
                },
                temperature: config.temperature,
                tie_break: config.tie_break,
            },
            index,
            loads: LoadTracker::new(),
            workers: BTreeSet::new(),
            rng: StdRng::seed_from_u64(config.seed),
            metrics: RouterMetrics::default(),
            config,
        })
    }

    pub fn config(&self) -> &KvRouterConfig {
        &self.config
    }

    /// Makes `worker` eligible for routing.
    pub fn add_worker(&mut self, worker: WorkerId) {
        self.workers.insert(worker);
    }

    /// Stops routing to `worker` and forgets its blocks, load and requests.
    pub fn remove_worker(&mut self, worker: WorkerId) {
        self.workers.remove(&worker);
        self.loads.remove_worker(worker);
        match &mut self.index {
            Index::Events(index) => {
                index.remove_worker(worker);
            }
            Index::Approximate(index) => index.remove_worker(worker),
        }
    }

    /// Workers eligible for routing, sorted.
    pub fn workers(&self) -> Vec<WorkerId> {
        self.workers.iter().copied().collect()
    }

    /// Routes a prompt, hashing it with the configured block size.
    pub fn route(
        &mut self,
        request_id: &str,
        tokens: &[u32],
        now: Instant,
    ) -> Result<RoutedRequest, Error> {
        let hashes = sequence_hashes(tokens, self.config.block_size_tokens);
        self.route_hashes(request_id, hashes, tokens.len(), now)
    }

    /// Routes a prompt of `request_tokens` tokens whose full blocks hash to `hashes`.
    pub fn route_hashes(
        &mut self,
        request_id: &str,
        hashes: Vec<u64>,
        request_tokens: usize,
        now: Instant,
    ) -> Result<RoutedRequest, Error> {
        if let Some(worker) = self.loads.worker_of(request_id) {
            return Err(Error::DuplicateRequest {
                request_id: request_id.to_owned(),
                worker,
            });
        }
        let overlaps = self.find_matches(&hashes, now);
        let candidates: Vec<Candidate> = self
            .workers
            .iter()
            .map(|w| Candidate {
                worker: *w,
                overlap: overlaps.overlap(*w),
                load: self.loads.load(*w),
            })
            .collect();
        let selection = self
            .selector
            .select(request_tokens, &candidates, &mut self.rng)?;
        let best_overlap = candidates
            .iter()
            .map(|c| c.overlap.blocks)
            .max()
            .unwrap_or(0);
        let chosen = overlaps.overlap(selection.worker);
        let block = self.config.block_size_tokens as f64;
        let saved_tokens = (chosen.weighted_blocks * block).min(request_tokens as f64);
        let decision = RoutingDecision {
            request_id: request_id.to_owned(),
            worker: selection.worker,
            hashes,
            request_tokens,
            overlap_blocks: selection.terms.overlap_blocks,
            device_overlap_blocks: Some(chosen.device_blocks()),
            prefill_tokens: Some((request_tokens as f64 - saved_tokens).round() as u64),
        };
        self.track(&decision, now)?;
        self.metrics.decisions += 1;
        *self
            .metrics
            .decisions_by_worker
            .entry(selection.worker)
            .or_default() += 1;
        self.metrics.requested_blocks += decision.hashes.len() as u64;
        self.metrics.hit_blocks += decision.overlap_blocks as u64;
        for tier in CacheTier::ALL {
            self.metrics.overlap_blocks_by_tier[tier.index()] +=
                chosen.by_tier[tier.index()] as u64;
        }
        self.metrics.best_overlap_blocks += best_overlap as u64;
        Ok(RoutedRequest {
            selection,
            decision,
        })
    }

    /// Per worker, how many leading blocks of `hashes` it holds in any tier (or is assumed to,
    /// at `now`), weighted by the configured tier weights.
    pub fn find_matches(&self, hashes: &[u64], now: Instant) -> OverlapScores {
        match &self.index {
            Index::Events(index) => index.find_matches_weighted(hashes, &self.config.tier_weights),
            Index::Approximate(index) => index.find_matches(hashes, now),
        }
    }

    /// Names the G2 host pool `worker` shares with the other workers of its machine (from its
    /// card: host id and pool name); `None` = a pool of its own. No-op without events.
    pub fn set_host_pool(&mut self, worker: WorkerId, pool: Option<String>) {
        if let Index::Events(index) = &mut self.index {
            index.set_host_pool(worker, pool);
        }
    }

    /// Blocks the index holds in `tier` (0 in approximate mode but for `device`).
    pub fn indexed_blocks(&self, tier: CacheTier) -> usize {
        match &self.index {
            Index::Events(index) => index.tier_block_count(tier),
            Index::Approximate(index) if tier == CacheTier::Device => index.distinct_blocks(),
            Index::Approximate(_) => 0,
        }
    }

    /// Applies a worker's KV event to the prefix index (see [`PrefixIndex::apply`]).
    pub fn apply_event(&mut self, event: &RouterEvent) -> Result<(), Error> {
        let Index::Events(index) = &mut self.index else {
            return Err(Error::EventsInApproximateMode {
                worker: event.worker_id,
            });
        };
        let result = index.apply(event);
        match &result {
            Ok(()) => self.metrics.events_applied += 1,
            Err(Error::Gap { .. }) => {
                self.metrics.events_applied += 1;
                self.metrics.event_gaps += 1;
            }
            Err(_) => {}
        }
        result
    }

    /// Replaces `worker`'s indexed blocks with a snapshot (see [`PrefixIndex::resync_worker`]).
    pub fn resync_worker(
        &mut self,
        worker: WorkerId,
        hashes: impl IntoIterator<Item = u64>,
        next_event_id: u64,
    ) -> Result<(), Error> {
        match &mut self.index {
            Index::Events(index) => {
                index.resync_worker(worker, hashes, next_event_id);
                Ok(())
            }
            Index::Approximate(_) => Err(Error::EventsInApproximateMode { worker }),
        }
    }

    /// Workers whose events had a gap and that await a resync (none in approximate mode).
    pub fn workers_needing_resync(&self) -> Vec<WorkerId> {
        match &self.index {
            Index::Events(index) => index.workers_needing_resync(),
            Index::Approximate(_) => Vec::new(),
        }
    }

    /// Records the load a worker reported about itself.
    pub fn update_worker_load(&mut self, worker: WorkerId, load: WorkerLoad) {
        self.loads.update_reported(worker, load);
    }

    /// The request's first token arrived.
    pub fn mark_prefill_completed(&mut self, request_id: &str) -> Result<(), Error> {
        self.loads.mark_prefill_completed(request_id)
    }

    /// The request ended; returns the worker it ran on.
    pub fn mark_finished(&mut self, request_id: &str) -> Result<WorkerId, Error> {
        self.loads.mark_finished(request_id)
    }

    /// Applies what another router replica published.
    pub fn apply_replica_sync(&mut self, sync: &ReplicaSync, now: Instant) -> Result<(), Error> {
        match sync {
            ReplicaSync::Routed(decision) => {
                self.track(decision, now)?;
                self.metrics.remote_decisions += 1;
                Ok(())
            }
            ReplicaSync::PrefillCompleted { request_id } => {
                self.loads.mark_prefill_completed(request_id)
            }
            ReplicaSync::Finished { request_id } => {
                self.loads.mark_finished(request_id).map(|_| ())
            }
        }
    }

    pub fn metrics(&self) -> &RouterMetrics {
        &self.metrics
    }

    pub fn load_tracker(&self) -> &LoadTracker {
        &self.loads
    }

    /// The event-fed index (`None` in approximate mode).
    pub fn prefix_index(&self) -> Option<&PrefixIndex> {
        match &self.index {
            Index::Events(index) => Some(index),
            Index::Approximate(_) => None,
        }
    }

    /// Adds a decision's load and, without events, its assumed-cached prefix.
    fn track(&mut self, decision: &RoutingDecision, now: Instant) -> Result<(), Error> {
        let cost = &self.selector.cost;
        let cached_tokens =
            (decision.overlap_blocks * cost.block_size_tokens).min(decision.request_tokens);
        let prefill_tokens = decision
            .prefill_tokens
            .unwrap_or((decision.request_tokens - cached_tokens) as u64);
        // Its prefix blocks the worker already holds in its pool are shared with the sequences
        // (or the cache entries) that put them there, so they count once (see `CostFunction`).
        let shared = decision
            .device_overlap_blocks
            .unwrap_or(decision.overlap_blocks);
        let new_blocks = cost.new_blocks(decision.request_tokens, shared);
        self.loads.add_request(
            &decision.request_id,
            decision.worker,
            prefill_tokens,
            new_blocks as u64,
        )?;
        if let Index::Approximate(index) = &mut self.index {
            index.record_routed(decision.worker, &decision.hashes, now);
        }
        Ok(())
    }
}

//! `EngineCore`: the synchronous engine — scheduler + runner + sampler, advanced one step at a
//! time. `Engine` drives one on its own thread; tests and simulators can drive one directly.

use std::sync::Arc;

use rotor_protocol::{ErrorKind, FinishReason, GenerateRequest, TokenIds, WireError};

use crate::config::EngineConfig;
use crate::error::Error;
use crate::kv_events::{KvEventFeed, KvEventReader, KV_EVENT_RING_CAPACITY};
use crate::kv_transfer::{self, KvExport, KvExportSelector, KvImportReport, KvTransferError};
use crate::runner::{ModelRunner, ScheduledChunk};
use crate::sampler::Sampler;
use crate::scheduler::{Scheduler, StepPlan};
use crate::sequence::{OutputSender, Sequence};
use crate::stats::EngineStats;
use crate::validate::{validate_request, RequestLimits};

/// One chunk of the last step, for logs and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkReport {
    pub request_id: Arc<str>,
    pub start_pos: usize,
    pub len: usize,
    pub want_logits: bool,
}

/// What the last step did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StepReport {
    pub chunks: Vec<ChunkReport>,
    /// Requests preempted (by recompute) while building the step.
    pub preempted: Vec<Arc<str>>,
}

/// Scheduler, runner and sampler of one engine, without a thread.
pub struct EngineCore {
    runner: Box<dyn ModelRunner>,
    scheduler: Scheduler,
    sampler: Sampler,
    limits: RequestLimits,
    plan: StepPlan,
    logits: Vec<f32>,
    /// Tokens a runner chose itself (`ModelRunner::step_tokens`).
    chosen: Vec<u32>,
    /// The runner's view of the step, kept empty between steps only to reuse its allocation.
    chunk_buf: Vec<ScheduledChunk<'static>>,
    finished: Vec<usize>,
    report: StepReport,
    stats: EngineStats,
    kv_events: KvEventFeed,
}

impl EngineCore {
    /// Validates `cfg` and checks it against the runner.
    pub fn new(runner: Box<dyn ModelRunner>, cfg: &EngineConfig) -> Result<Self, Error> {
        cfg.validate()?;
        if runner.vocab_size() == 0 {
            return Err(Error::EmptyRunner { what: "vocab size" });
        }
        if runner.context_length() == 0 {
            return Err(Error::EmptyRunner {
                what: "context length",
            });
        }
        if let Some(layout) = runner.kv_layout() {
            if layout.num_blocks != cfg.num_blocks
                || layout.block_size_tokens != cfg.block_size_tokens
            {
                return Err(Error::KvLayoutMismatch {
                    runner_blocks: layout.num_blocks,
                    runner_block_size: layout.block_size_tokens,
                    config_blocks: cfg.num_blocks,
                    config_block_size: cfg.block_size_tokens,
                });
            }
        }
        let limits = RequestLimits {
            vocab_size: runner.vocab_size(),
            context_length: runner.context_length(),
            pool_capacity_tokens: cfg.pool_capacity_tokens(),
        };
        let stats = EngineStats {
            blocks_total: cfg.num_blocks,
            ..EngineStats::default()
        };
        Ok(Self {
            runner,
            scheduler: Scheduler::new(cfg),
            sampler: Sampler::new(),
            limits,
            plan: StepPlan::default(),
            logits: Vec::new(),
            chosen: Vec::new(),
            chunk_buf: Vec::new(),
            finished: Vec::new(),
            report: StepReport::default(),
            stats,
            kv_events: KvEventFeed::new(KV_EVENT_RING_CAPACITY),
        })
    }

    pub fn limits(&self) -> RequestLimits {
        self.limits
    }

    /// Validates and queues a request; its outputs go to `output`.
    pub fn submit(&mut self, req: GenerateRequest, output: OutputSender) -> Result<(), WireError> {
        validate_request(&req, &self.limits)?;
        if self.scheduler.contains(&req.id) {
            return Err(WireError::new(
                ErrorKind::InvalidRequest,
                format!("request id {:?} is already in flight", req.id),
            ));
        }
        self.scheduler
            .add(Sequence::new(req, self.limits.context_window(), output));
        self.refresh_stats();
        Ok(())
    }

    /// Cancels a request: frees its blocks and sends a final `Cancelled` output. Unknown ids
    /// (already finished) are ignored.
    pub fn cancel(&mut self, request_id: &str) -> bool {
        let Some(mut seq) = self.scheduler.remove(request_id) else {
            return false;
        };
        seq.send(TokenIds::new(), Some(FinishReason::Cancelled));
        self.refresh_stats();
        true
    }

    /// Fails every in-flight request with `err` and frees all blocks.
    pub fn fail_all(&mut self, err: &WireError) {
        for seq in self.scheduler.drain() {
            seq.fail(err.clone());
        }
        self.refresh_stats();
    }

    pub fn has_work(&self) -> bool {
        self.scheduler.has_work()
    }

    pub fn stats(&self) -> EngineStats {
        self.stats
    }

    /// A reader of this engine's KV events (stored / removed / cleared), from event 0.
    pub fn subscribe_kv_events(&self) -> KvEventReader {
        self.kv_events.subscribe()
    }

    pub fn scheduler(&self) -> &Scheduler {
        &self.scheduler
    }

    /// What the last `step` ran.
    pub fn last_step(&self) -> &StepReport {
        &self.report
    }

    /// Runs one step: drops abandoned requests, schedules, runs the model, samples and sends.
    /// Returns false if there was nothing to do: no chunk to run and no abandoned request to
    /// drop (so `has_work()` before a step that returns false means the engine is stuck).
    pub fn step(&mut self) -> bool {
        let dropped = self.scheduler.remove_abandoned();
        self.scheduler.schedule(&mut self.plan);
        self.fill_report();
        if self.plan.chunks.is_empty() {
            self.refresh_stats();
            return dropped > 0;
        }
        let result = {
            let mut chunks = reuse_empty(std::mem::take(&mut self.chunk_buf));
            self.scheduler.chunks_into(&self.plan, &mut chunks);
            // A runner that picks tokens itself (the mocker) skips logits and sampling.
            self.chosen.clear();
            let result = match self.runner.step_tokens(&chunks, &mut self.chosen) {
                Ok(true) => Ok(true),
                Ok(false) => self.runner.step(&chunks, &mut self.logits).map(|()| false),
                Err(e) => Err(e),
            };
            self.chunk_buf = reuse_empty(chunks);
            result
        };
        self.stats.steps += 1;
        self.stats.tokens_processed += self.plan.num_tokens() as u64;
        let n_want = self.plan.chunks.iter().filter(|c| c.want_logits).count();
        let vocab = self.limits.vocab_size;
        let chose_tokens = matches!(result, Ok(true));
        let failure = match result {
            Err(e) => Some(e.to_string()),
            Ok(true) if self.chosen.len() != n_want => Some(format!(
                "runner chose {} tokens, expected {n_want}",
                self.chosen.len()
            )),
            Ok(false) if self.logits.len() < n_want * vocab => Some(format!(
                "runner returned {} logits, expected {n_want} rows × {vocab}",
                self.logits.len()
            )),
            Ok(_) => None,
        };
        match failure {
            Some(message) => self.fail_planned(&message),
            None if chose_tokens => self.send_chosen(),
            None => self.sample_and_send(vocab),
        }
        self.refresh_stats();
        true
    }

    fn sample_and_send(&mut self, vocab: usize) {
        self.scheduler.commit(&self.plan);
        let running = self.scheduler.running_mut();
        let wanted = self.plan.chunks.iter().filter(|c| c.want_logits);
        for (c, logits) in wanted.zip(self.logits.chunks_exact_mut(vocab)) {
            let seq = &mut running[c.seq];
            let token = self
                .sampler
                .sample(logits, &seq.sampling, &seq.penalties, &mut seq.rng);
            let finish = seq.push_token(token);
            let delivered = seq.send(TokenIds::one(token), finish);
            self.stats.tokens_generated += 1;
            if finish.is_some() || !delivered {
                self.finished.push(c.seq);
            }
        }
        self.scheduler.retire(&mut self.finished);
    }

    /// Like `sample_and_send`, with the tokens the runner chose.
    fn send_chosen(&mut self) {
        self.scheduler.commit(&self.plan);
        let running = self.scheduler.running_mut();
        let wanted = self.plan.chunks.iter().filter(|c| c.want_logits);
        for (c, &token) in wanted.zip(&self.chosen) {
            let seq = &mut running[c.seq];
            let finish = seq.push_token(token);
            let delivered = seq.send(TokenIds::one(token), finish);
            self.stats.tokens_generated += 1;
            if finish.is_some() || !delivered {
                self.finished.push(c.seq);
            }
        }
        self.scheduler.retire(&mut self.finished);
    }

    fn fail_planned(&mut self, message: &str) {
        tracing::error!(error = message, "engine step failed; failing its sequences");
        let err = WireError::new(ErrorKind::Internal, format!("model step failed: {message}"));
        for c in &self.plan.chunks {
            self.scheduler.running()[c.seq].fail(err.clone());
            self.finished.push(c.seq);
        }
        self.scheduler.retire(&mut self.finished);
    }

    fn fill_report(&mut self) {
        let running = self.scheduler.running();
        self.report.chunks.clear();
        self.report
            .chunks
            .extend(self.plan.chunks.iter().map(|c| ChunkReport {
                request_id: running[c.seq].id.clone(),
                start_pos: c.start,
                len: c.len,
                want_logits: c.want_logits,
            }));
        self.report.preempted.clone_from(&self.plan.preempted);
    }

    fn refresh_stats(&mut self) {
        let s = &mut self.stats;
        s.running = self.scheduler.num_running();
        s.waiting = self.scheduler.num_waiting();
        s.preemptions = self.scheduler.num_preemptions();
        let kv = self.scheduler.kv_blocks_mut();
        s.blocks_used = kv.num_used();
        let cache = kv.stats();
        s.prefix_cache_queries_tokens = cache.queries_tokens;
        s.prefix_cache_hit_tokens = cache.hit_tokens;
        s.prefix_cache_recompute_queries_tokens = cache.recompute_queries_tokens;
        s.prefix_cache_recompute_hit_tokens = cache.recompute_hit_tokens;
        s.prefix_cache_evictions = cache.evictions;
        self.kv_events.publish(kv.drain_events());
    }

    /// Copies the longest cached prefix of `selector` out of the pool in the KV block format,
    /// pinning each block while it is copied (see `kv_transfer`).
    pub fn export_kv(&mut self, selector: &KvExportSelector) -> Result<KvExport, KvTransferError> {
        let kv = self.scheduler.kv_blocks_mut();
        let result = kv_transfer::export(
            kv,
            self.runner.as_ref(),
            selector,
            &mut self.stats.kv_transfer,
        );
        self.refresh_stats();
        result
    }

    /// Imports encoded blocks (in chain order) into the pool and the prefix cache, stopping at
    /// the first refused block (see `kv_transfer`). `Stored` events are published at once.
    pub fn import_kv(&mut self, blocks: &[Vec<u8>]) -> Result<KvImportReport, KvTransferError> {
        let kv = self.scheduler.kv_blocks_mut();
        let result = kv_transfer::import(
            kv,
            self.runner.as_mut(),
            blocks,
            &mut self.stats.kv_transfer,
        );
        self.refresh_stats();
        result
    }

    /// Every block hash the prefix cache holds (in use or cached-free, ascending) and the id of
    /// the next KV event. Publishes pending pool events first, so every event before
    /// `next_event_id` is in the ring and the snapshot is consistent with the stream.
    pub fn kv_snapshot(&mut self) -> rotor_protocol::KvSnapshot {
        let kv = self.scheduler.kv_blocks_mut();
        self.kv_events.publish(kv.drain_events());
        rotor_protocol::KvSnapshot {
            block_hashes: kv.pool().cached_hashes(),
            next_event_id: kv.pool().next_event_id(),
        }
    }
}

/// Empties `v` and hands its allocation back under another lifetime, so a per-step buffer of
/// borrowed chunks can live in a struct between steps. Collecting a `Vec`'s own `into_iter` into
/// an element type of the same size and alignment reuses the allocation (std's in-place collect;
/// `tests/no_alloc.rs` checks that no step allocates).
pub(crate) fn reuse_empty<'a, 'b>(mut v: Vec<ScheduledChunk<'a>>) -> Vec<ScheduledChunk<'b>> {
    v.clear();
    v.into_iter()
        .map(|_| unreachable!("invariant: the vector was emptied"))
        .collect()
}

//! `EngineCore`: the synchronous engine — scheduler + runner + sampler, advanced one step at a
//! time. `Engine` drives one on its own thread; tests and simulators can drive one directly.

use std::sync::Arc;

use std::time::{Duration, Instant};

use rotor_kv_cache::{KvLoaded, KvTiers, KvTiersConfig};
use rotor_protocol::{
    EngineOutput, ErrorKind, FinishReason, GenerateRequest, TokenIds, TokenLogprob, WireError,
};

use crate::config::EngineConfig;
use crate::constraint::{Accepted, ConstraintCounters, ConstraintVocab, SeqConstraint};
use crate::error::{Error, RunnerError};
use crate::kv_events::{KvEventFeed, KvEventReader, KV_EVENT_RING_CAPACITY};
use crate::kv_offload;
use crate::kv_transfer::{self, KvExport, KvExportSelector, KvImportReport, KvTransferError};
use crate::prompt_outputs::PromptResult;
use crate::runner::{ChunkOutputKind, ModelRunner, ScheduledChunk};
use crate::sampler::{apply_logit_bias, apply_penalties, token_logprob, Sampler};
use crate::scheduler::{Scheduler, StepPlan};
use crate::sequence::{OutputSender, Sequence, TierLoad};
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
    /// G2/G3 offload tiers, if configured (`with_kv_tiers`).
    tiers: Option<KvTiers>,
    /// Loads from the tiers received by `wait_for_kv_load`, imported by the next step.
    finished_loads: Vec<KvLoaded>,
    next_load_ticket: u64,
    /// The vocabulary constraints are compiled against (`with_constraint_vocab`, or the
    /// runner's); `None`: constrained requests are refused.
    constraint_vocab: Option<Arc<ConstraintVocab>>,
    constraint_counters: Arc<ConstraintCounters>,
    /// This step's constrained sequences (index in `running`) with their matchers, taken out
    /// while the mask helper computes their masks during the forward pass.
    mask_jobs: Vec<(usize, Box<SeqConstraint>)>,
    /// Forced tokens of one fast-forward.
    forced: Vec<u32>,
    /// Per-chunk outputs of a step with prompt outputs (`ModelRunner::step_outputs`).
    output_kinds: Vec<ChunkOutputKind>,
    /// Hidden-state rows of such a step.
    hidden: Vec<f32>,
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
            prompt_outputs: runner.supports_step_outputs(),
        };
        let stats = EngineStats {
            blocks_total: cfg.num_blocks,
            ..EngineStats::default()
        };
        let constraint_vocab = runner.constraint_vocab();
        if let Some(v) = &constraint_vocab {
            check_vocab(v, runner.vocab_size())?;
        }
        let mut scheduler = Scheduler::new(cfg);
        if runner.supports_kv_copy() {
            scheduler.kv_blocks_mut().enable_copy_on_write();
        }
        Ok(Self {
            runner,
            scheduler,
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
            tiers: None,
            finished_loads: Vec::new(),
            next_load_ticket: 0,
            constraint_vocab,
            constraint_counters: Arc::default(),
            mask_jobs: Vec::new(),
            forced: Vec::new(),
            output_kinds: Vec::new(),
            hidden: Vec::new(),
        })
    }

    /// Enables grammar-constrained requests with this vocabulary (it must cover the runner's
    /// vocabulary exactly); replaces the runner's, if it gave one.
    pub fn with_constraint_vocab(mut self, vocab: Arc<ConstraintVocab>) -> Result<Self, Error> {
        check_vocab(&vocab, self.limits.vocab_size)?;
        self.constraint_vocab = Some(vocab);
        Ok(self)
    }

    /// The vocabulary constraints are compiled against, if any.
    pub fn constraint_vocab(&self) -> Option<&Arc<ConstraintVocab>> {
        self.constraint_vocab.as_ref()
    }

    pub(crate) fn constraint_counters(&self) -> &Arc<ConstraintCounters> {
        &self.constraint_counters
    }

    /// [`new`](Self::new) with offload tiers behind the pool (see `kv_offload`): evicted cached
    /// blocks are written back to G2 (shared host memory) / G3 (disk), and a waiting request's
    /// prefix found there is onboarded before its admission. Needs prefix caching and a runner
    /// with KV bytes. A config with no tier is the same as `new`.
    pub fn with_kv_tiers(
        runner: Box<dyn ModelRunner>,
        cfg: &EngineConfig,
        tiers_cfg: &KvTiersConfig,
    ) -> Result<Self, Error> {
        let mut core = Self::new(runner, cfg)?;
        if !tiers_cfg.is_enabled() {
            return Ok(core);
        }
        if !cfg.enable_prefix_caching {
            return Err(Error::KvTiersUnsupported {
                reason: "prefix caching is disabled",
            });
        }
        let layout = core
            .runner
            .kv_block_layout()
            .ok_or(Error::KvTiersUnsupported {
                reason: "the runner cannot export or import KV blocks",
            })?;
        let tiers = KvTiers::open(tiers_cfg, layout).map_err(Error::KvTiers)?;
        warn_on_small_tiers(cfg, tiers_cfg, tiers.block_bytes());
        core.scheduler.kv_blocks_mut().record_evictions();
        core.tiers = Some(tiers);
        core.refresh_stats();
        Ok(core)
    }

    /// Waits until every block offloaded so far is written to its tier (tests, benchmarks),
    /// and publishes the tier events those writes made.
    pub fn flush_kv_tiers(&mut self) {
        if let Some(tiers) = &self.tiers {
            tiers.flush();
        }
        self.refresh_stats();
    }

    pub fn limits(&self) -> RequestLimits {
        self.limits
    }

    /// Validates and queues a request (compiling its constraint); its outputs go to `output`.
    pub fn submit(&mut self, req: GenerateRequest, output: OutputSender) -> Result<(), WireError> {
        validate_request(&req, &self.limits)?;
        let constraint = compile_constraint(
            self.constraint_vocab.as_deref(),
            &req,
            &self.constraint_counters,
        )?;
        self.submit_compiled(req, constraint, output)
    }

    /// `submit` of a validated request whose constraint was compiled by the caller
    /// (`EngineHandle::submit` compiles on the caller's thread, not the engine's).
    pub(crate) fn submit_compiled(
        &mut self,
        req: GenerateRequest,
        constraint: Option<Box<SeqConstraint>>,
        output: OutputSender,
    ) -> Result<(), WireError> {
        if self.scheduler.contains(&req.id) {
            return Err(WireError::new(
                ErrorKind::InvalidRequest,
                format!("request id {:?} is already in flight", req.id),
            ));
        }
        let mut seq = Sequence::new(req, self.limits.context_window(), output);
        seq.constraint = constraint;
        self.scheduler.add(seq);
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

    /// The counters as of the last step or command; the offload tiers' as of now (their
    /// writer thread moves them between steps).
    pub fn stats(&self) -> EngineStats {
        let mut s = self.stats;
        if let Some(tiers) = &self.tiers {
            s.kv_tiers = tiers.stats();
        }
        s.constraints = self.constraint_counters.snapshot();
        s
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
    /// drop (so `has_work()` before a step that returns false means the engine is stuck, unless
    /// `kv_loads_pending()`: then `wait_for_kv_load` and step again).
    pub fn step(&mut self) -> bool {
        let dropped = self.scheduler.remove_abandoned();
        self.onboard_waiting();
        self.scheduler.schedule(&mut self.plan);
        if let Some(tiers) = &self.tiers {
            // Before the runner overwrites the blocks this step's allocations evicted.
            kv_offload::offload_evicted(
                self.scheduler.kv_blocks_mut(),
                self.runner.as_ref(),
                tiers,
            );
        }
        // Copy-on-write admissions: their blocks' copies, before anything writes to them.
        let copy_failure = self.copy_blocks();
        self.fill_report();
        if self.plan.chunks.is_empty() {
            self.refresh_stats();
            return dropped > 0;
        }
        if let Some(message) = copy_failure {
            self.fail_planned(&message);
            self.refresh_stats();
            return true;
        }
        self.take_mask_jobs();
        let prompt_outputs = self.plan_output_kinds();
        let result = {
            let mut chunks = reuse_empty(std::mem::take(&mut self.chunk_buf));
            self.scheduler.chunks_into(&self.plan, &mut chunks);
            // A runner that picks tokens itself (the mocker) skips logits and sampling.
            self.chosen.clear();
            let (runner, chosen, logits) = (&mut self.runner, &mut self.chosen, &mut self.logits);
            let (kinds, hidden) = (&self.output_kinds, &mut self.hidden);
            let (jobs, counters) = (&mut self.mask_jobs, &*self.constraint_counters);
            let mut forward = || {
                if prompt_outputs {
                    // Only steps with a scoring or embedding chunk leave the fast path.
                    return match runner.step_outputs(&chunks, kinds, logits, hidden) {
                        Ok(true) => Ok(false),
                        Ok(false) => Err(RunnerError::InvalidBatch(
                            "the runner cannot compute prompt outputs".into(),
                        )),
                        Err(e) => Err(e),
                    };
                }
                match runner.step_tokens(&chunks, chosen) {
                    Ok(true) => Ok(true),
                    Ok(false) => runner.step(&chunks, logits).map(|()| false),
                    Err(e) => Err(e),
                }
            };
            let result = if jobs.is_empty() {
                // No constrained sequence samples: no helper (and no allocation).
                forward()
            } else {
                std::thread::scope(|scope| {
                    // Constrained sequences' masks are computed on a helper thread while the
                    // forward pass runs; the engine thread waits for it only after the forward.
                    let helper = std::thread::Builder::new()
                        .name("rotor-mask".into())
                        .spawn_scoped(scope, move || {
                            for (_, c) in jobs.iter_mut() {
                                counters.mask(c.compute_mask());
                            }
                        });
                    let result = forward();
                    let waited = Instant::now();
                    match helper {
                        Ok(handle) => {
                            // A panic leaves masks uncomputed: those sequences fail at sampling.
                            let _ = handle.join();
                            counters.mask_wait(waited.elapsed());
                        }
                        // No mask: the step's constrained sequences fail at sampling.
                        Err(e) => tracing::error!(error = %e, "cannot start the mask thread"),
                    }
                    result
                })
            };
            self.chunk_buf = reuse_empty(chunks);
            result
        };
        self.restore_mask_jobs();
        self.stats.steps += 1;
        self.stats.tokens_processed += self.plan.num_tokens() as u64;
        let n_want = self.plan.chunks.iter().filter(|c| c.want_logits).count();
        let vocab = self.limits.vocab_size;
        let chose_tokens = matches!(result, Ok(true));
        let failure = match result {
            Err(e) => Some(e.to_string()),
            Ok(false) if prompt_outputs => self.collect_prompt_outputs(vocab).err(),
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

    /// Fills `output_kinds` for this step if one of its chunks collects prompt outputs; returns
    /// whether one does (otherwise the step takes the fast path and `output_kinds` is unused).
    fn plan_output_kinds(&mut self) -> bool {
        let running = self.scheduler.running();
        let chunks = &self.plan.chunks;
        if !chunks.iter().any(|c| running[c.seq].needs_full_prompt()) {
            return false;
        }
        self.output_kinds.clear();
        self.output_kinds.extend(chunks.iter().map(|c| {
            match (&running[c.seq].prompt_outputs, c.want_logits) {
                (Some(p), _) => p.kind(),
                (None, true) => ChunkOutputKind::LastLogits,
                (None, false) => ChunkOutputKind::Nothing,
            }
        }));
        true
    }

    /// After a `step_outputs` step: hands each collecting sequence its rows, compacts `logits`
    /// to one row per chunk with `want_logits` (what sampling expects), and delivers the prompt
    /// outputs of every prompt that is now fully computed. A sequence that samples nothing
    /// (an embedding, or scoring with `max_tokens` 0) is sent its only output and finishes.
    fn collect_prompt_outputs(&mut self, vocab: usize) -> Result<(), String> {
        let kinds = &self.output_kinds;
        let chunks = &self.plan.chunks;
        let (mut logit_rows, mut hidden_rows) = (0, 0);
        for (c, &kind) in chunks.iter().zip(kinds) {
            match kind {
                ChunkOutputKind::Hidden => hidden_rows += output_rows(kind, c.len),
                _ => logit_rows += output_rows(kind, c.len),
            }
        }
        if self.logits.len() != logit_rows * vocab {
            return Err(format!(
                "runner returned {} logits, expected {logit_rows} rows × {vocab}",
                self.logits.len()
            ));
        }
        let dim = match hidden_rows {
            0 => 0,
            n if self.hidden.len().is_multiple_of(n) && !self.hidden.is_empty() => {
                self.hidden.len() / n
            }
            n => {
                return Err(format!(
                    "runner returned {} hidden values for {n} rows",
                    self.hidden.len()
                ))
            }
        };
        let running = self.scheduler.running_mut();
        let (mut logit_row, mut hidden_row, mut kept) = (0, 0, 0);
        for (c, &kind) in chunks.iter().zip(kinds) {
            let seq = &mut running[c.seq];
            let rows = output_rows(kind, c.len);
            if kind == ChunkOutputKind::Hidden {
                let values = &self.hidden[hidden_row * dim..(hidden_row + rows) * dim];
                if let Some(p) = seq.prompt_outputs.as_mut() {
                    p.add_hidden(values, dim);
                }
                hidden_row += rows;
                continue;
            }
            if kind == ChunkOutputKind::AllLogits {
                let values = &self.logits[logit_row * vocab..(logit_row + rows) * vocab];
                if let Some(p) = seq.prompt_outputs.as_mut() {
                    p.add_logits(&seq.tokens[..seq.prompt_len], c.start, values, vocab);
                }
            }
            if c.want_logits && rows > 0 {
                // This chunk's last row is the one its sequence samples from.
                let last = (logit_row + rows - 1) * vocab;
                self.logits.copy_within(last..last + vocab, kept * vocab);
                kept += 1;
            }
            logit_row += rows;
        }
        self.logits.truncate(kept * vocab);
        let n_want = chunks.iter().filter(|c| c.want_logits).count();
        if kept != n_want {
            return Err(format!("{kept} sampling rows for {n_want} sampling chunks"));
        }
        for c in chunks {
            let seq = &mut running[c.seq];
            if seq.prompt_outputs.is_none() || c.start + c.len < seq.prompt_len {
                continue;
            }
            let result = seq
                .prompt_outputs
                .take()
                .expect("invariant: checked just above")
                .finish();
            let finished = match result {
                PromptResult::Logprobs(rows) => {
                    self.stats.prompt_logprob_requests += 1;
                    seq.prompt_logprobs = Some(rows);
                    // With max_tokens 0 nothing is sampled: the scores are the only output.
                    (!c.want_logits).then(|| EngineOutput {
                        token_ids: TokenIds::new(),
                        finish_reason: Some(FinishReason::Length),
                        cached_prompt_tokens: None,
                        logprobs: None,
                        prompt_logprobs: None,
                        embedding: None,
                    })
                }
                PromptResult::Embedding(embedding) => {
                    self.stats.embedding_requests += 1;
                    Some(EngineOutput {
                        token_ids: TokenIds::new(),
                        finish_reason: Some(FinishReason::Stop),
                        cached_prompt_tokens: None,
                        logprobs: None,
                        prompt_logprobs: None,
                        embedding: Some(embedding),
                    })
                }
            };
            if let Some(out) = finished {
                seq.send_output(out);
                self.finished.push(c.seq);
            }
        }
        Ok(())
    }

    /// Onboarding from the offload tiers (see `kv_offload`): imports the loads that finished
    /// (their requests become admissible), then starts a lookup-and-load for each waiting
    /// request the next admission could take that was not looked up yet.
    fn onboard_waiting(&mut self) {
        let Some(tiers) = &self.tiers else {
            return;
        };
        self.finished_loads
            .extend(std::iter::from_fn(|| tiers.try_loaded()));
        let (waiting, kv, slots) = self.scheduler.waiting_with_kv_mut();
        for loaded in self.finished_loads.drain(..) {
            let ticket = loaded.ticket;
            let owner = waiting.iter_mut().find(
                |s| matches!(s.tier_load, TierLoad::Loading { ticket: t, .. } if t == ticket),
            );
            // No owner: the request was cancelled while loading; its blocks are dropped.
            if let Some(seq) = owner {
                let to = kv_offload::Onboarding {
                    kv: &mut *kv,
                    runner: self.runner.as_mut(),
                    tiers,
                    transfer: &mut self.stats.kv_transfer,
                };
                kv_offload::finish_onboard(to, seq, loaded);
            }
        }
        // A sequence collecting prompt outputs computes every position: nothing to onboard.
        let candidates = waiting
            .iter_mut()
            .filter(|s| !matches!(s.tier_load, TierLoad::Loading { .. }) && !s.needs_full_prompt())
            .take(slots);
        for seq in candidates {
            if seq.tier_load == TierLoad::Unchecked {
                self.next_load_ticket += 1;
                kv_offload::start_onboard(kv, tiers, seq, self.next_load_ticket);
            }
        }
    }

    /// Whether a waiting request's prefix is being loaded from the offload tiers (it will be
    /// admitted after a later step imports it, without a new command).
    pub fn kv_loads_pending(&self) -> bool {
        self.tiers.is_some()
            && self
                .scheduler
                .waiting()
                .any(|s| matches!(s.tier_load, TierLoad::Loading { .. }))
    }

    /// Waits up to `timeout` for a load from the offload tiers to finish (for a caller with
    /// nothing to step meanwhile); the next `step` imports it.
    pub fn wait_for_kv_load(&mut self, timeout: Duration) {
        if let Some(loaded) = self.tiers.as_ref().and_then(|t| t.wait_loaded(timeout)) {
            self.finished_loads.push(loaded);
        }
    }

    /// Takes the matchers of this step's constrained sequences that sample, for the mask helper.
    fn take_mask_jobs(&mut self) {
        self.mask_jobs.clear();
        let running = self.scheduler.running_mut();
        for c in self.plan.chunks.iter().filter(|c| c.want_logits) {
            if let Some(con) = running[c.seq].constraint.take() {
                self.mask_jobs.push((c.seq, con));
            }
        }
    }

    fn restore_mask_jobs(&mut self) {
        let running = self.scheduler.running_mut();
        for (i, con) in self.mask_jobs.drain(..) {
            running[i].constraint = Some(con);
        }
    }

    /// For each sampling sequence: logit bias → constraint mask → penalties → (logprobs) →
    /// draw; then the constraint accepts the token and fast-forwards what it forces.
    fn sample_and_send(&mut self, vocab: usize) {
        self.scheduler.commit(&self.plan);
        let running = self.scheduler.running_mut();
        let wanted = self.plan.chunks.iter().filter(|c| c.want_logits);
        for (c, logits) in wanted.zip(self.logits.chunks_exact_mut(vocab)) {
            let seq = &mut running[c.seq];
            apply_logit_bias(logits, &seq.sampling.logit_bias);
            let mut constraint = seq.constraint.take();
            if let Some(con) = constraint.as_deref_mut() {
                if let Err(message) = con.apply_mask(logits) {
                    self.constraint_counters.failure();
                    seq.fail(WireError::new(ErrorKind::Internal, message));
                    self.finished.push(c.seq);
                    continue;
                }
            }
            apply_penalties(logits, &seq.sampling, &seq.penalties);
            let token = self.sampler.draw(logits, &seq.sampling, &mut seq.rng);
            let top = seq.sampling.logprobs.map(|n| n as usize);
            let mut logprobs = top.map(|n| vec![token_logprob(logits, token, n)]);
            let mut tokens = TokenIds::one(token);
            let mut finish = seq.push_token(token);
            if let Some(con) = constraint.as_deref_mut() {
                if con.is_eos(token) {
                    // The mask allows eos only where the grammar is complete.
                    finish = Some(FinishReason::Stop);
                } else {
                    match con.accept(token) {
                        Err(message) => {
                            self.constraint_counters.failure();
                            seq.fail(WireError::new(ErrorKind::Internal, message));
                            self.finished.push(c.seq);
                            continue;
                        }
                        Ok(Accepted::Complete) => finish = Some(FinishReason::Stop),
                        Ok(Accepted::Continue) if finish.is_none() => {
                            let room = seq.max_total_len.saturating_sub(seq.tokens.len());
                            con.fast_forward(room, &mut self.forced);
                            let mut pushed = 0;
                            for &t in &self.forced {
                                tokens.push(t);
                                if let (Some(lp), Some(n)) = (logprobs.as_mut(), top) {
                                    lp.push(forced_logprob(t, n));
                                }
                                pushed += 1;
                                finish = seq.push_token(t);
                                if finish.is_some() {
                                    break;
                                }
                            }
                            self.constraint_counters.forced(pushed);
                            if finish.is_none() && con.is_complete() {
                                finish = Some(FinishReason::Stop);
                            }
                        }
                        Ok(Accepted::Continue) => {}
                    }
                }
            }
            seq.constraint = constraint;
            self.stats.tokens_generated += tokens.len() as u64;
            let delivered = seq.send_with_logprobs(tokens, finish, logprobs);
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

    /// When the first prompt block kept for siblings expires, if one is kept (see `kv_blocks`).
    pub fn kept_tails_expiry(&self) -> Option<Instant> {
        self.scheduler.kv_blocks().next_tail_expiry()
    }

    /// Releases the kept prompt blocks whose time is up at `now` (the engine calls it while
    /// idle; every step does it too).
    pub fn expire_kept_tails(&mut self, now: Instant) {
        self.scheduler.expire_kept_tails(now);
        self.refresh_stats();
    }

    /// Makes the step's block copies and releases their sources; the error of the first copy
    /// that failed (the step's sequences are then failed: a half-copied block is not used).
    fn copy_blocks(&mut self) -> Option<String> {
        let mut failure = None;
        for copy in &self.plan.copies {
            if let Err(e) = self.runner.copy_kv_block(copy.src, copy.dst) {
                failure = Some(format!(
                    "copying KV block {} to {}: {e}",
                    copy.src, copy.dst
                ));
                break;
            }
        }
        self.scheduler.copies_done(&mut self.plan);
        failure
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
        (s.kv_copy_on_write_blocks, s.kv_copy_on_write_tokens) = kv.copy_on_write_stats();
        if let Some(tiers) = &self.tiers {
            s.kv_tiers = tiers.stats();
            kv.record_tier_changes(tiers.take_changes());
        }
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
            self.tiers.as_ref(),
        );
        self.refresh_stats();
        result
    }

    /// Every block hash the prefix cache holds (in use or cached-free, ascending) and the id of
    /// the next KV event. Publishes pending pool events first, so every event before
    /// `next_event_id` is in the ring and the snapshot is consistent with the stream.
    pub fn kv_snapshot(&mut self) -> rotor_protocol::KvSnapshot {
        let kv = self.scheduler.kv_blocks_mut();
        if let Some(tiers) = &self.tiers {
            kv.record_tier_changes(tiers.take_changes());
        }
        self.kv_events.publish(kv.drain_events());
        rotor_protocol::KvSnapshot {
            block_hashes: kv.pool().cached_hashes(),
            next_event_id: kv.pool().next_event_id(),
        }
    }
}

/// Rows a chunk of `len` tokens returns for `kind` (logits or hidden rows).
fn output_rows(kind: ChunkOutputKind, len: usize) -> usize {
    match kind {
        ChunkOutputKind::Nothing => 0,
        ChunkOutputKind::LastLogits => 1,
        ChunkOutputKind::AllLogits | ChunkOutputKind::Hidden => len,
    }
}

/// A token the constraint forced: certain under the constrained distribution.
fn forced_logprob(token: u32, top: usize) -> TokenLogprob {
    TokenLogprob {
        token_id: token,
        logprob: 0.0,
        top: if top > 0 {
            vec![(token, 0.0)]
        } else {
            Vec::new()
        },
    }
}

fn check_vocab(vocab: &ConstraintVocab, runner_vocab: usize) -> Result<(), Error> {
    if vocab.vocab_size() != runner_vocab {
        return Err(Error::ConstraintVocab(format!(
            "the constraint vocabulary has {} tokens but the model {runner_vocab}",
            vocab.vocab_size()
        )));
    }
    Ok(())
}

/// Compiles `req`'s constraint (if any) with `vocab`, counting the request or its refusal.
pub(crate) fn compile_constraint(
    vocab: Option<&ConstraintVocab>,
    req: &GenerateRequest,
    counters: &ConstraintCounters,
) -> Result<Option<Box<SeqConstraint>>, WireError> {
    let Some(constraint) = &req.sampling.constraint else {
        return Ok(None);
    };
    let refuse = |message: String| {
        counters.rejection();
        WireError::new(ErrorKind::InvalidRequest, message)
    };
    let Some(vocab) = vocab else {
        return Err(refuse(
            "this engine cannot enforce constraints (no tokenizer vocabulary was given to it)"
                .into(),
        ));
    };
    let replay = req.sampling.constraint_replay_tokens as usize;
    let replay = &req.token_ids[req.token_ids.len().saturating_sub(replay)..];
    let compiled = vocab.compile(constraint, replay).map_err(refuse)?;
    counters.request();
    Ok(Some(Box::new(compiled)))
}

/// Warns when a tier holds less than the one above it (it could only keep part of what is
/// evicted into it).
fn warn_on_small_tiers(cfg: &EngineConfig, tiers: &KvTiersConfig, block_bytes: usize) {
    let g1 = (cfg.num_blocks as u64).saturating_mul(block_bytes as u64);
    let g2 = tiers.host.as_ref().map(|h| h.capacity_bytes);
    if let Some(g2) = g2.filter(|&g2| g2 < g1) {
        tracing::warn!(
            g1_bytes = g1,
            g2_bytes = g2,
            "the KV host tier (G2) is smaller than the engine's KV pool (G1)"
        );
    }
    let above = g2.unwrap_or(g1);
    if let Some(g3) = tiers.disk.as_ref().map(|d| d.capacity_bytes) {
        if g3 < above {
            tracing::warn!(
                above_bytes = above,
                g3_bytes = g3,
                "the KV disk tier (G3) is smaller than the tier above it"
            );
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

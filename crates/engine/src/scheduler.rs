//! `Scheduler`: one loop per step under a token budget (vLLM v1 style, no prefill/decode phases).
//!
//! Each `schedule` call builds one step:
//! 1. running sequences that decode (one uncomputed token) get one token each, in admission order;
//! 2. running sequences still prefilling get a chunk of at most `max_prefill_chunk_tokens`;
//! 3. unless someone was preempted in this step, waiting requests are admitted first-come
//!    first-served while `max_num_seqs`, the budget and free blocks allow (their first chunk may
//!    be a partial prefill: chunked prefill). A request whose prefix is being loaded from the
//!    offload tiers (`TierLoad::Loading`) is passed over until the load is imported.
//!
//! Every chunk draws from `max_num_batched_tokens`. With prefix caching, an admitted sequence
//! starts after the longest cached prefix of full blocks (those tokens are not sent to the
//! runner), and every block its computed tokens fill is committed to the cache after the step.
//! When a running sequence needs a block and none is free, the most recently admitted running
//! sequence is preempted by recompute: its blocks are freed (they stay cached, so recomputing is
//! mostly a cache hit) and it returns to the FRONT of the waiting queue with prompt + generated
//! as the tokens to recompute. The oldest running sequence is never preempted for lack of blocks, and every
//! sequence fits the pool alone (requests are validated against the pool), so the loop always
//! makes progress.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use crate::config::EngineConfig;
use crate::kv_blocks::{BlockCopy, KvBlocks};
use crate::runner::ScheduledChunk;
use crate::sequence::{Sequence, TierLoad};

/// One chunk of a step: `len` tokens of `running[seq]` starting at position `start`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlannedChunk {
    pub seq: usize,
    pub start: usize,
    pub len: usize,
    pub want_logits: bool,
}

/// The result of `Scheduler::schedule`: the step's chunks (indices into `running`) and who was
/// preempted while building it.
#[derive(Debug, Default)]
pub struct StepPlan {
    pub chunks: Vec<PlannedChunk>,
    pub preempted: Vec<Arc<str>>,
    /// Block copies (copy-on-write admissions) the runner makes before the step's forward pass;
    /// each holds its source until `Scheduler::copies_done`.
    pub copies: Vec<BlockCopy>,
}

impl StepPlan {
    pub fn num_tokens(&self) -> usize {
        self.chunks.iter().map(|c| c.len).sum()
    }
}

/// Waiting queue, running set and the KV block pool.
#[derive(Debug)]
pub struct Scheduler {
    max_num_seqs: usize,
    max_num_batched_tokens: usize,
    max_prefill_chunk_tokens: usize,
    kv: KvBlocks,
    waiting: VecDeque<Sequence>,
    /// In admission order: the last one is the most recently admitted.
    running: Vec<Sequence>,
    num_preemptions: u64,
}

enum Reservation {
    Reserved,
    /// The sequence itself was the one preempted.
    SelfPreempted,
}

impl Scheduler {
    /// `cfg` must be validated.
    pub fn new(cfg: &EngineConfig) -> Self {
        Self {
            max_num_seqs: cfg.max_num_seqs,
            max_num_batched_tokens: cfg.max_num_batched_tokens,
            max_prefill_chunk_tokens: cfg.max_prefill_chunk_tokens.min(cfg.max_num_batched_tokens),
            kv: KvBlocks::new(cfg),
            waiting: VecDeque::new(),
            running: Vec::new(),
            num_preemptions: 0,
        }
    }

    /// Queues a new request behind every waiting one.
    pub fn add(&mut self, seq: Sequence) {
        self.waiting.push_back(seq);
    }

    pub fn contains(&self, id: &str) -> bool {
        self.running
            .iter()
            .chain(self.waiting.iter())
            .any(|s| &*s.id == id)
    }

    pub fn has_work(&self) -> bool {
        !self.running.is_empty() || !self.waiting.is_empty()
    }

    pub fn running(&self) -> &[Sequence] {
        &self.running
    }

    pub fn running_mut(&mut self) -> &mut [Sequence] {
        &mut self.running
    }

    pub fn waiting(&self) -> impl Iterator<Item = &Sequence> {
        self.waiting.iter()
    }

    pub fn num_running(&self) -> usize {
        self.running.len()
    }

    pub fn num_waiting(&self) -> usize {
        self.waiting.len()
    }

    pub fn num_preemptions(&self) -> u64 {
        self.num_preemptions
    }

    /// The KV blocks (pool, prefix cache, counters).
    pub fn kv_blocks(&self) -> &KvBlocks {
        &self.kv
    }

    pub(crate) fn kv_blocks_mut(&mut self) -> &mut KvBlocks {
        &mut self.kv
    }

    /// Every waiting sequence (front first), the KV blocks, and how many sequences the next
    /// admission could take (free sequence slots): for onboarding from the offload tiers.
    pub(crate) fn waiting_with_kv_mut(&mut self) -> (&mut [Sequence], &mut KvBlocks, usize) {
        let slots = self.max_num_seqs.saturating_sub(self.running.len());
        (self.waiting.make_contiguous(), &mut self.kv, slots)
    }

    /// Removes a request wherever it is and frees its blocks.
    pub fn remove(&mut self, id: &str) -> Option<Sequence> {
        let mut seq = if let Some(i) = self.running.iter().position(|s| &*s.id == id) {
            self.running.remove(i)
        } else {
            let i = self.waiting.iter().position(|s| &*s.id == id)?;
            self.waiting.remove(i)?
        };
        self.kv.release(&mut seq);
        Some(seq)
    }

    /// Removes every sequence whose output receiver was dropped; returns how many.
    pub fn remove_abandoned(&mut self) -> usize {
        let before = self.running.len() + self.waiting.len();
        let kv = &mut self.kv;
        self.running.retain_mut(|s| {
            let keep = !s.is_abandoned();
            if !keep {
                kv.release(s);
            }
            keep
        });
        self.waiting.retain(|s| !s.is_abandoned());
        before - self.running.len() - self.waiting.len()
    }

    /// Removes the running sequences at `indices` (any order, no duplicates), freeing their blocks.
    pub fn retire(&mut self, indices: &mut Vec<usize>) {
        indices.sort_unstable_by(|a, b| b.cmp(a));
        for &i in indices.iter() {
            let mut seq = self.running.remove(i);
            self.kv.release(&mut seq);
        }
        indices.clear();
    }

    /// Takes every sequence out (shutdown), freeing all blocks (kept prompt tails too).
    pub fn drain(&mut self) -> Vec<Sequence> {
        let mut all: Vec<Sequence> = self.running.drain(..).collect();
        all.extend(self.waiting.drain(..));
        for seq in &mut all {
            self.kv.release(seq);
        }
        self.kv.release_tails();
        all
    }

    /// Releases the sources of `plan`'s block copies once the runner made them (or failed to).
    pub fn copies_done(&mut self, plan: &mut StepPlan) {
        for copy in plan.copies.drain(..) {
            self.kv.unpin(&[copy.src]);
        }
    }

    /// Releases the prompt tails kept for siblings whose time is up (see `kv_blocks`); the
    /// engine calls it while idle, `schedule` before every step.
    pub fn expire_kept_tails(&mut self, now: Instant) {
        self.kv.expire_tails(now);
    }

    /// Builds the next step into `plan` (cleared first). An empty plan means nothing to run.
    pub fn schedule(&mut self, plan: &mut StepPlan) {
        plan.chunks.clear();
        plan.preempted.clear();
        debug_assert!(
            plan.copies.is_empty(),
            "invariant: copies_done after every step"
        );
        self.kv.expire_tails(Instant::now());
        let mut budget = self.max_num_batched_tokens;
        for decode_pass in [true, false] {
            let mut i = 0;
            while i < self.running.len() && budget > 0 {
                let uncomputed = self.running[i].num_uncomputed();
                debug_assert!(uncomputed > 0, "invariant: a running sequence has work");
                if (uncomputed == 1) != decode_pass {
                    i += 1;
                    continue;
                }
                let n = uncomputed.min(self.max_prefill_chunk_tokens).min(budget);
                match self.reserve(i, n, plan, &mut budget) {
                    Reservation::Reserved => {
                        let seq = &self.running[i];
                        let start = seq.num_computed;
                        let want_logits = seq.samples_after(start + n);
                        plan.chunks.push(PlannedChunk {
                            seq: i,
                            start,
                            len: n,
                            want_logits,
                        });
                        budget -= n;
                        i += 1;
                    }
                    Reservation::SelfPreempted => break,
                }
            }
        }
        if plan.preempted.is_empty() {
            self.admit(plan, budget);
        }
    }

    fn admit(&mut self, plan: &mut StepPlan, mut budget: usize) {
        while self.running.len() < self.max_num_seqs && budget > 0 {
            // A request whose prefix is being loaded from the offload tiers waits; the ones
            // behind it are admitted meanwhile.
            let Some(next) = self
                .waiting
                .iter()
                .position(|s| !matches!(s.tier_load, TierLoad::Loading { .. }))
            else {
                break;
            };
            let max_tokens = self.max_prefill_chunk_tokens.min(budget);
            let mut planned = self.kv.plan_admission(&mut self.waiting[next], max_tokens);
            // Blocks kept for siblings are the first to give back when the pool runs short.
            if planned.is_none() && self.kv.release_tails() {
                planned = self.kv.plan_admission(&mut self.waiting[next], max_tokens);
            }
            let Some(admission) = planned else {
                break;
            };
            let mut seq = self
                .waiting
                .remove(next)
                .expect("invariant: the index was just found");
            plan.copies.extend(self.kv.admit(&mut seq, admission));
            seq.reserve_for_decode(self.kv.pool().block_size_tokens());
            let n = admission.num_tokens;
            let start = seq.num_computed;
            let want_logits = seq.samples_after(start + n);
            self.running.push(seq);
            plan.chunks.push(PlannedChunk {
                seq: self.running.len() - 1,
                start,
                len: n,
                want_logits,
            });
            budget -= n;
        }
    }

    /// Makes `running[i]`'s blocks cover `n` more tokens, preempting from the back as needed.
    fn reserve(
        &mut self,
        i: usize,
        n: usize,
        plan: &mut StepPlan,
        budget: &mut usize,
    ) -> Reservation {
        loop {
            if self.kv.grow(&mut self.running[i], n) {
                return Reservation::Reserved;
            }
            // Blocks kept for siblings go before anyone is preempted.
            if self.kv.release_tails() {
                continue;
            }
            let victim = self.running.len() - 1;
            debug_assert!(
                victim > 0 || i > 0,
                "invariant: a lone sequence fits the pool"
            );
            self.preempt_last(plan, budget);
            if victim == i {
                return Reservation::SelfPreempted;
            }
        }
    }

    fn preempt_last(&mut self, plan: &mut StepPlan, budget: &mut usize) {
        let victim = self.running.len() - 1;
        if let Some(pos) = plan.chunks.iter().position(|c| c.seq == victim) {
            *budget += plan.chunks.remove(pos).len;
        }
        let mut seq = self.running.pop().expect("invariant: victim exists");
        self.kv.release(&mut seq);
        seq.reset_for_recompute();
        plan.preempted.push(seq.id.clone());
        self.num_preemptions += 1;
        self.waiting.push_front(seq);
    }

    /// The runner's view of `plan`; `commit` must follow a successful step.
    pub fn chunks<'a>(&'a self, plan: &StepPlan) -> Vec<ScheduledChunk<'a>> {
        let mut out = Vec::with_capacity(plan.chunks.len());
        self.chunks_into(plan, &mut out);
        out
    }

    /// `chunks` into a caller's buffer (cleared first), so a step need not allocate.
    pub fn chunks_into<'a>(&'a self, plan: &StepPlan, out: &mut Vec<ScheduledChunk<'a>>) {
        out.clear();
        out.extend(plan.chunks.iter().map(|c| {
            let seq = &self.running[c.seq];
            ScheduledChunk {
                tokens: &seq.tokens[c.start..c.start + c.len],
                start_pos: c.start,
                block_table: &seq.block_table,
                want_logits: c.want_logits,
            }
        }));
    }

    /// Marks the planned tokens as computed (their K/V are now in the blocks), caches the
    /// blocks they filled, and keeps the last prompt block of a sequence that just computed its
    /// prompt and announced siblings.
    pub fn commit(&mut self, plan: &StepPlan) {
        let now = Instant::now();
        for c in &plan.chunks {
            let seq = &mut self.running[c.seq];
            debug_assert_eq!(seq.num_computed, c.start);
            seq.num_computed += c.len;
            self.kv.commit_computed(seq);
            if c.start < seq.prompt_len && seq.num_computed >= seq.prompt_len {
                self.kv.keep_prompt_tail(seq, now);
            }
        }
    }
}

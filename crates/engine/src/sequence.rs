//! `Sequence`: one admitted request's tokens, KV blocks, sampling state and output channel.

use std::sync::Arc;

use rand::rngs::StdRng;
use rotor_protocol::{
    EngineOutput, FinishReason, GenerateRequest, SamplingParams, StopConditions, TokenIds,
    TokenLogprob, WireError,
};
use rotor_tokens::{chain_hash, local_block_hash, LocalBlockHash, SequenceHash};
use tokio::sync::mpsc::UnboundedSender;

use crate::constraint::SeqConstraint;
use crate::prompt_outputs::PromptOutputs;
use crate::sampler::{seeded_rng, PenaltyState};

/// Where a request's outputs go.
pub type OutputSender = UnboundedSender<Result<EngineOutput, WireError>>;

/// A waiting request's onboarding from the offload tiers (G2/G3), once per admission.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TierLoad {
    /// Not looked up yet.
    Unchecked,
    /// Blocks from `first_block` on are being loaded in the background (`ticket`); the
    /// scheduler does not admit the request until they are imported (others are admitted).
    Loading { ticket: u64, first_block: usize },
    /// Looked up (and onboarded, if anything was found).
    Done,
}

/// A request inside the engine. `tokens` is prompt + generated; the first `num_computed` of them
/// have their K/V in `block_table`'s blocks.
#[derive(Debug)]
pub struct Sequence {
    pub id: Arc<str>,
    pub tokens: Vec<u32>,
    pub prompt_len: usize,
    pub num_computed: usize,
    pub block_table: Vec<u32>,
    /// Sequence hashes of the full blocks of `tokens` hashed so far (with prefix caching on).
    pub block_hashes: Vec<SequenceHash>,
    /// Local hashes of the same blocks.
    pub local_hashes: Vec<LocalBlockHash>,
    /// Leading blocks of `block_table` that are in the prefix cache (reused or committed).
    pub num_cached_blocks: usize,
    /// Prompt tokens served from the prefix cache at the admission that produced the first
    /// output (reported on that output).
    pub cached_prompt_tokens: usize,
    /// Preempted at least once: its next admissions recompute it (prefix-cache figures and
    /// `cached_prompt_tokens` keep what its first admission found).
    pub recomputing: bool,
    /// Where this admission's search of the offload tiers stands.
    pub tier_load: TierLoad,
    pub sampling: SamplingParams,
    pub stop: StopConditions,
    /// Total length (prompt + generated) at which generation ends with `Length`: the smaller of
    /// prompt + max_tokens and the engine's context window.
    pub max_total_len: usize,
    pub rng: StdRng,
    pub penalties: PenaltyState,
    /// The grammar constraint's matcher and next mask (`SamplingParams::constraint`). It stays
    /// with the sequence through preemption: a recomputed sequence resumes where it was.
    pub constraint: Option<Box<SeqConstraint>>,
    /// Prompt logprobs or an embedding being collected while the prompt is computed; `None`
    /// once delivered (or never asked for). While `Some`, every prompt position is computed.
    pub prompt_outputs: Option<PromptOutputs>,
    /// Prompt logprobs computed, to ride on the first output.
    pub prompt_logprobs: Option<Vec<TokenLogprob>>,
    output: OutputSender,
    sent_first: bool,
}

impl Sequence {
    /// `req` must already be validated (non-empty prompt shorter than `context_window`).
    pub fn new(req: GenerateRequest, context_window: usize, output: OutputSender) -> Self {
        let prompt_len = req.token_ids.len();
        let prompt_outputs = PromptOutputs::for_request(&req);
        let max_total_len = prompt_len
            .saturating_add(req.stop.max_tokens as usize)
            .min(context_window);
        Self {
            id: Arc::from(req.id),
            penalties: PenaltyState::new(&req.token_ids, &req.sampling),
            rng: seeded_rng(req.sampling.seed),
            tokens: req.token_ids,
            prompt_len,
            num_computed: 0,
            block_table: Vec::new(),
            block_hashes: Vec::new(),
            local_hashes: Vec::new(),
            num_cached_blocks: 0,
            cached_prompt_tokens: 0,
            recomputing: false,
            tier_load: TierLoad::Unchecked,
            sampling: req.sampling,
            stop: req.stop,
            max_total_len,
            constraint: None,
            prompt_outputs,
            prompt_logprobs: None,
            output,
            sent_first: false,
        }
    }

    pub fn num_generated(&self) -> usize {
        self.tokens.len() - self.prompt_len
    }

    /// Whether every prompt position must be computed (prompt outputs are being collected), so
    /// no cached prefix may be reused.
    pub fn needs_full_prompt(&self) -> bool {
        self.prompt_outputs.is_some()
    }

    /// Whether the sequence samples a token once its first `computed` tokens are computed: all
    /// of them are, and it may still grow (a request with `max_tokens` 0 never samples).
    pub fn samples_after(&self, computed: usize) -> bool {
        computed == self.tokens.len() && self.tokens.len() < self.max_total_len
    }

    /// Tokens still to be fed to the model before the next token can be sampled.
    pub fn num_uncomputed(&self) -> usize {
        self.tokens.len() - self.num_computed
    }

    /// Appends a sampled token and says whether the sequence is finished.
    pub fn push_token(&mut self, token: u32) -> Option<FinishReason> {
        self.tokens.push(token);
        self.penalties.record(token);
        let generated = self.num_generated();
        let stops = !self.stop.ignore_eos
            && generated >= self.stop.min_tokens as usize
            && self.stop.stop_token_ids.contains(&token);
        if stops {
            Some(FinishReason::Stop)
        } else if self.tokens.len() >= self.max_total_len {
            Some(FinishReason::Length)
        } else {
            None
        }
    }

    /// Reserves room for every token, block id and block hash the sequence can still add (it
    /// ends at `max_total_len`), so decoding never grows these vectors.
    pub fn reserve_for_decode(&mut self, block_size_tokens: usize) {
        let tokens_left = self.max_total_len.saturating_sub(self.tokens.len());
        self.tokens.reserve_exact(tokens_left);
        let blocks = self.max_total_len.div_ceil(block_size_tokens);
        self.block_table
            .reserve_exact(blocks.saturating_sub(self.block_table.len()));
        let full_blocks = self.max_total_len / block_size_tokens;
        self.block_hashes
            .reserve_exact(full_blocks.saturating_sub(self.block_hashes.len()));
        self.local_hashes
            .reserve_exact(full_blocks.saturating_sub(self.local_hashes.len()));
    }

    /// Whether the first output was sent.
    pub fn has_sent_first(&self) -> bool {
        self.sent_first
    }

    /// Extends `block_hashes` / `local_hashes` over every full block of `tokens` with
    /// `rotor_tokens`' hashes. Each block is hashed once: the prompt's blocks at the first call,
    /// generated blocks as they fill.
    pub fn hash_full_blocks(&mut self, block_size_tokens: usize) {
        let full = self.tokens.len() / block_size_tokens;
        for i in self.block_hashes.len()..full {
            let block = &self.tokens[i * block_size_tokens..(i + 1) * block_size_tokens];
            let local = local_block_hash(block);
            self.block_hashes
                .push(chain_hash(self.block_hashes.last().copied(), local));
            self.local_hashes.push(local);
        }
    }

    /// Sends one output; false if the receiver is gone (the caller cancels the sequence).
    pub fn send(&mut self, token_ids: TokenIds, finish_reason: Option<FinishReason>) -> bool {
        self.send_with_logprobs(token_ids, finish_reason, None)
    }

    /// `send` with the tokens' log-probabilities (`SamplingParams::logprobs`).
    pub fn send_with_logprobs(
        &mut self,
        token_ids: TokenIds,
        finish_reason: Option<FinishReason>,
        logprobs: Option<Vec<TokenLogprob>>,
    ) -> bool {
        self.send_output(EngineOutput {
            token_ids,
            finish_reason,
            cached_prompt_tokens: None,
            logprobs,
            prompt_logprobs: None,
            embedding: None,
        })
    }

    /// Sends `out`, completing a first output with `cached_prompt_tokens` and the prompt
    /// logprobs; false if the receiver is gone.
    pub fn send_output(&mut self, mut out: EngineOutput) -> bool {
        if !self.sent_first {
            out.cached_prompt_tokens =
                Some(u32::try_from(self.cached_prompt_tokens).unwrap_or(u32::MAX));
            out.prompt_logprobs = self.prompt_logprobs.take();
        }
        self.sent_first = true;
        self.output.send(Ok(out)).is_ok()
    }

    /// Sends a terminal error (best effort: the receiver may be gone).
    pub fn fail(&self, err: WireError) {
        let _ = self.output.send(Err(err));
    }

    /// Whether the receiver was dropped.
    pub fn is_abandoned(&self) -> bool {
        self.output.is_closed()
    }

    /// Resets to "nothing computed" after preemption: the prompt becomes prompt + generated so
    /// far, to be recomputed. Blocks must already be released.
    pub fn reset_for_recompute(&mut self) {
        debug_assert!(self.block_table.is_empty());
        self.num_computed = 0;
        self.num_cached_blocks = 0;
        self.recomputing = true;
        self.tier_load = TierLoad::Unchecked;
        if let Some(p) = self.prompt_outputs.as_mut() {
            p.reset();
        }
    }
}

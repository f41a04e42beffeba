//! [`EchoEngine`]: a worker engine without model compute, for testing the distributed path
//! (routing, migration, shutdown) at any scale on a small machine.
//!
//! Output `i` (from 0) is the prompt's token `i mod prompt length`, one token per output, every
//! `token_delay`. Generation ends with `Length` after `max_tokens` outputs (or when the context
//! window is full). Stop tokens are ignored on purpose: echoing a chat prompt would otherwise
//! stop at the template's first end-of-turn token. Dropping the stream stops the work; after
//! [`shutdown`](WorkerEngine::shutdown) running streams end with `EngineStopped`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use rotor_engine::{validate_request, RequestLimits};
use rotor_protocol::{
    EngineOutput, ErrorKind, FinishReason, GenerateRequest, ModelCard, WireError, WorkerLoad,
};
use tokio_util::sync::CancellationToken;

use crate::card::{GgufModel, ModelSpec};
use crate::engine::{GenerateStream, WorkerEngine};
use crate::error::Error;

/// Streams each prompt back, one token per output.
pub struct EchoEngine {
    card: ModelCard,
    limits: RequestLimits,
    token_delay: Duration,
    running: Arc<AtomicU64>,
    stopped: CancellationToken,
}

impl EchoEngine {
    /// An echo engine serving `card` (its vocabulary and context bound the accepted requests).
    pub fn new(card: ModelCard, token_delay: Duration) -> Self {
        let context_length = card.context_length as usize;
        let limits = RequestLimits {
            vocab_size: card.tokenizer.tokens.len(),
            context_length,
            pool_capacity_tokens: context_length,
            // Prompt logprobs and embeddings are refused (validate_request says so).
            prompt_outputs: false,
        };
        Self {
            card,
            limits,
            token_delay,
            running: Arc::default(),
            stopped: CancellationToken::new(),
        }
    }

    /// An echo engine whose card comes from the GGUF at `spec.path` (tokenizer, template and
    /// context length; the weights are not loaded).
    pub fn open(spec: &ModelSpec, token_delay: Duration) -> Result<Self, Error> {
        let file = GgufModel::open(&spec.path)?;
        let context_length = file
            .config
            .context_length
            .min(spec.max_model_len.unwrap_or(usize::MAX));
        Ok(Self::new(
            file.card(spec, context_length, None)?,
            token_delay,
        ))
    }
}

/// One echo request's progress. Counts itself in `running` while alive.
struct EchoRun {
    prompt: Vec<u32>,
    produced: usize,
    limit: usize,
    token_delay: Duration,
    stopped: CancellationToken,
    running: Arc<AtomicU64>,
}

impl Drop for EchoRun {
    fn drop(&mut self) {
        self.running.fetch_sub(1, Ordering::Relaxed);
    }
}

impl EchoRun {
    async fn next(mut self) -> Option<(Result<EngineOutput, WireError>, Self)> {
        if self.produced >= self.limit {
            return None;
        }
        if !self.token_delay.is_zero() {
            tokio::select! {
                _ = tokio::time::sleep(self.token_delay) => {}
                _ = self.stopped.cancelled() => {}
            }
        }
        if self.stopped.is_cancelled() {
            self.limit = 0;
            let error = WireError::new(ErrorKind::EngineStopped, "the echo engine has stopped");
            return Some((Err(error), self));
        }
        let token = self.prompt[self.produced % self.prompt.len()];
        self.produced += 1;
        let output = EngineOutput {
            prompt_logprobs: None,
            embedding: None,
            token_ids: rotor_protocol::TokenIds::one(token),
            finish_reason: (self.produced == self.limit).then_some(FinishReason::Length),
            cached_prompt_tokens: (self.produced == 1).then_some(0),
            logprobs: None,
        };
        Some((Ok(output), self))
    }
}

impl WorkerEngine for EchoEngine {
    fn card(&self) -> &ModelCard {
        &self.card
    }

    fn generate(&self, req: GenerateRequest) -> Result<GenerateStream, WireError> {
        validate_request(&req, &self.limits)?;
        if self.stopped.is_cancelled() {
            return Err(WireError::new(
                ErrorKind::EngineStopped,
                "the echo engine has stopped",
            ));
        }
        let room = self.limits.context_window() - req.token_ids.len();
        let limit = (req.stop.max_tokens as usize).min(room);
        self.running.fetch_add(1, Ordering::Relaxed);
        let run = EchoRun {
            prompt: req.token_ids,
            produced: 0,
            limit,
            token_delay: self.token_delay,
            stopped: self.stopped.clone(),
            running: Arc::clone(&self.running),
        };
        Ok(futures::stream::unfold(run, EchoRun::next).boxed())
    }

    fn load(&self) -> WorkerLoad {
        WorkerLoad {
            running: self.running.load(Ordering::Relaxed),
            ..WorkerLoad::default()
        }
    }

    fn shutdown(&self) {
        self.stopped.cancel();
    }
}

//! [`Migration`]: one request's life across workers. It runs an attempt on the chosen worker and,
//! when that worker dies before a finish reason, re-sends the prompt plus the tokens generated so
//! far to another worker, so its caller sees one continuous stream.
//!
//! Failures that migrate: an error of kind `Disconnected` or `EngineStopped` (at start or
//! mid-stream), and a stream that ends without a finish reason. Any other error ends the request
//! as it is. The worker that failed is quarantined in the pool and never tried again by this
//! request.

use std::sync::Arc;
use std::time::Instant;

use futures::StreamExt;
use rotor_protocol::{EngineOutput, ErrorKind, FinishReason, GenerateRequest, WireError, WorkerId};

use super::routed::RoutedInner;
use crate::backend::OutputStream;

/// `request` to resend after `generated` tokens were streamed: those tokens join the prompt and
/// leave the budget; what rode on the first output (prompt scores) is not asked for again.
fn continuation(request: &GenerateRequest, generated: &[u32]) -> GenerateRequest {
    let mut next = request.clone();
    let n = generated.len() as u32;
    next.token_ids.extend_from_slice(generated);
    next.stop.max_tokens = next.stop.max_tokens.saturating_sub(n);
    next.stop.min_tokens = next.stop.min_tokens.saturating_sub(n);
    if n > 0 {
        // The prompt's scores rode on the first output, already delivered.
        next.sampling.prompt_logprobs = None;
        // Its siblings started from the original prompt, not this longer one: keeping a block
        // for them on the next worker would only hold memory.
        next.sampling.siblings = 0;
    }
    if next.sampling.constraint.is_some() {
        // The tokens already streamed were sampled under the grammar: the next worker must
        // replay them through its matcher before it constrains the rest.
        next.sampling.constraint_replay_tokens += n;
    }
    next
}

fn migratable(kind: ErrorKind) -> bool {
    matches!(kind, ErrorKind::Disconnected | ErrorKind::EngineStopped)
}

/// Holds one attempt's place in the pool: its in-flight count and its KV-router tracking. Drop
/// releases both.
struct AttemptGuard {
    inner: Arc<RoutedInner>,
    worker: WorkerId,
    tracking: Option<String>,
    prefill_done: bool,
}

impl AttemptGuard {
    fn first_token(&mut self) {
        if self.prefill_done {
            return;
        }
        self.prefill_done = true;
        if let Some(tracking) = &self.tracking {
            self.inner.pool().first_token(tracking);
        }
    }
}

impl Drop for AttemptGuard {
    fn drop(&mut self) {
        self.inner
            .pool()
            .finish(self.worker, self.tracking.as_deref());
    }
}

/// One attempt: the worker's output stream (dropping it cancels the work there) and its guard.
struct Attempt {
    outputs: OutputStream,
    guard: AttemptGuard,
    /// Only the first attempt reports prompt tokens served from a prefix cache.
    first: bool,
}

/// A request moving across workers. See the module docs.
pub(crate) struct Migration {
    inner: Arc<RoutedInner>,
    request: GenerateRequest,
    generated: Vec<u32>,
    /// Workers that failed this request.
    failed: Vec<WorkerId>,
    /// The last migratable failure, reported when the request cannot move again.
    last_error: Option<WireError>,
    resends: u32,
    current: Option<Attempt>,
    done: bool,
}

impl Migration {
    pub fn new(inner: Arc<RoutedInner>, request: GenerateRequest) -> Self {
        Self {
            inner,
            request,
            generated: Vec::new(),
            failed: Vec::new(),
            last_error: None,
            resends: 0,
            current: None,
            done: false,
        }
    }

    /// The request to send next: the prompt plus what was generated, with the budget left.
    fn continuation(&self) -> GenerateRequest {
        continuation(&self.request, &self.generated)
    }

    /// Starts an attempt on a worker that has not failed this request. `Err(None)` means there
    /// was no worker at all (before any failure); `Err(Some(e))` is the error to report.
    pub fn launch(&mut self) -> Result<(), Option<WireError>> {
        loop {
            let request = self.continuation();
            let Some(choice) = self.inner.select(&request, &self.failed) else {
                return Err(self.cannot_move("no other worker serves the model"));
            };
            let guard = AttemptGuard {
                inner: Arc::clone(&self.inner),
                worker: choice.worker,
                tracking: choice.tracking,
                prefill_done: false,
            };
            if let Some(error) = &self.last_error {
                self.resends += 1;
                self.inner.count_migration();
                tracing::info!(
                    request_id = %self.request.id,
                    model = %self.inner.model,
                    to = format_args!("{:016x}", choice.worker),
                    generated = self.generated.len(),
                    migration = self.resends,
                    error = %error,
                    "migrating request"
                );
            }
            let started = if self.last_error.is_none() && super::disagg::applies(&self.inner) {
                Ok(super::disagg::disaggregated(
                    Arc::clone(&self.inner),
                    Arc::clone(&choice.backend),
                    request,
                ))
            } else {
                choice.backend.generate(request)
            };
            match started {
                Ok(outputs) => {
                    self.current = Some(Attempt {
                        outputs,
                        guard,
                        first: self.last_error.is_none(),
                    });
                    return Ok(());
                }
                Err(error) if migratable(error.kind) => {
                    let worker = guard.worker;
                    drop(guard);
                    self.record_failure(worker, error).map_err(Some)?;
                }
                Err(error) => return Err(Some(error)),
            }
        }
    }

    /// Notes that `worker` failed this request; errs when the request may not move again.
    fn record_failure(&mut self, worker: WorkerId, error: WireError) -> Result<(), WireError> {
        self.inner.pool().quarantine(worker, Instant::now());
        self.failed.push(worker);
        tracing::warn!(
            request_id = %self.request.id,
            model = %self.inner.model,
            worker = format_args!("{worker:016x}"),
            generated = self.generated.len(),
            %error,
            "worker failed a request"
        );
        self.last_error = Some(error);
        if self.resends >= self.inner.migration_limit {
            let reason = format!("migration limit {} reached", self.inner.migration_limit);
            return Err(self
                .cannot_move(&reason)
                .expect("invariant: a failure was just recorded"));
        }
        Ok(())
    }

    /// The error that ends a request that cannot (or need not) move: `None` when nothing failed.
    fn cannot_move(&self, reason: &str) -> Option<WireError> {
        let error = self.last_error.as_ref()?;
        self.inner.count_migration_failure();
        Some(WireError::new(
            error.kind,
            format!(
                "{}; the request could not be moved to another worker after {} generated tokens ({reason})",
                error.message,
                self.generated.len()
            ),
        ))
    }

    /// The next output for the caller; `None` after the last one or after an error.
    async fn next(&mut self) -> Option<Result<EngineOutput, WireError>> {
        loop {
            if self.done {
                return None;
            }
            if self.current.is_none() {
                // (A request that generates nothing, an embedding or a prompt score, has
                // `max_tokens` 0 and always needs its worker's one output.)
                let max_tokens = self.request.stop.max_tokens;
                if max_tokens > 0 && self.generated.len() as u32 >= max_tokens {
                    // The worker died after the last token but before saying so.
                    self.done = true;
                    return Some(Ok(EngineOutput {
                        prompt_logprobs: None,
                        embedding: None,
                        token_ids: Default::default(),
                        finish_reason: Some(FinishReason::Length),
                        cached_prompt_tokens: None,
                        logprobs: None,
                    }));
                }
                if let Err(error) = self.launch() {
                    self.done = true;
                    let error = error.unwrap_or_else(|| {
                        WireError::new(ErrorKind::Overloaded, "no worker serves the model")
                    });
                    return Some(Err(error));
                }
            }
            let attempt = self
                .current
                .as_mut()
                .expect("invariant: an attempt was just launched");
            let failure = match attempt.outputs.next().await {
                Some(Ok(mut output)) => {
                    if !output.token_ids.is_empty() {
                        attempt.guard.first_token();
                    }
                    if !attempt.first {
                        output.cached_prompt_tokens = None;
                    }
                    self.generated.extend_from_slice(&output.token_ids);
                    if output.finish_reason.is_some() {
                        self.done = true;
                        self.current = None;
                    }
                    return Some(Ok(output));
                }
                Some(Err(error)) if migratable(error.kind) => error,
                Some(Err(error)) => {
                    self.done = true;
                    self.current = None;
                    return Some(Err(error));
                }
                None => WireError::new(
                    ErrorKind::Disconnected,
                    "the worker ended the stream without a finish reason",
                ),
            };
            let attempt = self.current.take().expect("invariant: attempt present");
            let worker = attempt.guard.worker;
            drop(attempt);
            if let Err(error) = self.record_failure(worker, failure) {
                self.done = true;
                return Some(Err(error));
            }
        }
    }

    /// The caller's stream. Dropping it drops the current attempt, cancelling it on its worker.
    pub fn into_stream(self) -> OutputStream {
        futures::stream::unfold(self, |mut migration| async move {
            let item = migration.next().await?;
            Some((item, migration))
        })
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use rotor_protocol::{SamplingParams, StopConditions, Task};

    use super::*;

    #[test]
    fn a_continuation_carries_the_tokens_and_asks_for_prompt_scores_only_before_any() {
        let request = GenerateRequest {
            id: "r".into(),
            token_ids: vec![1, 2],
            sampling: SamplingParams {
                prompt_logprobs: Some(2),
                siblings: 3,
                ..SamplingParams::greedy()
            },
            stop: StopConditions {
                max_tokens: 5,
                ..StopConditions::default()
            },
            task: Task::Generate,
        };
        assert_eq!(continuation(&request, &[]), request);
        let next = continuation(&request, &[7, 8]);
        assert_eq!(next.token_ids, [1, 2, 7, 8]);
        assert_eq!(next.stop.max_tokens, 3);
        assert_eq!(next.sampling.prompt_logprobs, None);
        assert_eq!(next.sampling.siblings, 0);
    }
}

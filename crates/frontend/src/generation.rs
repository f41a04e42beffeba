//! Turns a backend's token stream into text steps: incremental detokenization, hidden EOS
//! tokens, stop strings (a possible partial match is held back, never shown), token counts.
//! When a stop string matches, the backend stream is dropped at once, which cancels the request.

use futures::StreamExt;
use rotor_protocol::openai::{PromptTokensDetails, Usage};
use rotor_protocol::{ErrorKind, FinishReason, WireError};
use rotor_text::{Detokenizer, StopMatcher};

use crate::backend::OutputStream;
use crate::error::ApiError;
use crate::metrics::GenerationTimer;
use crate::registry::ModelEntry;
use crate::validate::GenerationPlan;

/// New text since the previous step, and the end of generation when it came.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextStep {
    pub text: String,
    pub finish: Option<Finish>,
}

/// How generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Finish {
    /// OpenAI `finish_reason`: "stop" or "length".
    pub reason: &'static str,
    pub usage: Usage,
}

/// One request's generation in progress. Dropping it drops the backend stream (cancel).
pub struct TextGeneration {
    outputs: Option<OutputStream>,
    detokenizer: Detokenizer,
    stops: StopMatcher,
    hidden_ids: Vec<u32>,
    prompt_tokens: u32,
    completion_tokens: u32,
    cached_prompt_tokens: u32,
    timer: GenerationTimer,
}

impl TextGeneration {
    /// Sends the plan's request to the model's backend.
    pub fn start(
        entry: &ModelEntry,
        plan: &GenerationPlan,
        timer: GenerationTimer,
    ) -> Result<Self, ApiError> {
        timer.prompt_tokens(plan.prompt_tokens());
        let outputs = entry.backend.generate(plan.request.clone())?;
        Ok(Self {
            outputs: Some(outputs),
            detokenizer: Detokenizer::new(entry.tokenizer.clone(), true),
            stops: StopMatcher::new(plan.stop_strings.clone()),
            hidden_ids: entry.stop_token_ids.clone(),
            prompt_tokens: plan.prompt_tokens() as u32,
            completion_tokens: 0,
            cached_prompt_tokens: 0,
            timer,
        })
    }

    /// The next non-empty step; `None` after the finishing step (or after an error).
    pub async fn next_step(&mut self) -> Option<Result<TextStep, ApiError>> {
        loop {
            let outputs = self.outputs.as_mut()?;
            let output = match outputs.next().await {
                Some(Ok(output)) => output,
                Some(Err(err)) => {
                    self.outputs = None;
                    return Some(Err(err.into()));
                }
                None => {
                    self.outputs = None;
                    let err = WireError::new(
                        ErrorKind::Internal,
                        "the backend ended the stream without a finish reason",
                    );
                    return Some(Err(err.into()));
                }
            };
            self.timer.output(output.token_ids.len());
            if let Some(cached) = output.cached_prompt_tokens {
                self.cached_prompt_tokens = cached;
            }
            let step = match self.consume(&output.token_ids, output.finish_reason) {
                Ok(step) => step,
                Err(err) => {
                    self.outputs = None;
                    return Some(Err(err));
                }
            };
            if step.finish.is_some() {
                self.outputs = None;
            }
            if step.finish.is_some() || !step.text.is_empty() {
                return Some(Ok(step));
            }
        }
    }

    fn consume(&mut self, ids: &[u32], finish: Option<FinishReason>) -> Result<TextStep, ApiError> {
        let mut text = String::new();
        for &id in ids {
            self.completion_tokens += 1;
            if self.hidden_ids.contains(&id) {
                continue;
            }
            let piece = self.detokenizer.push(id).map_err(detokenize_error)?;
            let outcome = self.stops.push(&piece);
            text.push_str(&outcome.emit);
            if outcome.stopped {
                return Ok(TextStep {
                    text,
                    finish: Some(self.finish("stop")),
                });
            }
        }
        let Some(reason) = finish else {
            return Ok(TextStep { text, finish: None });
        };
        let tail = self.detokenizer.finish().map_err(detokenize_error)?;
        let outcome = self.stops.push(&tail);
        text.push_str(&outcome.emit);
        if outcome.stopped {
            return Ok(TextStep {
                text,
                finish: Some(self.finish("stop")),
            });
        }
        text.push_str(&self.stops.flush());
        Ok(TextStep {
            text,
            finish: Some(self.finish(reason.as_openai())),
        })
    }

    fn finish(&self, reason: &'static str) -> Finish {
        Finish {
            reason,
            usage: Usage {
                prompt_tokens: self.prompt_tokens,
                completion_tokens: self.completion_tokens,
                total_tokens: self.prompt_tokens + self.completion_tokens,
                prompt_tokens_details: Some(PromptTokensDetails {
                    cached_tokens: self.cached_prompt_tokens,
                }),
            },
        }
    }
}

fn detokenize_error(err: rotor_text::Error) -> ApiError {
    ApiError::internal(format!("detokenization failed: {err}"))
}

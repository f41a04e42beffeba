//! Turns a backend's token stream into text steps: incremental detokenization, hidden EOS
//! tokens, stop strings (a possible partial match is held back, never shown), token counts.
//! When a stop string matches, the backend stream is dropped at once, which cancels the request.

use futures::StreamExt;
use rotor_protocol::openai::{PromptTokensDetails, Usage};
use rotor_protocol::{ErrorKind, FinishReason, TokenLogprob, WireError};
use rotor_text::{Detokenizer, StopMatcher, StopOutcome};

use crate::backend::OutputStream;
use crate::error::ApiError;
use crate::metrics::GenerationTimer;
use crate::registry::ModelEntry;
use crate::validate::GenerationPlan;

/// New text since the previous step, and the end of generation when it came.
#[derive(Debug, Clone, PartialEq)]
pub struct TextStep {
    pub text: String,
    pub finish: Option<Finish>,
    /// With logprobs requested: one entry per token consumed in this step (end-of-generation
    /// tokens, which are never shown, are left out).
    pub logprobs: Vec<LogprobEntry>,
}

/// One generated token's log-probability, as the APIs show it: the token's text (its bytes, as
/// lossy UTF-8 when a token holds part of a character) and the most likely alternatives.
#[derive(Debug, Clone, PartialEq)]
pub struct LogprobEntry {
    pub token: String,
    pub bytes: Vec<u8>,
    pub logprob: f32,
    /// Character offset of the token in the generated text (the legacy API's `text_offset`).
    pub text_offset: usize,
    pub top: Vec<TopLogprob>,
}

/// One alternative of [`LogprobEntry::top`].
#[derive(Debug, Clone, PartialEq)]
pub struct TopLogprob {
    pub token: String,
    pub bytes: Vec<u8>,
    pub logprob: f32,
}

/// How generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Finish {
    /// OpenAI `finish_reason`: "stop" or "length".
    pub reason: &'static str,
    pub usage: Usage,
    /// When a stop string ended generation: its index in the plan's `stop_strings` (Anthropic's
    /// answer names it).
    pub stop_string: Option<usize>,
}

/// One request's generation in progress. Dropping it drops the backend stream (cancel).
pub struct TextGeneration {
    outputs: Option<OutputStream>,
    detokenizer: Detokenizer,
    stops: StopMatcher,
    stop_strings: Vec<String>,
    /// The text the stop matcher holds back (pushed, not yet emitted), mirrored so that the
    /// matched stop string can be named.
    held: String,
    hidden_ids: Vec<u32>,
    tokenizer: std::sync::Arc<rotor_text::Tokenizer>,
    /// Whether the request asked for logprobs (then every output must carry them).
    logprobs: bool,
    /// Characters of generated text so far (before stop-string trimming).
    text_chars: usize,
    /// Logprobs of tokens whose text is still held back; they go out with the next step.
    pending: Vec<LogprobEntry>,
    /// With prompt logprobs asked for: the prompt, and its scores once the first output came.
    prompt: Option<(Vec<u32>, Option<Vec<TokenLogprob>>)>,
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
            stop_strings: plan.stop_strings.clone(),
            held: String::new(),
            hidden_ids: entry.stop_token_ids.clone(),
            tokenizer: entry.tokenizer.clone(),
            logprobs: plan.request.sampling.logprobs.is_some(),
            text_chars: 0,
            pending: Vec::new(),
            prompt: plan
                .request
                .sampling
                .prompt_logprobs
                .map(|_| (plan.request.token_ids.clone(), None)),
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
            if let (Some((_, scores)), Some(got)) = (&mut self.prompt, &output.prompt_logprobs) {
                *scores = Some(got.clone());
            }
            let mut step = match self.consume(
                &output.token_ids,
                output.logprobs.as_deref(),
                output.finish_reason,
            ) {
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
                if !self.pending.is_empty() {
                    let mut held = std::mem::take(&mut self.pending);
                    held.append(&mut step.logprobs);
                    step.logprobs = held;
                }
                return Some(Ok(step));
            }
            self.pending.append(&mut step.logprobs);
        }
    }

    fn consume(
        &mut self,
        ids: &[u32],
        logprobs: Option<&[TokenLogprob]>,
        finish: Option<FinishReason>,
    ) -> Result<TextStep, ApiError> {
        let logprobs = match (self.logprobs, logprobs) {
            (false, _) => None,
            (true, Some(lp)) if lp.len() == ids.len() => Some(lp),
            // An output without tokens (a scored prompt's) needs no entries.
            (true, None) if ids.is_empty() => None,
            (true, got) => {
                return Err(ApiError::internal(format!(
                    "the model's engine returned {} logprob entries for {} tokens; its backend \
                     may not support logprobs",
                    got.map_or(0, <[_]>::len),
                    ids.len()
                )))
            }
        };
        let mut text = String::new();
        let mut entries = Vec::new();
        for (i, &id) in ids.iter().enumerate() {
            self.completion_tokens += 1;
            if self.hidden_ids.contains(&id) {
                continue;
            }
            let piece = self.detokenizer.push(id).map_err(detokenize_error)?;
            if let Some(lp) = logprobs {
                entries.push(self.entry(&lp[i])?);
            }
            self.text_chars += piece.chars().count();
            let outcome = self.stops.push(&piece);
            let matched = self.track_stop(&piece, &outcome);
            text.push_str(&outcome.emit);
            if outcome.stopped {
                return Ok(TextStep {
                    text,
                    finish: Some(self.finish("stop", matched)),
                    logprobs: entries,
                });
            }
        }
        let Some(reason) = finish else {
            return Ok(TextStep {
                text,
                finish: None,
                logprobs: entries,
            });
        };
        let tail = self.detokenizer.finish().map_err(detokenize_error)?;
        let outcome = self.stops.push(&tail);
        let matched = self.track_stop(&tail, &outcome);
        text.push_str(&outcome.emit);
        if outcome.stopped {
            return Ok(TextStep {
                text,
                finish: Some(self.finish("stop", matched)),
                logprobs: entries,
            });
        }
        text.push_str(&self.stops.flush());
        Ok(TextStep {
            text,
            finish: Some(self.finish(reason.as_openai(), None)),
            logprobs: entries,
        })
    }

    /// The prompt's tokens with their logprobs (the first token has none: NaN, and no
    /// alternatives), as `echo` shows them; `text_offset` counts characters from the prompt's
    /// start. Empty unless prompt logprobs were asked for; an error if the engine sent none.
    pub fn prompt_entries(&self) -> Result<Vec<LogprobEntry>, ApiError> {
        let Some((ids, scores)) = &self.prompt else {
            return Ok(Vec::new());
        };
        let scores = scores.as_deref().unwrap_or_default();
        if scores.len() + 1 != ids.len() {
            return Err(ApiError::internal(format!(
                "the model's engine returned {} prompt logprobs for a {}-token prompt; its \
                 backend may not support prompt scoring",
                scores.len(),
                ids.len()
            )));
        }
        let mut offset = 0;
        let mut entries = Vec::with_capacity(ids.len());
        for (i, &id) in ids.iter().enumerate() {
            let mut entry = match i {
                0 => {
                    let (token, bytes) = self.token_text(id)?;
                    LogprobEntry {
                        token,
                        bytes,
                        logprob: f32::NAN,
                        text_offset: 0,
                        top: Vec::new(),
                    }
                }
                _ => self.entry(&scores[i - 1])?,
            };
            entry.text_offset = offset;
            offset += entry.token.chars().count();
            entries.push(entry);
        }
        Ok(entries)
    }

    /// The API form of one token's logprobs.
    fn entry(&self, lp: &TokenLogprob) -> Result<LogprobEntry, ApiError> {
        let (token, bytes) = self.token_text(lp.token_id)?;
        let top = lp
            .top
            .iter()
            .map(|&(id, logprob)| {
                let (token, bytes) = self.token_text(id)?;
                Ok(TopLogprob {
                    token,
                    bytes,
                    logprob,
                })
            })
            .collect::<Result<_, ApiError>>()?;
        Ok(LogprobEntry {
            token,
            bytes,
            logprob: lp.logprob,
            text_offset: self.text_chars,
            top,
        })
    }

    fn token_text(&self, id: u32) -> Result<(String, Vec<u8>), ApiError> {
        let bytes = self
            .tokenizer
            .decode_bytes(&[id], false)
            .map_err(detokenize_error)?;
        Ok((String::from_utf8_lossy(&bytes).into_owned(), bytes))
    }

    /// Mirrors the stop matcher's held text after it took `pushed`; on a stop, the index of the
    /// stop string that starts where the emitted text ends (the shortest, if several do).
    fn track_stop(&mut self, pushed: &str, outcome: &StopOutcome) -> Option<usize> {
        self.held.push_str(pushed);
        // The matcher emits a prefix of what it holds (on a stop: the text before the stop).
        self.held.drain(..outcome.emit.len().min(self.held.len()));
        if !outcome.stopped {
            return None;
        }
        self.stop_strings
            .iter()
            .enumerate()
            .filter(|(_, stop)| !stop.is_empty() && self.held.starts_with(stop.as_str()))
            .min_by_key(|(_, stop)| stop.len())
            .map(|(i, _)| i)
    }

    fn finish(&self, reason: &'static str, stop_string: Option<usize>) -> Finish {
        Finish {
            reason,
            stop_string,
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

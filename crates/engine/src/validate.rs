//! Request validation, shared by `EngineHandle::submit` (synchronous answer) and `EngineCore`.
//!
//! Context policy: the usable window is the smaller of the model's context length and the KV
//! pool's capacity (a sequence must fit the pool alone, or it could never finish). A prompt of at
//! least that many tokens is rejected (nothing could be generated); a prompt + `max_tokens` beyond
//! it is accepted and finishes with `Length` when the window is full.

use rotor_protocol::{ErrorKind, GenerateRequest, Task, WireError, MAX_LOGPROBS};

/// What a request is checked against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestLimits {
    pub vocab_size: usize,
    /// The model's context length.
    pub context_length: usize,
    /// Tokens the whole KV pool holds.
    pub pool_capacity_tokens: usize,
    /// Whether the engine can score prompts (`SamplingParams::prompt_logprobs`) and compute
    /// embeddings (`Task::Embed`); requests asking for either are refused when it cannot.
    pub prompt_outputs: bool,
}

impl RequestLimits {
    /// Longest sequence (prompt + generated) the engine can hold.
    pub fn context_window(&self) -> usize {
        self.context_length.min(self.pool_capacity_tokens)
    }
}

fn invalid(message: String) -> WireError {
    WireError::new(ErrorKind::InvalidRequest, message)
}

/// Checks prompt, stop conditions and sampling parameters.
pub fn validate_request(req: &GenerateRequest, limits: &RequestLimits) -> Result<(), WireError> {
    let prompt_len = req.token_ids.len();
    if prompt_len == 0 {
        return Err(invalid("the prompt is empty".into()));
    }
    let window = limits.context_window();
    if prompt_len >= window {
        return Err(invalid(format!(
            "the prompt has {prompt_len} tokens but the engine holds at most {window} per sequence \
             (model context {}, KV pool {} tokens), leaving no room to generate",
            limits.context_length, limits.pool_capacity_tokens
        )));
    }
    if let Some((pos, &id)) = req
        .token_ids
        .iter()
        .enumerate()
        .find(|(_, &id)| id as usize >= limits.vocab_size)
    {
        return Err(invalid(format!(
            "token id {id} at prompt position {pos} is outside the vocabulary of {} tokens",
            limits.vocab_size
        )));
    }
    let s = &req.sampling;
    validate_prompt_outputs(req, limits)?;
    if !(s.temperature.is_finite() && s.temperature >= 0.0) {
        return Err(invalid(format!(
            "temperature must be finite and >= 0, got {}",
            s.temperature
        )));
    }
    if !(s.top_p > 0.0 && s.top_p <= 1.0) {
        return Err(invalid(format!("top_p must be in (0, 1], got {}", s.top_p)));
    }
    if !(0.0..=1.0).contains(&s.min_p) {
        return Err(invalid(format!("min_p must be in [0, 1], got {}", s.min_p)));
    }
    if !(s.repetition_penalty.is_finite() && s.repetition_penalty > 0.0) {
        return Err(invalid(format!(
            "repetition_penalty must be finite and > 0, got {}",
            s.repetition_penalty
        )));
    }
    if !s.frequency_penalty.is_finite() || !s.presence_penalty.is_finite() {
        return Err(invalid(
            "frequency_penalty and presence_penalty must be finite".into(),
        ));
    }
    if let Some(n) = s.prompt_logprobs.filter(|&n| n > MAX_LOGPROBS) {
        return Err(invalid(format!(
            "prompt_logprobs asks for {n} alternatives; at most {MAX_LOGPROBS}"
        )));
    }
    if let Some(n) = s.logprobs.filter(|&n| n > MAX_LOGPROBS) {
        return Err(invalid(format!(
            "logprobs asks for {n} alternatives; at most {MAX_LOGPROBS}"
        )));
    }
    if let Some(&(id, bias)) = s
        .logit_bias
        .iter()
        .find(|(id, b)| *id as usize >= limits.vocab_size || !b.is_finite())
    {
        return Err(invalid(format!(
            "logit_bias entry ({id}, {bias}) needs a token id below {} and a finite bias",
            limits.vocab_size
        )));
    }
    let replay = s.constraint_replay_tokens as usize;
    if replay > 0 && (s.constraint.is_none() || replay >= prompt_len) {
        return Err(invalid(format!(
            "constraint_replay_tokens = {replay} needs a constraint and a prompt longer than that \
             ({prompt_len} tokens)"
        )));
    }
    Ok(())
}

/// `max_tokens` 0, prompt logprobs and embeddings: what the task allows and the engine supports.
fn validate_prompt_outputs(req: &GenerateRequest, limits: &RequestLimits) -> Result<(), WireError> {
    let scoring = req.sampling.prompt_logprobs.is_some();
    let feature = match req.task {
        Task::Embed { .. } if scoring => {
            return Err(invalid(
                "an embedding request cannot also ask for prompt_logprobs".into(),
            ))
        }
        Task::Embed { .. } if req.stop.max_tokens != 0 => {
            return Err(invalid(format!(
                "an embedding request generates no tokens: max_tokens must be 0, got {}",
                req.stop.max_tokens
            )))
        }
        Task::Embed { .. } => Some("embeddings"),
        Task::Generate if scoring => Some("prompt logprobs (prompt scoring)"),
        Task::Generate if req.stop.max_tokens == 0 => {
            return Err(invalid(
                "max_tokens must be at least 1 (0 is allowed only with prompt_logprobs or for \
                 an embedding)"
                    .into(),
            ))
        }
        Task::Generate => None,
    };
    match feature {
        Some(feature) if !limits.prompt_outputs => Err(invalid(format!(
            "this engine does not support {feature}: its model runner cannot compute per-token \
             prompt outputs"
        ))),
        _ => Ok(()),
    }
}

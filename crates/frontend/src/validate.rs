//! Request validation: an OpenAI request plus the served model become a [`GenerationPlan`]
//! (token ids, sampling, stop conditions), or an [`ApiError`] naming the offending parameter.
//!
//! Limits: `n` and `best_of` in 1..=[`MAX_CHOICES`]; `temperature` in [0, 2]; `top_p` in (0, 1]; penalties in [-2, 2];
//! `repetition_penalty` > 0; `min_p` in [0, 1]; `top_k` ≥ 0 (0 = off); at most
//! `FrontendConfig::max_stop_sequences` non-empty stop strings; `max_tokens` ≥ 1 (0 with `echo`:
//! the prompt is only scored) and
//! prompt + `max_tokens` ≤ context. Without `max_tokens` the budget is the context left after
//! the prompt, clamped to `FrontendConfig::default_max_tokens_cap`.

use rotor_protocol::openai::{
    ChatCompletionRequest, ChatMessage, CompletionRequest, MessageContent, Prompt, SamplingFields,
};
use rotor_protocol::{GenerateRequest, SamplingParams, StopConditions, MAX_LOGPROBS};
use rotor_text::reasoning::think_opened_in_prompt;
use rotor_text::{ReasoningParserKind, RenderOptions, ToolParserKind};
use serde_json::Value;
use std::collections::BTreeMap;

use crate::chat_output::ChatOutputPlan;
use crate::config::FrontendConfig;
use crate::error::ApiError;
use crate::registry::ModelEntry;
use crate::structured::{constraint_kind, constraint_of};
use crate::tool_grammar::{after_reasoning, forced_calls_rules, with_think_start, ThinkStart};
use crate::tool_prompt::rewrite_messages;
use crate::tool_request::ToolRequest;

/// A validated, tokenized request and how to answer it.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerationPlan {
    pub request: GenerateRequest,
    /// Stop strings matched on the generated text (never shown).
    pub stop_strings: Vec<String>,
    pub stream: bool,
    /// Streaming only: send a final chunk with usage.
    pub include_usage: bool,
    /// Chat: what to parse out of the answer (reasoning, tool calls).
    pub output: ChatOutputPlan,
    /// The request's `tool_choice` when it offered tools (for /metrics).
    pub tool_choice: Option<&'static str>,
    /// The kind of output constraint asked for, if any (for /metrics).
    pub constraint_kind: Option<&'static str>,
    /// Choices to answer with for this prompt (`n`).
    pub n: u32,
    /// Sequences to generate for this prompt, of which the `n` with the highest cumulative
    /// logprob are answered (`best_of`; equal to `n` unless a text completion asks for more).
    pub best_of: u32,
    /// Text completions with `echo`: the prompt text, put before each choice's text.
    pub echo: Option<String>,
}

/// Most choices one request may ask for (`n`, `best_of`), per prompt.
pub const MAX_CHOICES: u32 = 16;

/// How chat messages are rendered: the generation prompt, the request's tools, and extra
/// template variables.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ChatRender<'a> {
    pub add_generation_prompt: bool,
    /// Tools to describe to the model (`None` with `tool_choice: "none"`).
    pub tools: Option<&'a ToolRequest>,
    pub kwargs: Option<&'a serde_json::Map<String, Value>>,
}

impl GenerationPlan {
    pub fn prompt_tokens(&self) -> usize {
        self.request.token_ids.len()
    }
}

const CHAT_ROLES: &[&str] = &["system", "developer", "user", "assistant", "tool"];

/// Validates a chat request, renders its messages with the model's template and tokenizes them.
pub fn chat_plan(
    entry: &ModelEntry,
    req: &ChatCompletionRequest,
    cfg: &FrontendConfig,
    request_id: &str,
) -> Result<GenerationPlan, ApiError> {
    let logprobs = match (req.logprobs, req.top_logprobs) {
        (Some(true), top) => Some(logprob_count("top_logprobs", top.unwrap_or(0))?),
        (_, Some(_)) => {
            return Err(ApiError::invalid_param(
                "top_logprobs",
                "`top_logprobs` needs `logprobs` = true.",
            ))
        }
        _ => None,
    };
    let fields = req.sampling_fields();
    let mut checked = check_sampling(&fields, entry, cfg)?;
    checked.sampling.logprobs = logprobs;
    let tools = ToolRequest::from_request(req)?;
    let constraint = constraint_of(&req.constraint_fields())?;
    let requested_kind = constraint.as_ref().map(constraint_kind);
    let calling = tools.as_ref().filter(|t| t.parses_calls());
    let tool_kind = match calling {
        Some(_) => Some(entry.parsers.tool_kind().ok_or_else(|| {
            ApiError::unsupported(
                "tools",
                &format!(
                    "tool calling is off for model {:?} (its server runs with --tool-call-parser none)",
                    entry.card.name
                ),
            )
        })?),
        None => None,
    };
    let forced = calling.filter(|t| t.forces_call());
    if forced.is_some() && constraint.is_some() {
        return Err(ApiError::invalid_param(
            "tool_choice",
            "A forced tool call (`tool_choice` \"required\" or a named function) cannot be combined with `response_format` or a guided-decoding field.",
        ));
    }
    let text = render_chat(
        entry,
        &req.messages,
        ChatRender {
            add_generation_prompt: true,
            tools: calling,
            kwargs: req.chat_template_kwargs.as_ref(),
        },
    )?;
    let ids = encode(entry, &text, true)?;
    let reasoning = entry
        .parsers
        .reasoning_kind()
        .map(|kind| (kind, think_opened_in_prompt(&text)));
    let think = match reasoning {
        None => ThinkStart::None,
        Some((ReasoningParserKind::DeepseekR1, _)) | Some((_, true)) => ThinkStart::Inside,
        Some(_) => ThinkStart::Optional,
    };
    let constraint = match (forced, tool_kind) {
        (Some(tools), Some(kind)) => Some(rotor_protocol::Constraint::Lark {
            grammar: with_think_start(&forced_calls_rules(kind, tools)?, think),
        }),
        _ => constraint.map(|c| after_reasoning(c, think)),
    };
    let constraint_kind = match forced {
        Some(_) => Some("tool_call"),
        None => requested_kind,
    };
    checked.sampling.constraint = constraint;
    let max_param = if req.max_completion_tokens.is_some() {
        "max_completion_tokens"
    } else {
        "max_tokens"
    };
    let mut plan = finish_plan(
        entry,
        ids,
        checked,
        cfg,
        request_id,
        ("messages", max_param),
    )?;
    plan.output = ChatOutputPlan {
        tools: calling.zip(tool_kind).map(|(t, kind)| (kind, t.specs())),
        reasoning,
        single_call: calling.is_some_and(|t| !t.parallel),
    };
    plan.tool_choice = tools.as_ref().map(|t| t.choice.as_str());
    plan.constraint_kind = constraint_kind;
    Ok(plan)
}

/// Validates a text-completion request and tokenizes its prompts (or takes their token ids):
/// one plan per prompt of the request, in order.
pub fn completion_plans(
    entry: &ModelEntry,
    req: &CompletionRequest,
    cfg: &FrontendConfig,
    request_id: &str,
) -> Result<Vec<GenerationPlan>, ApiError> {
    let logprobs = req
        .logprobs
        .map(|n| logprob_count("logprobs", n))
        .transpose()?;
    if req.suffix.is_some() {
        return Err(ApiError::unsupported(
            "suffix",
            "insertion is not implemented",
        ));
    }
    let mut checked = check_sampling(&req.sampling_fields(), entry, cfg)?;
    let best_of = match req.best_of {
        None => checked.n,
        Some(_) => choice_count("best_of", req.best_of)?,
    };
    if best_of < checked.n {
        return Err(ApiError::invalid_param(
            "best_of",
            format!(
                "`best_of` ({best_of}) must be at least `n` ({}).",
                checked.n
            ),
        ));
    }
    if best_of > checked.n && checked.stream {
        return Err(ApiError::invalid_param(
            "best_of",
            "`best_of` greater than `n` cannot be streamed: the best sequences are known only at the end.",
        ));
    }
    checked.sampling.logprobs = match (logprobs, best_of > checked.n) {
        // Ranking needs every sampled token's logprob, shown or not.
        (None, true) => Some(0),
        (lp, _) => lp,
    };
    checked.sampling.constraint = constraint_of(&req.constraint_fields())?;
    let constraint_kind = checked.sampling.constraint.as_ref().map(constraint_kind);
    // (token ids, the prompt's text when it came as text)
    let text_prompt =
        |text: &String| Ok::<_, ApiError>((encode(entry, text, true)?, Some(text.clone())));
    let id_prompt =
        |ids: &Vec<u32>| Ok::<_, ApiError>((check_token_ids(entry, ids.clone())?, None));
    let prompts: Vec<(Vec<u32>, Option<String>)> = match &req.prompt {
        Prompt::Text(text) => vec![text_prompt(text)?],
        Prompt::Texts(texts) => texts.iter().map(text_prompt).collect::<Result<_, _>>()?,
        Prompt::Tokens(ids) => vec![id_prompt(ids)?],
        Prompt::TokenLists(lists) => lists.iter().map(id_prompt).collect::<Result<_, _>>()?,
    };
    if prompts.is_empty() {
        return Err(ApiError::invalid_param(
            "prompt",
            "The list of prompts must not be empty.",
        ));
    }
    if prompts.len() * best_of as usize > MAX_PROMPT_SEQUENCES {
        return Err(ApiError::invalid_param(
            "prompt",
            format!(
                "{} prompts × {best_of} sequences each is more than the {MAX_PROMPT_SEQUENCES} \
                 sequences one request may generate.",
                prompts.len()
            ),
        ));
    }
    let echo = req.echo == Some(true);
    if echo {
        // The prompt's own logprobs come with it (an engine that cannot score prompts refuses
        // the request); with `max_tokens` 0 nothing is generated, the prompt is only scored.
        checked.zero_max_tokens = true;
        if logprobs.is_some() || checked.max_tokens == Some(0) {
            checked.sampling.prompt_logprobs = Some(logprobs.unwrap_or(0));
        }
    }
    prompts
        .into_iter()
        .map(|(ids, text)| {
            let echo_text = match (echo, text) {
                (false, _) => None,
                (true, Some(text)) => Some(text),
                (true, None) => Some(
                    entry
                        .tokenizer
                        .decode(&ids, false)
                        .map_err(|e| ApiError::invalid_param("prompt", e.to_string()))?,
                ),
            };
            let mut plan = finish_plan(
                entry,
                ids,
                checked.clone(),
                cfg,
                request_id,
                ("prompt", "max_tokens"),
            )?;
            plan.constraint_kind = constraint_kind;
            plan.best_of = best_of;
            plan.echo = echo_text;
            Ok(plan)
        })
        .collect()
}

/// Most sequences one text-completion request may generate (prompts × `best_of`).
pub const MAX_PROMPT_SEQUENCES: usize = 64;

/// The prompt text of `messages` in the model's chat template. A template that does not read
/// `tools` gets the tools and the tool-call history rewritten into its messages
/// ([`crate::tool_prompt`]) in the model's tool-call markup.
pub(crate) fn render_chat(
    entry: &ModelEntry,
    messages: &[ChatMessage],
    how: ChatRender<'_>,
) -> Result<String, ApiError> {
    let mut messages = template_messages(messages)?;
    let Some(template) = &entry.template else {
        return Err(ApiError::invalid_param(
            "messages",
            format!(
                "model {:?} has no chat template, so chat completions cannot be served; use \
                 /v1/completions, or start its worker with --chat-template FILE",
                entry.card.name
            ),
        ));
    };
    let tools_json = how.tools.map(|t| t.template_tools());
    let template_tools = if template.reads_tools() {
        tools_json.as_ref()
    } else {
        let kind = entry.parsers.tool_kind().unwrap_or(ToolParserKind::Hermes);
        let listed = tools_json
            .as_ref()
            .and_then(Value::as_array)
            .map(Vec::as_slice);
        rewrite_messages(kind, &mut messages, listed);
        None
    };
    template
        .render_with(
            &Value::Array(messages),
            RenderOptions {
                add_generation_prompt: how.add_generation_prompt,
                tools: template_tools,
                extra: how.kwargs,
            },
        )
        .map_err(|err| {
            ApiError::invalid_param("messages", format!("Cannot apply the chat template: {err}"))
        })
}

/// The messages as the template sees them: `developer` becomes `system`; content is required
/// except on an assistant message with `tool_calls`.
fn template_messages(messages: &[ChatMessage]) -> Result<Vec<Value>, ApiError> {
    if messages.is_empty() {
        return Err(ApiError::invalid_param(
            "messages",
            "`messages` must not be empty.",
        ));
    }
    let mut out = Vec::with_capacity(messages.len());
    for (i, message) in messages.iter().enumerate() {
        if !CHAT_ROLES.contains(&message.role.as_str()) {
            return Err(ApiError::invalid_param(
                &format!("messages[{i}].role"),
                format!(
                    "Unknown role {:?}; expected one of {CHAT_ROLES:?}.",
                    message.role
                ),
            ));
        }
        let content_param = format!("messages[{i}].content");
        let has_calls = message.tool_calls.as_ref().is_some_and(|c| !c.is_empty());
        if has_calls && message.role != "assistant" {
            return Err(ApiError::invalid_param(
                &format!("messages[{i}].tool_calls"),
                "Only assistant messages carry `tool_calls`.",
            ));
        }
        match &message.content {
            None if has_calls => {}
            None => {
                return Err(ApiError::invalid_param(
                    &content_param,
                    "Every message needs `content` (an assistant message may leave it null when it has `tool_calls`).",
                ))
            }
            Some(MessageContent::Parts(parts)) => {
                for part in parts {
                    if part.kind != "text" {
                        return Err(ApiError::unsupported(
                            &content_param,
                            &format!("content parts of type {:?}; only \"text\"", part.kind),
                        ));
                    }
                    if part.text.is_none() {
                        return Err(ApiError::invalid_param(
                            &content_param,
                            "A text part needs `text`.",
                        ));
                    }
                }
            }
            Some(MessageContent::Text(_)) => {}
        }
        let mut message = message.clone();
        if message.role == "developer" {
            message.role = "system".to_string();
        }
        out.push(
            serde_json::to_value(message)
                .map_err(|err| ApiError::internal(format!("cannot serialize messages: {err}")))?,
        );
    }
    Ok(out)
}

/// Tokenizes with special tokens recognised; with `add_bos`, adds BOS when the model wants it
/// and the text does not already start with it.
pub(crate) fn encode(entry: &ModelEntry, text: &str, add_bos: bool) -> Result<Vec<u32>, ApiError> {
    let mut ids = entry
        .tokenizer
        .encode(text, true)
        .map_err(|err| ApiError::internal(format!("tokenization failed: {err}")))?;
    let spec = &entry.card.tokenizer;
    if let (true, true, Some(bos)) = (add_bos, spec.add_bos_token, spec.bos_token_id) {
        if ids.first() != Some(&bos) {
            ids.insert(0, bos);
        }
    }
    Ok(ids)
}

fn check_token_ids(entry: &ModelEntry, ids: Vec<u32>) -> Result<Vec<u32>, ApiError> {
    check_vocabulary(entry, &ids, "prompt")?;
    Ok(ids)
}

/// A 400 naming `param` when an id is outside the model's vocabulary.
pub(crate) fn check_vocabulary(
    entry: &ModelEntry,
    ids: &[u32],
    param: &str,
) -> Result<(), ApiError> {
    let vocab = entry.tokenizer.vocab_size();
    match ids.iter().find(|id| **id as usize >= vocab) {
        Some(bad) => Err(ApiError::invalid_param(
            param,
            format!("Token id {bad} is outside the vocabulary (size {vocab})."),
        )),
        None => Ok(()),
    }
}

/// Sampling parameters that passed their range checks.
#[derive(Clone)]
struct CheckedSampling {
    sampling: SamplingParams,
    max_tokens: Option<i64>,
    min_tokens: u32,
    ignore_eos: bool,
    stop_strings: Vec<String>,
    stream: bool,
    include_usage: bool,
    n: u32,
    /// `max_tokens` 0 is allowed (text completions with `echo`: score the prompt only).
    zero_max_tokens: bool,
}

fn check_range(
    param: &str,
    value: Option<f64>,
    ok: impl Fn(f64) -> bool,
    rule: &str,
) -> Result<(), ApiError> {
    match value {
        Some(v) if !ok(v) => Err(ApiError::invalid_param(
            param,
            format!("`{param}` must be {rule}; got {v}."),
        )),
        _ => Ok(()),
    }
}

/// How many alternatives a `logprobs` / `top_logprobs` value asks for (0 to `MAX_LOGPROBS`).
fn logprob_count(param: &str, n: i64) -> Result<u32, ApiError> {
    u32::try_from(n)
        .ok()
        .filter(|&n| n <= MAX_LOGPROBS)
        .ok_or_else(|| {
            ApiError::invalid_param(
                param,
                format!("`{param}` must be between 0 and {MAX_LOGPROBS}; got {n}."),
            )
        })
}

/// OpenAI `logit_bias`: token ids (as strings) of the model's vocabulary, biases in [-100, 100].
fn logit_bias(
    bias: Option<&BTreeMap<String, f64>>,
    vocab_size: usize,
) -> Result<Vec<(u32, f32)>, ApiError> {
    let Some(bias) = bias else {
        return Ok(Vec::new());
    };
    bias.iter()
        .map(|(key, &value)| {
            let id = key
                .parse::<u32>()
                .ok()
                .filter(|&id| (id as usize) < vocab_size)
                .ok_or_else(|| {
                    ApiError::invalid_param(
                        "logit_bias",
                        format!(
                            "`logit_bias` keys must be token ids below the vocabulary size \
                             {vocab_size}; got {key:?}."
                        ),
                    )
                })?;
            if !(-100.0..=100.0).contains(&value) {
                return Err(ApiError::invalid_param(
                    "logit_bias",
                    format!("`logit_bias` values must be between -100 and 100; got {value} for token {id}."),
                ));
            }
            Ok((id, value as f32))
        })
        .collect()
}

fn check_sampling(
    f: &SamplingFields,
    entry: &ModelEntry,
    cfg: &FrontendConfig,
) -> Result<CheckedSampling, ApiError> {
    let defaults = &entry.card.sampling_defaults;
    let n = choice_count("n", f.n)?;
    let logit_bias = logit_bias(f.logit_bias.as_ref(), entry.tokenizer.vocab_size())?;
    check_range(
        "temperature",
        f.temperature,
        |v| (0.0..=2.0).contains(&v),
        "between 0 and 2",
    )?;
    check_range("top_p", f.top_p, |v| v > 0.0 && v <= 1.0, "in (0, 1]")?;
    check_range(
        "frequency_penalty",
        f.frequency_penalty,
        |v| (-2.0..=2.0).contains(&v),
        "between -2 and 2",
    )?;
    check_range(
        "presence_penalty",
        f.presence_penalty,
        |v| (-2.0..=2.0).contains(&v),
        "between -2 and 2",
    )?;
    check_range(
        "repetition_penalty",
        f.repetition_penalty,
        |v| v > 0.0 && v.is_finite(),
        "> 0",
    )?;
    check_range(
        "min_p",
        f.min_p,
        |v| (0.0..=1.0).contains(&v),
        "between 0 and 1",
    )?;
    let top_k = match f.top_k {
        None | Some(0) | Some(-1) => None,
        Some(k) if k > 0 => Some(u32::try_from(k).unwrap_or(u32::MAX)),
        Some(k) => {
            return Err(ApiError::invalid_param(
                "top_k",
                format!("`top_k` must be ≥ 0 (or -1 for off); got {k}."),
            ))
        }
    };
    let min_tokens = match f.min_tokens {
        None => 0,
        Some(m) => u32::try_from(m).map_err(|_| {
            ApiError::invalid_param("min_tokens", format!("`min_tokens` must be ≥ 0; got {m}."))
        })?,
    };
    let stop_strings = f
        .stop
        .clone()
        .map(|stop| stop.into_vec())
        .unwrap_or_default();
    if stop_strings.len() > cfg.max_stop_sequences {
        return Err(ApiError::invalid_param(
            "stop",
            format!(
                "At most {} stop sequences are allowed; got {}.",
                cfg.max_stop_sequences,
                stop_strings.len()
            ),
        ));
    }
    if stop_strings.iter().any(String::is_empty) {
        return Err(ApiError::invalid_param(
            "stop",
            "Stop sequences must not be empty.",
        ));
    }
    let stream = f.stream.unwrap_or(false);
    if f.stream_options.is_some() && !stream {
        return Err(ApiError::invalid_param(
            "stream_options",
            "`stream_options` needs `stream` = true.",
        ));
    }
    let include_usage = f
        .stream_options
        .as_ref()
        .and_then(|o| o.include_usage)
        .unwrap_or(false);
    let sampling = SamplingParams {
        temperature: f
            .temperature
            .map(|t| t as f32)
            .or(defaults.temperature)
            .unwrap_or(1.0),
        top_k: top_k.or(defaults.top_k),
        top_p: f.top_p.map(|p| p as f32).or(defaults.top_p).unwrap_or(1.0),
        min_p: f.min_p.map(|p| p as f32).or(defaults.min_p).unwrap_or(0.0),
        seed: f.seed.map(|seed| seed as u64),
        repetition_penalty: f
            .repetition_penalty
            .map(|p| p as f32)
            .or(defaults.repetition_penalty)
            .unwrap_or(1.0),
        frequency_penalty: f.frequency_penalty.unwrap_or(0.0) as f32,
        presence_penalty: f.presence_penalty.unwrap_or(0.0) as f32,
        constraint: None,
        logit_bias,
        ..SamplingParams::default()
    };
    Ok(CheckedSampling {
        sampling,
        max_tokens: f.max_tokens,
        min_tokens,
        ignore_eos: f.ignore_eos.unwrap_or(false),
        stop_strings,
        stream,
        include_usage,
        n,
        zero_max_tokens: false,
    })
}

/// `n` or `best_of`: 1 when absent, else in 1..=[`MAX_CHOICES`].
fn choice_count(param: &str, value: Option<i64>) -> Result<u32, ApiError> {
    match value {
        None => Ok(1),
        Some(v) if (1..=i64::from(MAX_CHOICES)).contains(&v) => Ok(v as u32),
        Some(v) => Err(ApiError::invalid_param(
            param,
            format!("`{param}` must be between 1 and {MAX_CHOICES}; got {v}."),
        )),
    }
}

/// Applies the context budget and assembles the plan. `params` = (prompt param, max-tokens param).
fn finish_plan(
    entry: &ModelEntry,
    ids: Vec<u32>,
    checked: CheckedSampling,
    cfg: &FrontendConfig,
    request_id: &str,
    (prompt_param, max_param): (&str, &str),
) -> Result<GenerationPlan, ApiError> {
    if ids.is_empty() {
        return Err(ApiError::invalid_param(
            prompt_param,
            "The prompt must not be empty.",
        ));
    }
    let context = entry.card.context_length;
    let prompt_len = ids.len();
    if prompt_len >= context as usize {
        return Err(ApiError::context_length_exceeded(
            prompt_param,
            prompt_len,
            context,
        ));
    }
    let room = context - prompt_len as u32;
    let max_tokens = match checked.max_tokens {
        Some(0) if checked.zero_max_tokens => 0,
        Some(m) if m <= 0 => {
            return Err(ApiError::invalid_param(
                max_param,
                format!("`{max_param}` must be at least 1; got {m}."),
            ))
        }
        Some(m) if m > i64::from(room) => {
            return Err(ApiError::invalid_param(
                max_param,
                format!(
                    "This model's maximum context length is {context} tokens; the prompt has \
                     {prompt_len} tokens and `{max_param}` asks for {m}, {} too many.",
                    m - i64::from(room)
                ),
            )
            .with_code("context_length_exceeded"))
        }
        Some(m) => m as u32,
        None => cfg
            .default_max_tokens_cap
            .map_or(room, |cap| room.min(cap.max(1))),
    };
    if checked.min_tokens > max_tokens {
        return Err(ApiError::invalid_param(
            "min_tokens",
            format!(
                "`min_tokens` ({}) exceeds the token budget ({max_tokens}).",
                checked.min_tokens
            ),
        ));
    }
    let stop = StopConditions {
        max_tokens,
        stop_token_ids: if checked.ignore_eos {
            Vec::new()
        } else {
            entry.stop_token_ids.clone()
        },
        min_tokens: checked.min_tokens,
        ignore_eos: checked.ignore_eos,
    };
    Ok(GenerationPlan {
        request: GenerateRequest {
            task: Default::default(),
            id: request_id.to_string(),
            token_ids: ids,
            sampling: checked.sampling,
            stop,
        },
        stop_strings: checked.stop_strings,
        stream: checked.stream,
        include_usage: checked.include_usage,
        output: ChatOutputPlan::default(),
        tool_choice: None,
        constraint_kind: None,
        n: checked.n,
        best_of: checked.n,
        echo: None,
    })
}

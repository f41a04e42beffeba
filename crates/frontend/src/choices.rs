//! The choices of one response: `best_of` sequences (`n` unless a text completion asks for
//! more) for every prompt of the request, each its own backend request.
//!
//! One prefill per prompt: a prompt's first sequence (its leader) runs until its first output
//! before the prompt's other sequences start, so they find the prompt's full KV blocks in the
//! engine's prefix cache (and, behind the router, land on the worker that holds them). The
//! leader announces them (`SamplingParams::siblings`), so the engine also keeps the prompt's
//! last, partly filled block: each other sequence gets a copy of it (copy-on-write) and computes
//! only the prompt's last token.

use futures::future::join_all;
use rotor_protocol::openai::{PromptTokensDetails, Usage};
use serde_json::Value;

use crate::chat_output::{ChatAnswer, ChatOutput};
use crate::error::ApiError;
use crate::generation::{TextGeneration, TextStep};
use crate::registry::ModelEntry;
use crate::responses::ResponseBuilder;
use crate::routes::AppState;
use crate::validate::GenerationPlan;

/// One sequence in progress.
pub(crate) struct ChoiceRun {
    /// Its place among the request's sequences: `prompt × best_of + sequence`.
    pub index: u32,
    /// Which prompt of the request it continues.
    pub prompt: usize,
    /// The prompt's first sequence: its prompt tokens count in `usage` (once per prompt).
    pub leader: bool,
    pub generation: TextGeneration,
    /// Chat answers with a reasoning or tool-call parser: text goes through it.
    pub chat: Option<ChatOutput>,
    /// A leader's first step, awaited before the other sequences started; handled first.
    pub first: Option<Option<Result<TextStep, ApiError>>>,
    /// Text completions with `echo`: the prompt text, shown before the generated text.
    pub echo: Option<String>,
}

/// Starts every sequence of `plans` (one plan per prompt): the leaders first, then, once each
/// has produced its first output, the rest. An error of a leader's first step (overloaded, bad
/// request) is returned, so that it gets its HTTP status; the sequences started are dropped
/// (cancelled).
pub(crate) async fn start_choices(
    state: &AppState,
    entry: &ModelEntry,
    plans: &[GenerationPlan],
) -> Result<Vec<ChoiceRun>, ApiError> {
    let start = |prompt: usize, seq: u32| -> Result<ChoiceRun, ApiError> {
        let mut plan = plans[prompt].clone();
        let id_of = |seq: u32| {
            if prompt > 0 || seq > 0 {
                format!("{}-{prompt}-{seq}", plan.request.id)
            } else {
                plan.request.id.clone()
            }
        };
        let leader = id_of(0);
        plan.request.id = id_of(seq);
        // The leader announces the prompt's other sequences, so that the engine keeps the
        // prompt's last, partly filled KV block for them to copy; they name the leader, so that
        // a router sends them to its worker whatever its mode.
        plan.request.sampling.siblings = if seq == 0 { plan.best_of - 1 } else { 0 };
        plan.request.sampling.first_sibling = (seq > 0).then_some(leader);
        // Distinct seeds, so that seeded sequences differ from each other yet reproduce.
        plan.request.sampling.seed = plan
            .request
            .sampling
            .seed
            .map(|seed| seed.wrapping_add(u64::from(seq)));
        let timer = state.metrics.start_generation(&entry.card.name);
        let chat = (!plan.output.is_plain())
            .then(|| ChatOutput::new(&plan.output, std::sync::Arc::clone(&state.metrics)));
        Ok(ChoiceRun {
            index: prompt as u32 * plan.best_of + seq,
            prompt,
            leader: seq == 0,
            generation: TextGeneration::start(entry, &plan, timer)?,
            chat,
            first: None,
            echo: plan.echo.clone(),
        })
    };
    let mut runs = (0..plans.len())
        .map(|prompt| start(prompt, 0))
        .collect::<Result<Vec<_>, _>>()?;
    join_all(runs.iter_mut().map(|run| async move {
        run.first = Some(run.generation.next_step().await);
    }))
    .await;
    for run in &mut runs {
        if let Some(Some(Err(_))) = &run.first {
            let Some(Some(Err(err))) = run.first.take() else {
                unreachable!("matched just above")
            };
            return Err(err);
        }
    }
    for (prompt, plan) in plans.iter().enumerate() {
        for seq in 1..plan.best_of {
            runs.push(start(prompt, seq)?);
        }
    }
    runs.sort_by_key(|run| run.index);
    state.metrics.count_choices(runs.len() - plans.len());
    Ok(runs)
}

impl ChoiceRun {
    /// The next step: the one awaited at start first, then the generation's.
    pub async fn next_step(&mut self) -> Option<Result<TextStep, ApiError>> {
        match self.first.take() {
            Some(first) => first,
            None => self.generation.next_step().await,
        }
    }
}

/// One finished sequence of a non-streaming response.
pub(crate) struct FinishedChoice {
    pub index: u32,
    pub prompt: usize,
    pub leader: bool,
    /// The choice object, `index` not yet set.
    pub choice: Value,
    pub usage: Usage,
    /// Sum of the logprobs of its shown tokens (for `best_of`; 0 without logprobs).
    pub cumulative_logprob: f64,
}

/// Runs one sequence to its end and builds its choice.
pub(crate) async fn finish_choice(
    mut run: ChoiceRun,
    builder: &ResponseBuilder,
) -> Result<FinishedChoice, ApiError> {
    // If the client disconnects, hyper drops this future and with it the backend stream.
    let echo = run.echo.take();
    let echo_chars = echo.as_ref().map_or(0, |e| e.chars().count());
    let mut text = echo.unwrap_or_default();
    let mut answer = ChatAnswer::default();
    let mut logprobs = Vec::new();
    while let Some(step) = run.next_step().await {
        let mut step = step?;
        logprobs.append(&mut step.logprobs);
        let body = match &mut run.chat {
            None => {
                text.push_str(&step.text);
                let Some(finish) = step.finish else {
                    continue;
                };
                (builder.full(std::mem::take(&mut text), &finish), finish)
            }
            Some(chat) => {
                answer.apply(chat.push(&step.text));
                let Some(finish) = step.finish else {
                    continue;
                };
                let (last, reason) = chat.finish(finish.reason);
                answer.apply(last);
                let answer = std::mem::take(&mut answer);
                (builder.chat_full(answer, reason, finish.usage), finish)
            }
        };
        let (mut body, finish) = body;
        let cumulative_logprob = logprobs.iter().map(|e| f64::from(e.logprob)).sum();
        // With `echo`, the prompt's tokens come first and the generated ones' offsets follow
        // the echoed text.
        let mut shown = run.generation.prompt_entries()?;
        for entry in &mut logprobs {
            entry.text_offset += echo_chars;
        }
        shown.append(&mut logprobs);
        builder.attach_logprobs(&mut body, &shown);
        let choice = body["choices"][0].take();
        return Ok(FinishedChoice {
            index: run.index,
            prompt: run.prompt,
            leader: run.leader,
            choice,
            usage: finish.usage,
            cumulative_logprob,
        });
    }
    Err(ApiError::internal("generation ended without a finish"))
}

/// The non-streaming body of every sequence of a request: for each prompt, its `n` sequences
/// with the highest cumulative logprob (all of them unless `best_of` > `n`), numbered in order.
pub(crate) fn merge_choices(
    builder: &ResponseBuilder,
    mut finished: Vec<FinishedChoice>,
    n: u32,
) -> Value {
    let usage = total_usage(finished.iter().map(|f| (f.leader, f.usage)));
    finished.sort_by(|a, b| {
        a.prompt.cmp(&b.prompt).then(
            b.cumulative_logprob
                .total_cmp(&a.cumulative_logprob)
                .then(a.index.cmp(&b.index)),
        )
    });
    let mut choices = Vec::new();
    let mut kept_of_prompt = (usize::MAX, 0u32);
    for f in finished {
        if kept_of_prompt.0 != f.prompt {
            kept_of_prompt = (f.prompt, 0);
        }
        if kept_of_prompt.1 == n {
            continue;
        }
        let mut choice = f.choice;
        choice["index"] = Value::from(f.prompt as u32 * n + kept_of_prompt.1);
        kept_of_prompt.1 += 1;
        choices.push(choice);
    }
    builder.body_with(choices, usage)
}

/// The usage of a whole response: every sequence's completion tokens, each prompt's tokens once
/// (those of its leader, `leader` = true).
pub(crate) fn total_usage(parts: impl Iterator<Item = (bool, Usage)>) -> Usage {
    let mut total = Usage {
        prompt_tokens: 0,
        completion_tokens: 0,
        total_tokens: 0,
        prompt_tokens_details: Some(PromptTokensDetails { cached_tokens: 0 }),
    };
    for (leader, usage) in parts {
        total.completion_tokens += usage.completion_tokens;
        if leader {
            total.prompt_tokens += usage.prompt_tokens;
            if let (Some(all), Some(this)) = (
                &mut total.prompt_tokens_details,
                usage.prompt_tokens_details,
            ) {
                all.cached_tokens += this.cached_tokens;
            }
        }
    }
    total.total_tokens = total.prompt_tokens + total.completion_tokens;
    total
}

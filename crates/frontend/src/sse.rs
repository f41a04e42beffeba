//! Server-sent-event responses: `data: {chunk}\n\n` per step, `data: [DONE]` last. Each event
//! is flushed as it is produced; when the client goes away, hyper drops the body stream, which
//! drops every [`TextGeneration`](crate::generation::TextGeneration) and so the backend streams
//! (cancelling the requests).
//!
//! A response with several choices (`n`, several prompts) interleaves their chunks as their
//! tokens come, each chunk carrying its choice's `index`; the usage chunk and `[DONE]` come
//! after the last choice ended. A choice that fails ends the whole stream with the error.

use std::collections::VecDeque;
use std::convert::Infallible;

use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::stream::{self, BoxStream, SelectAll, StreamExt};
use rotor_protocol::openai::Usage;
use serde_json::Value;
use tracing::Instrument;

use crate::choices::{total_usage, ChoiceRun};
use crate::error::ApiError;
use crate::generation::{LogprobEntry, TextStep};
use crate::responses::ResponseBuilder;

/// Streams the choices of a response. Their first steps were awaited by
/// [`start_choices`](crate::choices::start_choices), so an error the backend reports at once
/// (overloaded, stopped) has already got its HTTP status instead of a 200 stream.
pub async fn stream_response(
    runs: Vec<ChoiceRun>,
    builder: ResponseBuilder,
    include_usage: bool,
) -> Result<Response, ApiError> {
    let mut merged = SelectAll::new();
    for run in runs {
        merged.push(choice_events(run, builder.clone()));
    }
    let state = StreamState {
        merged: Some(merged),
        builder,
        include_usage,
        usage: Vec::new(),
        queue: VecDeque::new(),
    };
    // The body is polled after the handler returned: keep its work in the request's span.
    let span = tracing::Span::current();
    let events = stream::unfold(state, move |mut state| {
        let span = span.clone();
        async move {
            let event = state.next_event().instrument(span).await?;
            Some((Ok::<_, Infallible>(event), state))
        }
    });
    Ok(Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response())
}

/// What one choice's stream yields.
enum ChoiceEvent {
    /// A chunk with this choice (its `index` set).
    Chunk(Value),
    /// The choice ended: (it was its prompt's leader, its usage).
    Finished(bool, Usage),
    Failed(ApiError),
}

struct StreamState {
    /// Every choice's events; `None` once the stream ended (dropping it cancels the rest).
    merged: Option<SelectAll<BoxStream<'static, ChoiceEvent>>>,
    builder: ResponseBuilder,
    include_usage: bool,
    usage: Vec<(bool, Usage)>,
    queue: VecDeque<Event>,
}

impl StreamState {
    async fn next_event(&mut self) -> Option<Event> {
        loop {
            if let Some(event) = self.queue.pop_front() {
                return Some(event);
            }
            let merged = self.merged.as_mut()?;
            match merged.next().await {
                Some(ChoiceEvent::Chunk(chunk)) => return Some(data(&chunk)),
                Some(ChoiceEvent::Finished(leader, usage)) => self.usage.push((leader, usage)),
                Some(ChoiceEvent::Failed(err)) => {
                    let body = serde_json::to_value(err.body())
                        .expect("invariant: error bodies serialize");
                    self.queue.push_back(data(&body));
                    self.end();
                }
                None => {
                    if self.include_usage {
                        let usage = total_usage(self.usage.drain(..));
                        self.queue.push_back(data(&self.builder.usage_chunk(usage)));
                    }
                    self.end();
                }
            }
        }
    }

    fn end(&mut self) {
        self.merged = None;
        self.queue.push_back(done());
    }
}

fn data(value: &Value) -> Event {
    Event::default().data(value.to_string())
}

fn done() -> Event {
    Event::default().data("[DONE]")
}

/// One choice's chunks, in order, then its end.
fn choice_events(run: ChoiceRun, builder: ResponseBuilder) -> BoxStream<'static, ChoiceEvent> {
    let mut choice = ChoiceState {
        queue: VecDeque::new(),
        builder,
        logprobs: Vec::new(),
        echo_chars: 0,
        ended: false,
        run,
    };
    if let Some(mut opening) = choice.builder.opening_chunk() {
        opening["choices"][0]["index"] = Value::from(choice.run.index);
        choice.queue.push_back(ChoiceEvent::Chunk(opening));
    }
    stream::unfold(choice, |mut choice| async move {
        loop {
            if let Some(event) = choice.queue.pop_front() {
                return Some((event, choice));
            }
            if choice.ended {
                return None;
            }
            let step = choice.run.next_step().await;
            choice.enqueue(step);
        }
    })
    .boxed()
}

struct ChoiceState {
    run: ChoiceRun,
    builder: ResponseBuilder,
    queue: VecDeque<ChoiceEvent>,
    /// Logprobs not yet sent: they ride on the next chunk that has a choice.
    logprobs: Vec<LogprobEntry>,
    /// Characters of echoed prompt before the generated text (`text_offset` starts there).
    echo_chars: usize,
    ended: bool,
}

impl ChoiceState {
    /// Queues a chunk with this choice, numbered, carrying the logprobs not yet sent.
    fn push_choice(&mut self, mut chunk: Value) {
        let entries = std::mem::take(&mut self.logprobs);
        self.builder.attach_logprobs(&mut chunk, &entries);
        if let Some(choice) = chunk.pointer_mut("/choices/0") {
            choice["index"] = Value::from(self.run.index);
        }
        self.queue.push_back(ChoiceEvent::Chunk(chunk));
    }

    fn enqueue(&mut self, mut step: Option<Result<TextStep, ApiError>>) {
        // `echo`: the prompt (with its logprobs) is the first chunk, once the first output,
        // which carries the prompt's scores, has come.
        if let (Some(echo), Some(Ok(_))) = (self.run.echo.take(), &step) {
            match self.run.generation.prompt_entries() {
                Ok(entries) => {
                    self.echo_chars = echo.chars().count();
                    self.logprobs = entries;
                    self.push_choice(self.builder.delta_chunk(echo, None));
                }
                Err(err) => step = Some(Err(err)),
            }
        }
        if let Some(Ok(step)) = &mut step {
            for entry in &mut step.logprobs {
                entry.text_offset += self.echo_chars;
            }
            self.logprobs.append(&mut step.logprobs);
        }
        if let (Some(chat), Some(Ok(TextStep { text, finish, .. }))) = (&mut self.run.chat, &step) {
            let mut pieces = vec![chat.push(text)];
            let mut reason = None;
            if let Some(finish) = finish {
                let (last, r) = chat.finish(finish.reason);
                pieces.push(last);
                reason = Some(r);
            }
            for piece in pieces {
                for chunk in self.builder.piece_chunks(piece) {
                    self.push_choice(chunk);
                }
            }
            if let (Some(reason), Some(finish)) = (reason, finish) {
                self.push_choice(self.builder.delta_chunk(String::new(), Some(reason)));
                self.finish(finish.usage);
            }
            return;
        }
        match step {
            Some(Ok(TextStep {
                text, finish: None, ..
            })) => {
                self.push_choice(self.builder.delta_chunk(text, None));
            }
            Some(Ok(TextStep {
                text,
                finish: Some(finish),
                ..
            })) => {
                if !text.is_empty() {
                    self.push_choice(self.builder.delta_chunk(text, None));
                }
                self.push_choice(self.builder.delta_chunk(String::new(), Some(finish.reason)));
                self.finish(finish.usage);
            }
            Some(Err(err)) => {
                self.queue.push_back(ChoiceEvent::Failed(err));
                self.ended = true;
            }
            None => self.ended = true,
        }
    }

    fn finish(&mut self, usage: Usage) {
        self.queue
            .push_back(ChoiceEvent::Finished(self.run.leader, usage));
        self.ended = true;
    }
}

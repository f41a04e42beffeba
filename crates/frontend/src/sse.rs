//! Server-sent-event responses: `data: {chunk}\n\n` per step, `data: [DONE]` last. Each event
//! is flushed as it is produced; when the client goes away, hyper drops the body stream, which
//! drops the [`TextGeneration`] and so the backend stream (cancelling the request).

use std::collections::VecDeque;
use std::convert::Infallible;

use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use tracing::Instrument;

use crate::chat_output::ChatOutput;
use crate::error::ApiError;
use crate::generation::{LogprobEntry, TextGeneration, TextStep};
use crate::responses::ResponseBuilder;

/// Streams a generation. The first step is awaited before answering, so an error the backend
/// reports at once (overloaded, stopped) still gets its HTTP status instead of a 200 stream.
pub async fn stream_response(
    mut generation: TextGeneration,
    builder: ResponseBuilder,
    include_usage: bool,
    chat: Option<ChatOutput>,
) -> Result<Response, ApiError> {
    let first = match generation.next_step().await {
        Some(Err(err)) => return Err(err),
        step => step,
    };
    let mut state = StreamState {
        generation: Some(generation),
        builder,
        include_usage,
        chat,
        queue: VecDeque::new(),
        logprobs: Vec::new(),
    };
    if let Some(opening) = state.builder.opening_chunk() {
        state.queue.push_back(data(&opening));
    }
    state.enqueue(first);
    // The body is polled after the handler returned: keep its work in the request's span.
    let span = tracing::Span::current();
    let events = futures::stream::unfold(state, move |mut state| {
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

struct StreamState {
    /// `None` once generation ended; dropping it cancels the backend request.
    generation: Option<TextGeneration>,
    builder: ResponseBuilder,
    include_usage: bool,
    /// Chat answers with a reasoning or tool-call parser: text goes through it.
    chat: Option<ChatOutput>,
    queue: VecDeque<Event>,
    /// Logprobs not yet sent: they ride on the next chunk that has a choice.
    logprobs: Vec<LogprobEntry>,
}

impl StreamState {
    /// Queues a chunk with a choice, carrying the logprobs not yet sent.
    fn push_choice(&mut self, mut chunk: Value) {
        let entries = std::mem::take(&mut self.logprobs);
        self.builder.attach_logprobs(&mut chunk, &entries);
        self.queue.push_back(data(&chunk));
    }
}

fn data(value: &Value) -> Event {
    Event::default().data(value.to_string())
}

fn done() -> Event {
    Event::default().data("[DONE]")
}

impl StreamState {
    async fn next_event(&mut self) -> Option<Event> {
        loop {
            if let Some(event) = self.queue.pop_front() {
                return Some(event);
            }
            let step = self.generation.as_mut()?.next_step().await;
            self.enqueue(step);
        }
    }

    fn enqueue(&mut self, mut step: Option<Result<TextStep, ApiError>>) {
        if let Some(Ok(step)) = &mut step {
            self.logprobs.append(&mut step.logprobs);
        }
        if let (Some(chat), Some(Ok(TextStep { text, finish, .. }))) = (&mut self.chat, &step) {
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
                if self.include_usage {
                    self.queue
                        .push_back(data(&self.builder.usage_chunk(finish.usage)));
                }
                self.end();
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
                if self.include_usage {
                    self.queue
                        .push_back(data(&self.builder.usage_chunk(finish.usage)));
                }
                self.end();
            }
            Some(Err(err)) => {
                let body =
                    serde_json::to_value(err.body()).expect("invariant: error bodies serialize");
                self.queue.push_back(data(&body));
                self.end();
            }
            None => self.end(),
        }
    }

    fn end(&mut self) {
        self.generation = None;
        self.queue.push_back(done());
    }
}

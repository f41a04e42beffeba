//! A streamed Anthropic answer: `message_start`, `ping`, then per content block
//! `content_block_start`, `content_block_delta`s (`text_delta`, `thinking_delta`,
//! `input_json_delta`) and `content_block_stop`, then `message_delta` (stop reason, output
//! tokens) and `message_stop`. Each SSE event is named after its `type`; there is no `[DONE]`.
//!
//! Blocks open as the parsed output changes kind: reasoning opens a `thinking` block, content a
//! `text` block, each tool call a `tool_use` block (arguments stream as JSON fragments).
//! Whitespace-only content is held until something visible follows, so the whitespace a tool
//! parser leaves between calls does not open empty-looking text blocks. A backend error after
//! the stream began is an `error` event, and the stream ends. As in [`crate::sse`], the first
//! step is awaited before answering, so an error reported at once keeps its HTTP status, and a
//! client that goes away drops the generation (cancelling the request).

use std::collections::VecDeque;
use std::convert::Infallible;

use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use rotor_protocol::anthropic::{BlockDelta, ContentBlock, DeltaUsage, MessageDelta, StreamEvent};
use rotor_text::ToolCallEvent;
use serde_json::Value;
use tracing::Instrument;

use super::{tool_use_id, AnswerInfo, AnthropicError};
use crate::chat_output::{ChatOutput, ChatPiece};
use crate::error::ApiError;
use crate::generation::{TextGeneration, TextStep};

pub(super) async fn respond(
    mut generation: TextGeneration,
    output: ChatOutput,
    answer: AnswerInfo,
) -> Result<Response, AnthropicError> {
    let first = match generation.next_step().await {
        Some(Err(err)) => return Err(err.into()),
        step => step,
    };
    let mut state = EventStream {
        generation: Some(generation),
        output,
        blocks: Blocks::default(),
        queue: VecDeque::new(),
        answer,
    };
    let start = StreamEvent::MessageStart {
        message: state.answer.message(Vec::new(), None),
    };
    state.queue.push_back(start);
    state.queue.push_back(StreamEvent::Ping);
    state.enqueue(first);
    // The body is polled after the handler returned: keep its work in the request's span.
    let span = tracing::Span::current();
    let events = futures::stream::unfold(state, move |mut state| {
        let span = span.clone();
        async move {
            let event = state.next_event().instrument(span).await?;
            Some((Ok::<_, Infallible>(sse_event(&event)), state))
        }
    });
    Ok(Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response())
}

fn sse_event(event: &StreamEvent) -> Event {
    let data = serde_json::to_string(event).expect("invariant: stream events serialize");
    Event::default().event(event.name()).data(data)
}

struct EventStream {
    /// `None` once generation ended; dropping it cancels the backend request.
    generation: Option<TextGeneration>,
    output: ChatOutput,
    blocks: Blocks,
    queue: VecDeque<StreamEvent>,
    answer: AnswerInfo,
}

impl EventStream {
    async fn next_event(&mut self) -> Option<StreamEvent> {
        loop {
            if let Some(event) = self.queue.pop_front() {
                return Some(event);
            }
            let step = self.generation.as_mut()?.next_step().await;
            self.enqueue(step);
        }
    }

    fn enqueue(&mut self, step: Option<Result<TextStep, ApiError>>) {
        let step = match step {
            Some(Ok(step)) => step,
            Some(Err(err)) => {
                let body = AnthropicError(err).body();
                self.queue
                    .push_back(StreamEvent::Error { error: body.error });
                self.generation = None;
                return;
            }
            None => {
                self.generation = None;
                return;
            }
        };
        let piece = self.output.push(&step.text);
        self.blocks.piece(piece, &mut self.queue);
        let Some(finish) = step.finish else {
            return;
        };
        let (last, reason) = self.output.finish(finish.reason);
        self.blocks.piece(last, &mut self.queue);
        self.blocks.close(&mut self.queue);
        let (stop_reason, stop_sequence) = self.answer.stop_reason(reason, &finish);
        self.queue.push_back(StreamEvent::MessageDelta {
            delta: MessageDelta {
                stop_reason: Some(stop_reason),
                stop_sequence,
            },
            usage: DeltaUsage {
                output_tokens: finish.usage.completion_tokens,
            },
        });
        self.queue.push_back(StreamEvent::MessageStop);
        self.generation = None;
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BlockKind {
    Text,
    Thinking,
    ToolUse,
}

/// The content blocks of a stream: which one is open, and whitespace held back.
#[derive(Default)]
struct Blocks {
    /// The open block and its index.
    open: Option<(BlockKind, usize)>,
    /// Blocks opened so far.
    count: usize,
    /// Whitespace-only content not yet sent.
    pending: String,
}

impl Blocks {
    fn piece(&mut self, piece: ChatPiece, out: &mut VecDeque<StreamEvent>) {
        if !piece.reasoning.is_empty() {
            let index = self.ensure(BlockKind::Thinking, out);
            out.push_back(StreamEvent::ContentBlockDelta {
                index,
                delta: BlockDelta::ThinkingDelta {
                    thinking: piece.reasoning,
                },
            });
        }
        if !piece.content.is_empty() {
            self.content(&piece.content, out);
        }
        for event in piece.calls {
            self.call(event, out);
        }
    }

    fn content(&mut self, text: &str, out: &mut VecDeque<StreamEvent>) {
        let text = match self.open {
            Some((BlockKind::Text, _)) => text.to_string(),
            _ => {
                self.pending.push_str(text);
                if self.pending.trim().is_empty() {
                    return;
                }
                std::mem::take(&mut self.pending)
            }
        };
        let index = self.ensure(BlockKind::Text, out);
        out.push_back(StreamEvent::ContentBlockDelta {
            index,
            delta: BlockDelta::TextDelta { text },
        });
    }

    fn call(&mut self, event: ToolCallEvent, out: &mut VecDeque<StreamEvent>) {
        match event {
            ToolCallEvent::CallStart { id, name, .. } => {
                self.pending.clear();
                self.start(
                    BlockKind::ToolUse,
                    ContentBlock::ToolUse {
                        id: tool_use_id(&id),
                        name,
                        input: Value::Object(Default::default()),
                    },
                    out,
                );
            }
            ToolCallEvent::Arguments { fragment, .. } => {
                // Calls stream one after another: arguments belong to the open call.
                if let Some((BlockKind::ToolUse, index)) = self.open {
                    out.push_back(StreamEvent::ContentBlockDelta {
                        index,
                        delta: BlockDelta::InputJsonDelta {
                            partial_json: fragment,
                        },
                    });
                }
            }
            ToolCallEvent::Content(text) => self.content(&text, out),
        }
    }

    /// The index of the open `text` or `thinking` block, opening one when another kind (or
    /// none) is open.
    fn ensure(&mut self, kind: BlockKind, out: &mut VecDeque<StreamEvent>) -> usize {
        if let Some((open, index)) = self.open {
            if open == kind {
                return index;
            }
        }
        let block = if kind == BlockKind::Thinking {
            ContentBlock::Thinking {
                thinking: String::new(),
                signature: String::new(),
            }
        } else {
            ContentBlock::Text {
                text: String::new(),
            }
        };
        self.start(kind, block, out)
    }

    fn start(
        &mut self,
        kind: BlockKind,
        content_block: ContentBlock,
        out: &mut VecDeque<StreamEvent>,
    ) -> usize {
        self.close(out);
        let index = self.count;
        self.count += 1;
        self.open = Some((kind, index));
        out.push_back(StreamEvent::ContentBlockStart {
            index,
            content_block,
        });
        index
    }

    fn close(&mut self, out: &mut VecDeque<StreamEvent>) {
        if let Some((_, index)) = self.open.take() {
            out.push_back(StreamEvent::ContentBlockStop { index });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(events: &VecDeque<StreamEvent>) -> Vec<String> {
        events
            .iter()
            .map(|e| match e {
                StreamEvent::ContentBlockStart {
                    index,
                    content_block,
                } => {
                    let kind = serde_json::to_value(content_block).unwrap()["type"].clone();
                    format!("start{index}:{}", kind.as_str().unwrap())
                }
                StreamEvent::ContentBlockDelta { index, .. } => format!("delta{index}"),
                StreamEvent::ContentBlockStop { index } => format!("stop{index}"),
                other => other.name().to_string(),
            })
            .collect()
    }

    #[test]
    fn blocks_open_and_close_as_the_output_changes_kind() {
        let mut blocks = Blocks::default();
        let mut out = VecDeque::new();
        blocks.piece(
            ChatPiece {
                reasoning: "hmm".into(),
                content: "Sure.".into(),
                calls: vec![
                    ToolCallEvent::CallStart {
                        index: 0,
                        id: "call_x".into(),
                        name: "f".into(),
                    },
                    ToolCallEvent::Arguments {
                        index: 0,
                        fragment: "{}".into(),
                    },
                ],
            },
            &mut out,
        );
        // Whitespace between calls opens no block.
        blocks.piece(
            ChatPiece {
                content: "\n".into(),
                ..ChatPiece::default()
            },
            &mut out,
        );
        blocks.close(&mut out);
        assert_eq!(
            names(&out),
            [
                "start0:thinking",
                "delta0",
                "stop0",
                "start1:text",
                "delta1",
                "stop1",
                "start2:tool_use",
                "delta2",
                "stop2"
            ]
        );
    }
}

//! Builds a response's output items from the parsed answer, and the stream events that tell a
//! client about them, in the Responses API's order:
//!
//! `response.created`, `response.in_progress`, then per item `response.output_item.added`,
//! (messages and reasoning) `response.content_part.added`, deltas
//! (`response.output_text.delta`, `response.reasoning_text.delta`,
//! `response.function_call_arguments.delta`), their `.done`, `response.content_part.done`,
//! `response.output_item.done`; last `response.completed`, or `response.incomplete` when
//! `max_output_tokens` cut the answer. Every event has a `sequence_number` counting from 0.
//!
//! Streaming and non-streaming answers take this one path (the non-streaming one drops the
//! events), so a stream reassembles to the whole response.

use std::time::{SystemTime, UNIX_EPOCH};

use rotor_protocol::openai::Usage;
use rotor_protocol::responses_api::{
    IncompleteDetails, InputTokensDetails, OutputItem, OutputText, OutputTokensDetails,
    ReasoningText, ResponseObject, ResponseUsage,
};
use rotor_text::ToolCallEvent;
use serde_json::{json, Value};

use crate::chat_output::ChatPiece;

/// One stream event: its `type` (also the SSE `event:` name) and its JSON.
#[derive(Debug, Clone, PartialEq)]
pub struct ResponseEvent {
    pub kind: &'static str,
    pub data: Value,
}

/// The item being written to, if it takes text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Open {
    Nothing,
    Reasoning(usize),
    Message(usize),
}

/// The output of one response as it is generated.
pub struct ResponseAssembler {
    response: ResponseObject,
    sequence: u64,
    open: Open,
    /// Output index of each call, by the parser's call index.
    calls: Vec<usize>,
    /// Calls before this position are closed.
    closed_calls: usize,
    /// Tokens per KV block of the serving engine (`None`: no paged KV cache).
    kv_block_size: Option<u32>,
}

/// Prompt tokens whose KV this request wrote into the prefix cache for later requests: the
/// prompt's whole blocks less those it read from the cache (a partly filled last block is not
/// cached); 0 without a paged KV cache.
fn cache_write_tokens(input_tokens: u32, cached_tokens: u32, kv_block_size: Option<u32>) -> u32 {
    match kv_block_size {
        Some(block) => (input_tokens / block * block).saturating_sub(cached_tokens),
        None => 0,
    }
}

pub fn now_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn item_id(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::new_v4().simple())
}

impl ResponseAssembler {
    /// `response` is the echo of the request with status `in_progress` and no output.
    pub fn new(response: ResponseObject) -> ResponseAssembler {
        ResponseAssembler {
            response,
            sequence: 0,
            open: Open::Nothing,
            calls: Vec::new(),
            closed_calls: 0,
            kv_block_size: None,
        }
    }

    /// The serving engine's KV block size (the card's `kv_block_size`), from which
    /// `usage.input_tokens_details.cache_write_tokens` is counted.
    pub fn with_kv_block_size(mut self, kv_block_size: Option<u32>) -> ResponseAssembler {
        self.kv_block_size = kv_block_size.filter(|&b| b > 0);
        self
    }

    pub fn response(&self) -> &ResponseObject {
        &self.response
    }

    pub fn into_response(self) -> ResponseObject {
        self.response
    }

    fn event(&mut self, kind: &'static str, mut data: Value) -> ResponseEvent {
        data["type"] = json!(kind);
        data["sequence_number"] = json!(self.sequence);
        self.sequence += 1;
        ResponseEvent { kind, data }
    }

    fn snapshot(&self) -> Value {
        serde_json::to_value(&self.response).expect("invariant: response objects serialize")
    }

    fn item_value(&self, index: usize) -> Value {
        serde_json::to_value(&self.response.output[index])
            .expect("invariant: output items serialize")
    }

    /// `response.created` and `response.in_progress`.
    pub fn start(&mut self) -> Vec<ResponseEvent> {
        let snapshot = self.snapshot();
        vec![
            self.event("response.created", json!({"response": snapshot})),
            self.event("response.in_progress", json!({"response": snapshot})),
        ]
    }

    /// Adds one parsed piece of the answer.
    pub fn push(&mut self, piece: ChatPiece) -> Vec<ResponseEvent> {
        let mut events = Vec::new();
        if !piece.reasoning.is_empty() {
            let index = match self.open {
                Open::Reasoning(index) => index,
                _ => self.open_reasoning(&mut events),
            };
            if let OutputItem::Reasoning { content, .. } = &mut self.response.output[index] {
                content[0].text.push_str(&piece.reasoning);
            }
            let item_id = self.id_of(index);
            events.push(self.event(
                "response.reasoning_text.delta",
                json!({"item_id": item_id, "output_index": index, "content_index": 0,
                       "delta": piece.reasoning}),
            ));
        }
        if !piece.content.is_empty() {
            self.append_text(&piece.content, &mut events);
        }
        for call in piece.calls {
            match call {
                ToolCallEvent::CallStart { id, name, .. } => {
                    self.close_open("completed", &mut events);
                    self.close_calls("completed", &mut events);
                    let index = self.response.output.len();
                    self.response.output.push(OutputItem::FunctionCall {
                        id: item_id("fc"),
                        call_id: id,
                        name,
                        arguments: String::new(),
                        status: "in_progress".to_string(),
                    });
                    self.calls.push(index);
                    let item = self.item_value(index);
                    events.push(self.event(
                        "response.output_item.added",
                        json!({"output_index": index, "item": item}),
                    ));
                }
                ToolCallEvent::Arguments { index, fragment } => {
                    let Some(&output_index) = self.calls.get(index) else {
                        continue;
                    };
                    if let OutputItem::FunctionCall { arguments, .. } =
                        &mut self.response.output[output_index]
                    {
                        arguments.push_str(&fragment);
                    }
                    let item_id = self.id_of(output_index);
                    events.push(self.event(
                        "response.function_call_arguments.delta",
                        json!({"item_id": item_id, "output_index": output_index,
                               "delta": fragment}),
                    ));
                }
                ToolCallEvent::Content(text) => self.append_text(&text, &mut events),
            }
        }
        events
    }

    fn append_text(&mut self, text: &str, events: &mut Vec<ResponseEvent>) {
        let index = match self.open {
            Open::Message(index) => index,
            _ => self.open_message(events),
        };
        if let OutputItem::Message { content, .. } = &mut self.response.output[index] {
            content[0].text.push_str(text);
        }
        let item_id = self.id_of(index);
        events.push(self.event(
            "response.output_text.delta",
            json!({"item_id": item_id, "output_index": index, "content_index": 0,
                   "delta": text, "logprobs": []}),
        ));
    }

    fn id_of(&self, index: usize) -> String {
        match &self.response.output[index] {
            OutputItem::Message { id, .. }
            | OutputItem::FunctionCall { id, .. }
            | OutputItem::Reasoning { id, .. } => id.clone(),
        }
    }

    fn open_message(&mut self, events: &mut Vec<ResponseEvent>) -> usize {
        self.close_open("completed", events);
        self.close_calls("completed", events);
        let index = self.response.output.len();
        let id = item_id("msg");
        self.response.output.push(OutputItem::Message {
            id: id.clone(),
            status: "in_progress".to_string(),
            role: "assistant".to_string(),
            content: Vec::new(),
        });
        let item = self.item_value(index);
        events.push(self.event(
            "response.output_item.added",
            json!({"output_index": index, "item": item}),
        ));
        let part = OutputText::new(String::new());
        events.push(self.event(
            "response.content_part.added",
            json!({"item_id": id, "output_index": index, "content_index": 0, "part": part}),
        ));
        if let OutputItem::Message { content, .. } = &mut self.response.output[index] {
            content.push(part);
        }
        self.open = Open::Message(index);
        index
    }

    fn open_reasoning(&mut self, events: &mut Vec<ResponseEvent>) -> usize {
        self.close_open("completed", events);
        self.close_calls("completed", events);
        let index = self.response.output.len();
        let id = item_id("rs");
        self.response.output.push(OutputItem::Reasoning {
            id: id.clone(),
            summary: Vec::new(),
            content: Vec::new(),
            status: "in_progress".to_string(),
        });
        let item = self.item_value(index);
        events.push(self.event(
            "response.output_item.added",
            json!({"output_index": index, "item": item}),
        ));
        let part = ReasoningText::new(String::new());
        events.push(self.event(
            "response.content_part.added",
            json!({"item_id": id, "output_index": index, "content_index": 0, "part": part}),
        ));
        if let OutputItem::Reasoning { content, .. } = &mut self.response.output[index] {
            content.push(part);
        }
        self.open = Open::Reasoning(index);
        index
    }

    /// Closes the open message or reasoning item with `status`.
    fn close_open(&mut self, final_status: &str, events: &mut Vec<ResponseEvent>) {
        let index = match std::mem::replace(&mut self.open, Open::Nothing) {
            Open::Nothing => return,
            Open::Message(index) | Open::Reasoning(index) => index,
        };
        let id = self.id_of(index);
        let (done, part, text) = match &mut self.response.output[index] {
            OutputItem::Message {
                status, content, ..
            } => {
                *status = final_status.to_string();
                let part = json!(content[0]);
                ("response.output_text.done", part, content[0].text.clone())
            }
            OutputItem::Reasoning {
                status, content, ..
            } => {
                *status = final_status.to_string();
                let part = json!(content[0]);
                (
                    "response.reasoning_text.done",
                    part,
                    content[0].text.clone(),
                )
            }
            OutputItem::FunctionCall { .. } => return,
        };
        let mut done_body =
            json!({"item_id": id, "output_index": index, "content_index": 0, "text": text});
        if done == "response.output_text.done" {
            done_body["logprobs"] = json!([]);
        }
        events.push(self.event(done, done_body));
        events.push(self.event(
            "response.content_part.done",
            json!({"item_id": id, "output_index": index, "content_index": 0, "part": part}),
        ));
        let item = self.item_value(index);
        events.push(self.event(
            "response.output_item.done",
            json!({"output_index": index, "item": item}),
        ));
    }

    fn close_calls(&mut self, final_status: &str, events: &mut Vec<ResponseEvent>) {
        while self.closed_calls < self.calls.len() {
            let index = self.calls[self.closed_calls];
            self.closed_calls += 1;
            let id = self.id_of(index);
            let OutputItem::FunctionCall {
                name,
                arguments,
                status,
                ..
            } = &mut self.response.output[index]
            else {
                continue;
            };
            *status = final_status.to_string();
            let body = json!({"item_id": id, "output_index": index, "name": name,
                              "arguments": arguments});
            events.push(self.event("response.function_call_arguments.done", body));
            let item = self.item_value(index);
            events.push(self.event(
                "response.output_item.done",
                json!({"output_index": index, "item": item}),
            ));
        }
    }

    /// The answer ended with the OpenAI finish reason `reason`: closes every item (an answer
    /// with no item gets an empty message), sets status and usage, and ends with
    /// `response.completed` or, when `max_output_tokens` cut it, `response.incomplete`.
    pub fn finish(&mut self, reason: &str, usage: Usage) -> Vec<ResponseEvent> {
        let mut events = Vec::new();
        if self.response.output.is_empty() {
            self.open_message(&mut events);
        }
        let cut = reason == "length";
        let item_status = if cut { "incomplete" } else { "completed" };
        self.close_open(item_status, &mut events);
        self.close_calls(item_status, &mut events);
        self.response.status = item_status.to_string();
        self.response.incomplete_details = cut.then(|| IncompleteDetails {
            reason: "max_output_tokens".to_string(),
        });
        self.response.completed_at = Some(now_seconds());
        let cached_tokens = usage.prompt_tokens_details.map_or(0, |d| d.cached_tokens);
        self.response.usage = Some(ResponseUsage {
            input_tokens: usage.prompt_tokens,
            input_tokens_details: InputTokensDetails {
                cached_tokens,
                cache_write_tokens: cache_write_tokens(
                    usage.prompt_tokens,
                    cached_tokens,
                    self.kv_block_size,
                ),
            },
            output_tokens: usage.completion_tokens,
            output_tokens_details: OutputTokensDetails {
                reasoning_tokens: 0,
            },
            total_tokens: usage.total_tokens,
        });
        let snapshot = self.snapshot();
        let last = if cut {
            "response.incomplete"
        } else {
            "response.completed"
        };
        events.push(self.event(last, json!({"response": snapshot})));
        events
    }

    /// The `error` event of a generation that failed mid-stream.
    pub fn error(&mut self, code: Option<&str>, message: &str) -> ResponseEvent {
        self.event(
            "error",
            json!({"code": code, "message": message, "param": null}),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::cache_write_tokens;

    #[test]
    fn cache_writes_are_the_whole_blocks_not_read_from_the_cache() {
        // 38 prompt tokens, blocks of 16: two whole blocks; the tail of 6 is not cached.
        assert_eq!(cache_write_tokens(38, 0, Some(16)), 32);
        assert_eq!(cache_write_tokens(38, 16, Some(16)), 16);
        assert_eq!(cache_write_tokens(38, 32, Some(16)), 0);
        // A fully cached, block-aligned prompt writes nothing; cached never exceeds it.
        assert_eq!(cache_write_tokens(32, 32, Some(16)), 0);
        assert_eq!(cache_write_tokens(15, 0, Some(16)), 0);
        // No paged KV cache: nothing is written.
        assert_eq!(cache_write_tokens(38, 0, None), 0);
    }
}

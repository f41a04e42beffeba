//! The OpenAI bodies of chat and text completions, whole and as stream chunks.

use std::time::{SystemTime, UNIX_EPOCH};

use rotor_protocol::openai::{
    ChatChoice, ChatChunkChoice, ChatCompletionChunk, ChatCompletionResponse, ChatDelta,
    CompletionChoice, CompletionResponse, FunctionCall, FunctionCallDelta, MessageToolCall,
    ResponseMessage, ToolCallDelta, Usage,
};
use rotor_text::ToolCallEvent;
use serde_json::{json, Value};

use crate::chat_output::{ChatAnswer, ChatPiece};
use crate::generation::{Finish, LogprobEntry};
use crate::request_id::RequestId;

/// Which API a response belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    Chat,
    Completion,
}

/// Builds the bodies of one response; every chunk shares its id, `created` and model.
#[derive(Debug, Clone)]
pub struct ResponseBuilder {
    pub api: Api,
    pub id: String,
    pub created: u64,
    pub model: String,
    /// Whether the request asked for logprobs: then every choice carries a `logprobs` object,
    /// empty when it has no tokens, instead of null.
    pub logprobs: bool,
}

fn to_value<T: serde::Serialize>(body: &T) -> Value {
    serde_json::to_value(body).expect("invariant: response bodies serialize to JSON")
}

impl ResponseBuilder {
    /// The generation's id (`chatcmpl-…` or `cmpl-…` after the request id, see
    /// [`RequestId::generation_id`]) and the current time.
    pub fn new(api: Api, model: &str, request_id: &RequestId) -> Self {
        let prefix = match api {
            Api::Chat => "chatcmpl",
            Api::Completion => "cmpl",
        };
        let created = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        Self {
            api,
            id: request_id.generation_id(prefix),
            created,
            model: model.to_string(),
            logprobs: false,
        }
    }

    /// Sets `choices[0].logprobs` of a body or chunk to `entries` in the API's shape, when the
    /// request asked for logprobs (chat: `{"content": [{token, logprob, bytes, top_logprobs}]}`;
    /// text completions: `{tokens, token_logprobs, top_logprobs, text_offset}`).
    pub fn attach_logprobs(&self, body: &mut Value, entries: &[LogprobEntry]) {
        if !self.logprobs {
            return;
        }
        let Some(choice) = body.pointer_mut("/choices/0") else {
            return;
        };
        choice["logprobs"] = match self.api {
            Api::Chat => json!({
                "content": entries.iter().map(|e| json!({
                    "token": e.token,
                    "logprob": e.logprob,
                    "bytes": e.bytes,
                    "top_logprobs": e.top.iter().map(|t| json!({
                        "token": t.token,
                        "logprob": t.logprob,
                        "bytes": t.bytes,
                    })).collect::<Vec<_>>(),
                })).collect::<Vec<_>>(),
                "refusal": null,
            }),
            Api::Completion => json!({
                "tokens": entries.iter().map(|e| &e.token).collect::<Vec<_>>(),
                "token_logprobs": entries.iter().map(|e| e.logprob).collect::<Vec<_>>(),
                // An echoed prompt's first token has no logprob: null, as its alternatives.
                "top_logprobs": entries.iter().map(|e| match e.logprob.is_nan() {
                    true => Value::Null,
                    false => Value::Object(e.top.iter().map(|t| (t.token.clone(), json!(t.logprob)))
                        .collect::<serde_json::Map<_, _>>()),
                }).collect::<Vec<_>>(),
                "text_offset": entries.iter().map(|e| e.text_offset).collect::<Vec<_>>(),
            }),
        };
    }

    /// The non-streaming body.
    pub fn full(&self, text: String, finish: &Finish) -> Value {
        match self.api {
            Api::Chat => self.chat_full(
                ChatAnswer {
                    content: text,
                    ..ChatAnswer::default()
                },
                finish.reason,
                finish.usage,
            ),
            Api::Completion => to_value(&CompletionResponse {
                id: self.id.clone(),
                object: "text_completion".to_string(),
                created: self.created,
                model: self.model.clone(),
                choices: vec![CompletionChoice {
                    index: 0,
                    text,
                    logprobs: None,
                    finish_reason: Some(finish.reason.to_string()),
                }],
                usage: Some(finish.usage),
            }),
        }
    }

    /// The non-streaming body with these `choices` (each already numbered) and `usage`.
    pub fn body_with(&self, choices: Vec<Value>, usage: Usage) -> Value {
        let mut body = self.full(
            String::new(),
            &Finish {
                reason: "stop",
                usage,
                stop_string: None,
            },
        );
        body["choices"] = Value::Array(choices);
        body
    }

    /// The non-streaming chat body of a parsed answer: `content` null when the answer is only
    /// tool calls, `reasoning_content` when there was reasoning.
    pub fn chat_full(&self, answer: ChatAnswer, finish_reason: &str, usage: Usage) -> Value {
        let content = if answer.content.is_empty() && !answer.calls.is_empty() {
            None
        } else {
            Some(answer.content)
        };
        let tool_calls = answer
            .calls
            .into_iter()
            .map(|call| MessageToolCall {
                id: call.id,
                kind: "function".to_string(),
                function: FunctionCall {
                    name: call.name,
                    arguments: call.arguments,
                },
            })
            .collect();
        to_value(&ChatCompletionResponse {
            id: self.id.clone(),
            object: "chat.completion".to_string(),
            created: self.created,
            model: self.model.clone(),
            choices: vec![ChatChoice {
                index: 0,
                message: ResponseMessage {
                    role: "assistant".to_string(),
                    content,
                    reasoning_content: (!answer.reasoning.is_empty()).then_some(answer.reasoning),
                    tool_calls,
                },
                logprobs: None,
                finish_reason: Some(finish_reason.to_string()),
            }],
            usage,
        })
    }

    /// The chunks of one parsed piece of a chat stream, as OpenAI sends them: reasoning, then
    /// content, then one chunk per tool-call event (a call's first chunk has its index, id,
    /// type, name and empty arguments; the next ones argument fragments).
    pub fn piece_chunks(&self, piece: ChatPiece) -> Vec<Value> {
        let mut deltas = Vec::new();
        if !piece.reasoning.is_empty() {
            deltas.push(ChatDelta {
                reasoning_content: Some(piece.reasoning),
                ..ChatDelta::default()
            });
        }
        if !piece.content.is_empty() {
            deltas.push(ChatDelta {
                content: Some(piece.content),
                ..ChatDelta::default()
            });
        }
        for event in piece.calls {
            let call = match event {
                ToolCallEvent::CallStart { index, id, name } => ToolCallDelta {
                    index: index as u32,
                    id: Some(id),
                    kind: Some("function".to_string()),
                    function: FunctionCallDelta {
                        name: Some(name),
                        arguments: Some(String::new()),
                    },
                },
                ToolCallEvent::Arguments { index, fragment } => ToolCallDelta {
                    index: index as u32,
                    id: None,
                    kind: None,
                    function: FunctionCallDelta {
                        name: None,
                        arguments: Some(fragment),
                    },
                },
                ToolCallEvent::Content(text) => {
                    deltas.push(ChatDelta {
                        content: Some(text),
                        ..ChatDelta::default()
                    });
                    continue;
                }
            };
            deltas.push(ChatDelta {
                tool_calls: vec![call],
                ..ChatDelta::default()
            });
        }
        deltas
            .into_iter()
            .map(|delta| {
                self.chat_chunk(
                    vec![ChatChunkChoice {
                        index: 0,
                        delta,
                        logprobs: None,
                        finish_reason: None,
                    }],
                    None,
                )
            })
            .collect()
    }

    /// The chunk that opens a chat stream (`delta.role`); none for text completions.
    pub fn opening_chunk(&self) -> Option<Value> {
        match self.api {
            Api::Chat => Some(self.chat_chunk(
                vec![ChatChunkChoice {
                    index: 0,
                    delta: ChatDelta {
                        role: Some("assistant".to_string()),
                        content: Some(String::new()),
                        ..ChatDelta::default()
                    },
                    logprobs: None,
                    finish_reason: None,
                }],
                None,
            )),
            Api::Completion => None,
        }
    }

    /// A chunk with new text and, on the last one, the finish reason.
    pub fn delta_chunk(&self, text: String, finish_reason: Option<&str>) -> Value {
        let finish_reason = finish_reason.map(str::to_string);
        match self.api {
            Api::Chat => {
                let content = (!text.is_empty() || finish_reason.is_none()).then_some(text);
                self.chat_chunk(
                    vec![ChatChunkChoice {
                        index: 0,
                        delta: ChatDelta {
                            content,
                            ..ChatDelta::default()
                        },
                        logprobs: None,
                        finish_reason,
                    }],
                    None,
                )
            }
            Api::Completion => self.completion_chunk(
                vec![CompletionChoice {
                    index: 0,
                    text,
                    logprobs: None,
                    finish_reason,
                }],
                None,
            ),
        }
    }

    /// The usage chunk of `stream_options.include_usage`: empty `choices`.
    pub fn usage_chunk(&self, usage: Usage) -> Value {
        match self.api {
            Api::Chat => self.chat_chunk(Vec::new(), Some(usage)),
            Api::Completion => self.completion_chunk(Vec::new(), Some(usage)),
        }
    }

    fn chat_chunk(&self, choices: Vec<ChatChunkChoice>, usage: Option<Usage>) -> Value {
        to_value(&ChatCompletionChunk {
            id: self.id.clone(),
            object: "chat.completion.chunk".to_string(),
            created: self.created,
            model: self.model.clone(),
            choices,
            usage,
        })
    }

    fn completion_chunk(&self, choices: Vec<CompletionChoice>, usage: Option<Usage>) -> Value {
        to_value(&CompletionResponse {
            id: self.id.clone(),
            object: "text_completion".to_string(),
            created: self.created,
            model: self.model.clone(),
            choices,
            usage,
        })
    }
}

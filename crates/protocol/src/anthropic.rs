//! Anthropic Messages API bodies: POST /v1/messages and POST /v1/messages/count_tokens requests,
//! the `Message` answer, its streamed events, and the error body.
//!
//! As in [`crate::openai`], numbers stay wide (`i64`, `f64`) and required-by-Anthropic fields
//! that the frontend checks itself (`max_tokens`) are optional here, so that a bad value gets an
//! error naming the field instead of a generic type error. Unknown fields are ignored
//! (`metadata`, `cache_control`, `service_tier`, …). Content blocks other than `text`,
//! `tool_use`, `tool_result` and `thinking` (images, documents) fail to parse, naming their
//! type.

use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

/// POST /v1/messages body (also the body of /v1/messages/count_tokens, which ignores
/// `max_tokens`, `stream` and the sampling fields).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct MessagesRequest {
    pub model: String,
    pub messages: Vec<InputMessage>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<SystemPrompt>,
    /// Required by /v1/messages (a 400 when absent), ignored by count_tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1)]
    pub max_tokens: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_sequences: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    /// Between 0 and 1, as Anthropic's API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 0, maximum = 1)]
    pub temperature: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(exclusive_minimum = 0, maximum = 1)]
    pub top_p: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_k: Option<i64>,
    /// Accepted and ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<Tool>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<ToolChoice>,
}

/// `system`: a string or a list of text blocks.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(untagged)]
pub enum SystemPrompt {
    Text(String),
    Blocks(Vec<TextBlockParam>),
}

/// A `{"type": "text", "text": …}` block.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename = "text")]
pub struct TextBlockParam {
    pub text: String,
}

/// One turn of the conversation: `role` is `user` or `assistant`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct InputMessage {
    pub role: String,
    pub content: InputContent,
}

/// Message content: a string or a list of content blocks.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(untagged)]
pub enum InputContent {
    Text(String),
    Blocks(Vec<ContentBlockParam>),
}

/// A content block of a request message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ContentBlockParam {
    Text {
        text: String,
    },
    /// A call the assistant made earlier.
    ToolUse {
        id: String,
        name: String,
        /// The arguments, a JSON object.
        input: Value,
    },
    /// Reasoning the assistant returned earlier (its `signature` is ignored).
    Thinking {
        thinking: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        signature: Option<String>,
    },
    /// The user's answer to a `tool_use`.
    ToolResult {
        tool_use_id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        content: Option<ToolResultContent>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        is_error: Option<bool>,
    },
}

/// `tool_result.content`: a string or a list of text blocks.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(untagged)]
pub enum ToolResultContent {
    Text(String),
    Blocks(Vec<TextBlockParam>),
}

/// One entry of `tools` (a client tool; Anthropic's server tools have no `input_schema` and are
/// refused as a missing field).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Tool {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// JSON Schema of `input`.
    pub input_schema: Value,
    /// `"custom"` when given.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
}

/// `tool_choice`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ToolChoice {
    /// The model decides.
    Auto {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        disable_parallel_tool_use: Option<bool>,
    },
    /// The model must call some tool.
    Any {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        disable_parallel_tool_use: Option<bool>,
    },
    /// The model must call this tool.
    Tool {
        name: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        disable_parallel_tool_use: Option<bool>,
    },
    /// No tool may be called.
    None,
}

/// A string, or a list of items of type `T`, parsed so that an error inside the list keeps
/// serde's own message (an untagged enum would only say that no variant matched).
fn text_or_list<'de, D, T>(deserializer: D) -> Result<Result<String, Vec<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: serde::de::DeserializeOwned,
{
    match Value::deserialize(deserializer)? {
        Value::String(text) => Ok(Ok(text)),
        list @ Value::Array(_) => serde_json::from_value(list)
            .map(Err)
            .map_err(de::Error::custom),
        other => Err(de::Error::custom(format!(
            "expected a string or a list of content blocks, got {other}"
        ))),
    }
}

impl<'de> Deserialize<'de> for SystemPrompt {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(match text_or_list(deserializer)? {
            Ok(text) => SystemPrompt::Text(text),
            Err(blocks) => SystemPrompt::Blocks(blocks),
        })
    }
}

impl<'de> Deserialize<'de> for InputContent {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(match text_or_list(deserializer)? {
            Ok(text) => InputContent::Text(text),
            Err(blocks) => InputContent::Blocks(blocks),
        })
    }
}

impl<'de> Deserialize<'de> for ToolResultContent {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(match text_or_list(deserializer)? {
            Ok(text) => ToolResultContent::Text(text),
            Err(blocks) => ToolResultContent::Blocks(blocks),
        })
    }
}

/// A content block of an answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ContentBlock {
    Text {
        text: String,
    },
    /// Reasoning, from models with a reasoning parser. Rotor does not sign it: `signature` is
    /// empty.
    Thinking {
        thinking: String,
        signature: String,
    },
    ToolUse {
        /// `toolu_` + 24 alphanumerics.
        id: String,
        name: String,
        /// The arguments, a JSON object.
        input: Value,
    },
}

/// Token accounting of an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct MessageUsage {
    pub input_tokens: u32,
    pub output_tokens: u32,
}

/// The answer of POST /v1/messages (and, with empty content, the `message` of a stream's
/// `message_start`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Message {
    /// `msg_…`.
    pub id: String,
    /// Always `"message"`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Always `"assistant"`.
    pub role: String,
    pub content: Vec<ContentBlock>,
    pub model: String,
    /// `end_turn`, `max_tokens`, `stop_sequence` or `tool_use`; null in `message_start`.
    pub stop_reason: Option<String>,
    /// The stop sequence that ended generation, with `stop_reason` `stop_sequence`.
    pub stop_sequence: Option<String>,
    pub usage: MessageUsage,
}

/// The answer of POST /v1/messages/count_tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CountTokensResponse {
    pub input_tokens: u32,
}

/// The `delta` of a `content_block_delta` event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum BlockDelta {
    TextDelta { text: String },
    ThinkingDelta { thinking: String },
    InputJsonDelta { partial_json: String },
}

/// The `delta` of a `message_delta` event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct MessageDelta {
    pub stop_reason: Option<String>,
    pub stop_sequence: Option<String>,
}

/// The `usage` of a `message_delta` event (cumulative).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DeltaUsage {
    pub output_tokens: u32,
}

/// One server-sent event of a streamed answer; its SSE `event:` name is its `type`
/// ([`StreamEvent::name`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum StreamEvent {
    MessageStart {
        message: Message,
    },
    ContentBlockStart {
        index: usize,
        content_block: ContentBlock,
    },
    Ping,
    ContentBlockDelta {
        index: usize,
        delta: BlockDelta,
    },
    ContentBlockStop {
        index: usize,
    },
    MessageDelta {
        delta: MessageDelta,
        usage: DeltaUsage,
    },
    MessageStop,
    Error {
        error: ErrorDetail,
    },
}

impl StreamEvent {
    /// The SSE event name (the same as the body's `type`).
    pub fn name(&self) -> &'static str {
        match self {
            StreamEvent::MessageStart { .. } => "message_start",
            StreamEvent::ContentBlockStart { .. } => "content_block_start",
            StreamEvent::Ping => "ping",
            StreamEvent::ContentBlockDelta { .. } => "content_block_delta",
            StreamEvent::ContentBlockStop { .. } => "content_block_stop",
            StreamEvent::MessageDelta { .. } => "message_delta",
            StreamEvent::MessageStop => "message_stop",
            StreamEvent::Error { .. } => "error",
        }
    }
}

/// `error` of an error body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ErrorDetail {
    /// `invalid_request_error`, `authentication_error`, `permission_error`, `not_found_error`,
    /// `request_too_large`, `rate_limit_error`, `api_error` or `overloaded_error`.
    #[serde(rename = "type")]
    pub kind: String,
    pub message: String,
}

/// Anthropic's error body: `{"type": "error", "error": {"type", "message"}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ErrorResponse {
    /// Always `"error"`.
    #[serde(rename = "type")]
    pub kind: String,
    pub error: ErrorDetail,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_strings_blocks_tools_and_choices() {
        let req: MessagesRequest = serde_json::from_value(json!({
            "model": "m", "max_tokens": 10,
            "system": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
            "messages": [
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "f", "input": {"a": 1}}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "42"}]}
            ],
            "tools": [{"name": "f", "input_schema": {"type": "object"}}],
            "tool_choice": {"type": "tool", "name": "f"},
            "metadata": {"user_id": "u"}
        }))
        .expect("parses");
        assert_eq!(
            req.system,
            Some(SystemPrompt::Blocks(vec![TextBlockParam {
                text: "Be brief.".into()
            }]))
        );
        assert_eq!(req.messages[0].content, InputContent::Text("hi".into()));
        assert_eq!(
            req.messages[2].content,
            InputContent::Blocks(vec![ContentBlockParam::ToolResult {
                tool_use_id: "toolu_1".into(),
                content: Some(ToolResultContent::Text("42".into())),
                is_error: None,
            }])
        );
        assert_eq!(
            req.tool_choice,
            Some(ToolChoice::Tool {
                name: "f".into(),
                disable_parallel_tool_use: None
            })
        );
    }

    #[test]
    fn an_unsupported_block_type_is_named() {
        let err = serde_json::from_value::<MessagesRequest>(json!({
            "model": "m", "max_tokens": 1,
            "messages": [{"role": "user", "content": [{"type": "image", "source": {}}]}]
        }))
        .expect_err("images are not supported");
        assert!(err.to_string().contains("unknown variant `image`"), "{err}");
    }

    #[test]
    fn events_serialize_with_their_type() {
        let event = StreamEvent::ContentBlockDelta {
            index: 1,
            delta: BlockDelta::InputJsonDelta {
                partial_json: "{\"a\"".into(),
            },
        };
        assert_eq!(event.name(), "content_block_delta");
        assert_eq!(
            serde_json::to_value(&event).unwrap(),
            json!({"type": "content_block_delta", "index": 1,
                   "delta": {"type": "input_json_delta", "partial_json": "{\"a\""}})
        );
        assert_eq!(
            serde_json::to_value(StreamEvent::MessageStop).unwrap(),
            json!({"type": "message_stop"})
        );
    }
}

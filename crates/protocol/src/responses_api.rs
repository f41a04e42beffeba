//! OpenAI Responses API bodies (POST /v1/responses, GET and DELETE /v1/responses/{id}).
//!
//! Requests are parsed loosely, as the chat types are: input items are one flat struct
//! ([`InputItem`]) whose `type` the frontend checks, so a malformed item gets a 400 naming
//! `input[i]…` instead of a generic "no variant matched". Unknown fields are ignored.
//!
//! The response object ([`ResponseObject`]) carries every field of OpenAI's (and the
//! OpenResponses schema's) response resource, nullable ones as explicit `null`, because strict
//! validators reject a missing field where they accept a null.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

/// POST /v1/responses body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CreateResponseRequest {
    pub model: String,
    pub input: ResponseInput,
    /// A system message put before the input; not carried over by `previous_response_id`.
    pub instructions: Option<String>,
    #[schema(minimum = 1)]
    pub max_output_tokens: Option<i64>,
    #[schema(minimum = 0, maximum = 2)]
    pub temperature: Option<f64>,
    #[schema(exclusive_minimum = 0, maximum = 1)]
    pub top_p: Option<f64>,
    /// Keep the response for GET, DELETE and `previous_response_id` (default true).
    pub store: Option<bool>,
    /// A stored response whose input and output come before this input.
    pub previous_response_id: Option<String>,
    pub stream: Option<bool>,
    /// `{"type": "function", "name", "description", "parameters", "strict"}`.
    pub tools: Option<Vec<ResponseTool>>,
    /// `"none"`, `"auto"`, `"required"` or `{"type": "function", "name": …}`.
    pub tool_choice: Option<Value>,
    pub parallel_tool_calls: Option<bool>,
    /// `{"format": {"type": "text" | "json_object" | "json_schema", …}}`.
    pub text: Option<Value>,
    /// Up to 16 string pairs, echoed back.
    pub metadata: Option<Value>,
    pub seed: Option<i64>,
    /// Accepted and echoed.
    pub user: Option<String>,
}

/// `input`: a user message as text, or a list of items.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum ResponseInput {
    Text(String),
    Items(Vec<InputItem>),
}

/// One input item: a message (`type` "message" or absent, with `role` and `content`), a
/// `function_call` (`call_id`, `name`, `arguments`), a `function_call_output` (`call_id`,
/// `output`) or a `reasoning` item (skipped).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct InputItem {
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<InputContent>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arguments: Option<String>,
    /// `function_call_output`: a string or a list of `input_text` parts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<InputContent>,
}

/// Message content: a string or typed parts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum InputContent {
    Text(String),
    Parts(Vec<InputPart>),
}

/// One content part: `input_text`, `output_text` or `text` carry `text`; others (`input_image`,
/// `input_file`, `refusal`) are refused or skipped by the frontend.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct InputPart {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

/// One entry of `tools`: only `function` tools are served.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ResponseTool {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub parameters: Option<Value>,
    #[serde(default)]
    pub strict: Option<bool>,
}

/// The response resource, whole (non-streaming, GET) or inside stream events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ResponseObject {
    pub id: String,
    /// Always `"response"`.
    pub object: String,
    pub created_at: u64,
    pub completed_at: Option<u64>,
    /// `in_progress`, `completed` or `incomplete`.
    pub status: String,
    pub incomplete_details: Option<IncompleteDetails>,
    pub error: Option<Value>,
    pub model: String,
    pub previous_response_id: Option<String>,
    pub instructions: Option<String>,
    pub output: Vec<OutputItem>,
    pub tools: Vec<Value>,
    pub tool_choice: Value,
    pub parallel_tool_calls: bool,
    pub text: Value,
    pub temperature: f64,
    pub top_p: f64,
    pub presence_penalty: f64,
    pub frequency_penalty: f64,
    pub top_logprobs: u32,
    pub truncation: String,
    pub reasoning: Option<Value>,
    pub usage: Option<ResponseUsage>,
    pub max_output_tokens: Option<i64>,
    pub max_tool_calls: Option<u32>,
    pub store: bool,
    pub background: bool,
    pub service_tier: String,
    pub metadata: Value,
    pub user: Option<String>,
    pub safety_identifier: Option<String>,
    pub prompt_cache_key: Option<String>,
}

/// Why a response is `incomplete`: `max_output_tokens`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct IncompleteDetails {
    pub reason: String,
}

/// One output item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum OutputItem {
    /// The assistant's text: one `output_text` part.
    Message {
        id: String,
        status: String,
        role: String,
        content: Vec<OutputText>,
    },
    /// A call the client should run and answer with a `function_call_output` item.
    FunctionCall {
        id: String,
        call_id: String,
        name: String,
        /// The arguments as JSON text.
        arguments: String,
        status: String,
    },
    /// What a reasoning parser split off the answer.
    Reasoning {
        id: String,
        summary: Vec<Value>,
        content: Vec<ReasoningText>,
        status: String,
    },
}

/// An `output_text` content part (`annotations` and `logprobs` are always empty lists).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct OutputText {
    #[serde(rename = "type")]
    pub kind: String,
    pub text: String,
    pub annotations: Vec<Value>,
    pub logprobs: Vec<Value>,
}

impl OutputText {
    pub fn new(text: String) -> OutputText {
        OutputText {
            kind: "output_text".to_string(),
            text,
            annotations: Vec::new(),
            logprobs: Vec::new(),
        }
    }
}

/// A `reasoning_text` content part of a reasoning item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ReasoningText {
    #[serde(rename = "type")]
    pub kind: String,
    pub text: String,
}

impl ReasoningText {
    pub fn new(text: String) -> ReasoningText {
        ReasoningText {
            kind: "reasoning_text".to_string(),
            text,
        }
    }
}

/// Token accounting of a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ResponseUsage {
    pub input_tokens: u32,
    pub input_tokens_details: InputTokensDetails,
    pub output_tokens: u32,
    pub output_tokens_details: OutputTokensDetails,
    pub total_tokens: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct InputTokensDetails {
    /// Prompt tokens read from the prefix cache.
    pub cached_tokens: u32,
    /// Prompt tokens this request wrote into the prefix cache for later requests: its whole
    /// KV blocks less those read from the cache (a partly filled last block is not cached);
    /// 0 for an engine without a paged KV cache.
    pub cache_write_tokens: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct OutputTokensDetails {
    /// Output tokens are not attributed to reasoning or answer: always 0.
    pub reasoning_tokens: u32,
}

/// DELETE /v1/responses/{id} answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DeletedResponse {
    pub id: String,
    /// Always `"response"`.
    pub object: String,
    pub deleted: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn input_parses_as_text_or_items_with_string_or_part_content() {
        let text: CreateResponseRequest =
            serde_json::from_value(json!({"model": "m", "input": "hi"})).unwrap();
        assert_eq!(text.input, ResponseInput::Text("hi".to_string()));
        let items: CreateResponseRequest = serde_json::from_value(json!({"model": "m", "input": [
            {"role": "user", "content": "a"},
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "b"}]},
            {"type": "function_call_output", "call_id": "c", "output": "42"}
        ]}))
        .unwrap();
        let ResponseInput::Items(items) = items.input else {
            panic!("items")
        };
        assert_eq!(items[0].content, Some(InputContent::Text("a".to_string())));
        assert_eq!(items[1].kind.as_deref(), Some("message"));
        assert_eq!(items[2].output, Some(InputContent::Text("42".to_string())));
    }

    #[test]
    fn output_items_serialize_with_their_type_tag() {
        let item = OutputItem::FunctionCall {
            id: "fc_1".to_string(),
            call_id: "call_1".to_string(),
            name: "f".to_string(),
            arguments: "{}".to_string(),
            status: "completed".to_string(),
        };
        assert_eq!(
            serde_json::to_value(&item).unwrap(),
            json!({"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "f",
                   "arguments": "{}", "status": "completed"})
        );
    }
}

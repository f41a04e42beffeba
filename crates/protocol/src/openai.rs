//! OpenAI-compatible request and response bodies (owned by the frontend work).
//!
//! Requests keep numeric fields wide (`i64`, `f64`) so that out-of-range values parse and the
//! frontend can reject them with an error naming the field, instead of a generic type error.
//! Unknown fields are ignored, as OpenAI does; fields Rotor does not support (`logprobs`, …) are
//! parsed so the frontend can refuse them by name. Tool calling (`tools`, `tool_choice`,
//! assistant `tool_calls`, `tool` messages), `response_format` and vLLM's guided-decoding
//! extensions (`guided_json`, `guided_regex`, `guided_choice`, `guided_grammar`,
//! `structured_outputs`) are parsed here and checked by the frontend, which gives a 400 naming
//! the field for anything malformed.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `stop`: one string or a list of strings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum StopSpec {
    One(String),
    Many(Vec<String>),
}

impl StopSpec {
    pub fn into_vec(self) -> Vec<String> {
        match self {
            StopSpec::One(s) => vec![s],
            StopSpec::Many(v) => v,
        }
    }
}

/// `stream_options` of a streaming request.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct StreamOptions {
    /// Send a last chunk with `usage` and empty `choices` before `[DONE]`.
    #[serde(default)]
    pub include_usage: Option<bool>,
}

/// Sampling and stopping parameters shared by chat and text completions, including Rotor's
/// extensions (`top_k`, `min_p`, `repetition_penalty`, `min_tokens`, `ignore_eos`). The request
/// structs repeat these fields instead of flattening this struct, so that a type error names
/// its field; [`ChatCompletionRequest::sampling_fields`] and
/// [`CompletionRequest::sampling_fields`] gather them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SamplingFields {
    pub max_tokens: Option<i64>,
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub n: Option<i64>,
    pub stop: Option<StopSpec>,
    pub stream: Option<bool>,
    pub stream_options: Option<StreamOptions>,
    pub seed: Option<i64>,
    pub frequency_penalty: Option<f64>,
    pub presence_penalty: Option<f64>,
    pub logit_bias: Option<BTreeMap<String, f64>>,
    /// Accepted and ignored.
    pub user: Option<String>,
    pub top_k: Option<i64>,
    pub min_p: Option<f64>,
    pub repetition_penalty: Option<f64>,
    pub min_tokens: Option<i64>,
    pub ignore_eos: Option<bool>,
}

/// Message content: a string or a list of typed parts (`{"type": "text", "text": …}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum MessageContent {
    Text(String),
    Parts(Vec<ContentPart>),
}

/// One part of a multi-part message content. Only `text` parts are supported.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ContentPart {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

/// One chat message of a request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ChatMessage {
    pub role: String,
    /// May be null on an assistant message that only carries `tool_calls`.
    #[serde(default)]
    pub content: Option<MessageContent>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Assistant messages: the calls the model made earlier in the conversation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<MessageToolCall>>,
    /// `tool` messages: the id of the call this message answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
    /// Assistant messages: reasoning returned earlier (templates that render it may use it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning_content: Option<String>,
}

/// A function call, in an assistant message of a request or of a response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct FunctionCall {
    pub name: String,
    /// The arguments as a JSON object text (OpenAI sends a string, not an object).
    pub arguments: String,
}

/// One entry of an assistant message's `tool_calls`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct MessageToolCall {
    pub id: String,
    /// Always `"function"`.
    #[serde(rename = "type", default = "function_type")]
    pub kind: String,
    pub function: FunctionCall,
}

fn function_type() -> String {
    "function".to_string()
}

/// The `function` of a tool definition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct FunctionDefinition {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// JSON Schema of the arguments object; absent means no arguments are described.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<serde_json::Value>,
    /// OpenAI's `strict`: accepted; forced calls always follow the schema.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strict: Option<bool>,
}

/// One entry of a request's `tools`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ToolDefinition {
    /// Only `"function"`.
    #[serde(rename = "type")]
    pub kind: String,
    pub function: FunctionDefinition,
}

/// vLLM's `structured_outputs` object: exactly one of its members.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct StructuredOutputs {
    /// A JSON schema (object or JSON text).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub json: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regex: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub choice: Option<Vec<String>>,
    /// Lark (llguidance's dialect), or GBNF when it contains `::=`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grammar: Option<String>,
    /// Any JSON object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub json_object: Option<bool>,
}

/// The constraint fields shared by chat and text completions: OpenAI's `response_format` and
/// vLLM's guided-decoding extensions. At most one may be set per request.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConstraintFields {
    pub response_format: Option<serde_json::Value>,
    pub guided_json: Option<serde_json::Value>,
    pub guided_regex: Option<String>,
    pub guided_choice: Option<Vec<String>>,
    pub guided_grammar: Option<String>,
    pub structured_outputs: Option<StructuredOutputs>,
}

/// POST /v1/chat/completions body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ChatCompletionRequest {
    pub model: String,
    #[schema(min_items = 1)]
    pub messages: Vec<ChatMessage>,
    /// The newer name of `max_tokens` for chat; wins when both are given.
    #[schema(minimum = 1)]
    pub max_completion_tokens: Option<i64>,
    #[schema(minimum = 1)]
    pub max_tokens: Option<i64>,
    #[schema(minimum = 0, maximum = 2)]
    pub temperature: Option<f64>,
    #[schema(exclusive_minimum = 0, maximum = 1)]
    pub top_p: Option<f64>,
    /// Choices per prompt; they share the prompt's prefill.
    #[schema(minimum = 1, maximum = 16)]
    pub n: Option<i64>,
    pub stop: Option<StopSpec>,
    pub stream: Option<bool>,
    pub stream_options: Option<StreamOptions>,
    pub seed: Option<i64>,
    #[schema(minimum = -2, maximum = 2)]
    pub frequency_penalty: Option<f64>,
    #[schema(minimum = -2, maximum = 2)]
    pub presence_penalty: Option<f64>,
    /// Token id (as a string) → bias in [-100, 100] added to its logit.
    #[schema(value_type = Option<BTreeMap<String, f64>>)]
    pub logit_bias: Option<BTreeMap<String, f64>>,
    /// Accepted and ignored.
    pub user: Option<String>,
    /// Rotor extension: keep the k most likely tokens (0 or -1: off).
    #[schema(minimum = -1)]
    pub top_k: Option<i64>,
    /// Rotor extension.
    #[schema(minimum = 0, maximum = 1)]
    pub min_p: Option<f64>,
    /// Rotor extension.
    #[schema(exclusive_minimum = 0)]
    pub repetition_penalty: Option<f64>,
    /// Rotor extension: do not stop on end-of-generation before this many tokens.
    #[schema(minimum = 0)]
    pub min_tokens: Option<i64>,
    pub ignore_eos: Option<bool>,
    /// Return each output token's logprob (`choices[].logprobs.content`).
    pub logprobs: Option<bool>,
    /// With `logprobs`: how many alternatives per token (0–20).
    #[schema(minimum = 0, maximum = 20)]
    pub top_logprobs: Option<i64>,
    /// Functions the model may call.
    pub tools: Option<Vec<ToolDefinition>>,
    /// `"none"`, `"auto"` (the default with tools), `"required"`, or
    /// `{"type": "function", "function": {"name": …}}`.
    pub tool_choice: Option<serde_json::Value>,
    /// Whether the model may make several calls in one answer (default true).
    pub parallel_tool_calls: Option<bool>,
    /// `{"type": "text"}`, `{"type": "json_object"}` or
    /// `{"type": "json_schema", "json_schema": {"name", "schema", "strict"}}`.
    pub response_format: Option<serde_json::Value>,
    /// vLLM extension: output must match this JSON schema.
    pub guided_json: Option<serde_json::Value>,
    /// vLLM extension: output must match this regular expression.
    pub guided_regex: Option<String>,
    /// vLLM extension: output must be one of these strings.
    pub guided_choice: Option<Vec<String>>,
    /// vLLM extension: output must match this grammar (Lark, or GBNF when it contains `::=`).
    pub guided_grammar: Option<String>,
    /// vLLM extension (newer form of the `guided_*` fields).
    pub structured_outputs: Option<StructuredOutputs>,
    /// vLLM extension: extra variables for the chat template (e.g. `enable_thinking`).
    pub chat_template_kwargs: Option<serde_json::Map<String, serde_json::Value>>,
}

/// `prompt` of a text completion: text or token ids, alone or in a list (one choice set per
/// prompt).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Prompt {
    Text(String),
    Texts(Vec<String>),
    Tokens(Vec<u32>),
    TokenLists(Vec<Vec<u32>>),
}

/// POST /v1/completions body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CompletionRequest {
    pub model: String,
    pub prompt: Prompt,
    /// Tokens to generate; 0 only with `echo` (score the prompt without generating).
    #[schema(minimum = 0)]
    pub max_tokens: Option<i64>,
    #[schema(minimum = 0, maximum = 2)]
    pub temperature: Option<f64>,
    #[schema(exclusive_minimum = 0, maximum = 1)]
    pub top_p: Option<f64>,
    /// Choices per prompt; they share the prompt's prefill.
    #[schema(minimum = 1, maximum = 16)]
    pub n: Option<i64>,
    pub stop: Option<StopSpec>,
    pub stream: Option<bool>,
    pub stream_options: Option<StreamOptions>,
    pub seed: Option<i64>,
    #[schema(minimum = -2, maximum = 2)]
    pub frequency_penalty: Option<f64>,
    #[schema(minimum = -2, maximum = 2)]
    pub presence_penalty: Option<f64>,
    /// Token id (as a string) → bias in [-100, 100] added to its logit.
    #[schema(value_type = Option<BTreeMap<String, f64>>)]
    pub logit_bias: Option<BTreeMap<String, f64>>,
    /// Accepted and ignored.
    pub user: Option<String>,
    /// Rotor extension: keep the k most likely tokens (0 or -1: off).
    #[schema(minimum = -1)]
    pub top_k: Option<i64>,
    /// Rotor extension.
    #[schema(minimum = 0, maximum = 1)]
    pub min_p: Option<f64>,
    /// Rotor extension.
    #[schema(exclusive_minimum = 0)]
    pub repetition_penalty: Option<f64>,
    /// Rotor extension: do not stop on end-of-generation before this many tokens.
    #[schema(minimum = 0)]
    pub min_tokens: Option<i64>,
    pub ignore_eos: Option<bool>,
    /// The legacy API's logprobs: how many alternatives per token (0–20).
    #[schema(minimum = 0, maximum = 20)]
    pub logprobs: Option<i64>,
    /// Put the prompt before each choice's text.
    pub echo: Option<bool>,
    /// Insertion is not supported: must be absent or null.
    #[schema(ignore)]
    pub suffix: Option<String>,
    /// Sequences per prompt (at least `n`); the `n` with the highest cumulative logprob are
    /// returned. Not with `stream`.
    #[schema(minimum = 1, maximum = 16)]
    pub best_of: Option<i64>,
    /// `{"type": "text"}`, `{"type": "json_object"}` or `{"type": "json_schema", …}`.
    pub response_format: Option<serde_json::Value>,
    /// vLLM extensions, as on chat completions.
    pub guided_json: Option<serde_json::Value>,
    pub guided_regex: Option<String>,
    pub guided_choice: Option<Vec<String>>,
    pub guided_grammar: Option<String>,
    pub structured_outputs: Option<StructuredOutputs>,
}

/// Cached-prompt accounting inside [`Usage`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PromptTokensDetails {
    pub cached_tokens: u32,
}

/// Token accounting of a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Usage {
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
    pub total_tokens: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_tokens_details: Option<PromptTokensDetails>,
}

/// An assistant message in a non-streaming chat response. `content` is null when the answer is
/// only tool calls; `reasoning_content` (vLLM's extension) is present only with a reasoning
/// parser, `tool_calls` only when the model called tools.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ResponseMessage {
    pub role: String,
    pub content: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning_content: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<MessageToolCall>,
}

/// The function part of a streamed tool-call delta.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct FunctionCallDelta {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arguments: Option<String>,
}

/// One entry of a streamed `delta.tool_calls`: the first delta of a call carries `id`, `type`
/// and `function.name` (with empty arguments), later ones argument fragments only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ToolCallDelta {
    pub index: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    pub function: FunctionCallDelta,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ChatChoice {
    pub index: u32,
    pub message: ResponseMessage,
    /// Null unless the request asked for logprobs.
    pub logprobs: Option<serde_json::Value>,
    pub finish_reason: Option<String>,
}

/// Non-streaming chat response (`object: "chat.completion"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ChatCompletionResponse {
    pub id: String,
    pub object: String,
    pub created: u64,
    pub model: String,
    pub choices: Vec<ChatChoice>,
    pub usage: Usage,
}

/// The incremental part of a streamed chat choice.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ChatDelta {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning_content: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCallDelta>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ChatChunkChoice {
    pub index: u32,
    pub delta: ChatDelta,
    pub logprobs: Option<serde_json::Value>,
    pub finish_reason: Option<String>,
}

/// One streamed chat chunk (`object: "chat.completion.chunk"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ChatCompletionChunk {
    pub id: String,
    pub object: String,
    pub created: u64,
    pub model: String,
    pub choices: Vec<ChatChunkChoice>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CompletionChoice {
    pub index: u32,
    pub text: String,
    pub logprobs: Option<serde_json::Value>,
    pub finish_reason: Option<String>,
}

/// A text-completion response or streamed chunk (`object: "text_completion"`). `usage` is set on
/// non-streaming responses and on the final usage chunk of a stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CompletionResponse {
    pub id: String,
    pub object: String,
    pub created: u64,
    pub model: String,
    pub choices: Vec<CompletionChoice>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
}

/// One entry of GET /v1/models.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ModelObject {
    pub id: String,
    pub object: String,
    pub created: u64,
    pub owned_by: String,
    /// Rotor extension: the context window in tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_model_len: Option<u32>,
    /// Rotor extension: the tool-call parser in use (`hermes`, …); none when tool calling is off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_parser: Option<String>,
    /// Rotor extension: the reasoning parser in use (`qwen3`, …), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning_parser: Option<String>,
}

/// GET /v1/models body (`object: "list"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ModelList {
    pub object: String,
    pub data: Vec<ModelObject>,
}

/// POST /tokenize body (vLLM's shape): a `prompt`, or chat `messages` rendered with the model's
/// template first. `model` may be left out when one model is served.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, ToSchema)]
pub struct TokenizeRequest {
    pub model: Option<String>,
    pub prompt: Option<String>,
    pub messages: Option<Vec<ChatMessage>>,
    /// Chat only: end the rendering with the assistant's turn opening (default true).
    pub add_generation_prompt: Option<bool>,
    /// Add the model's BOS token when it wants one (default: true for `prompt`, false for
    /// `messages`, whose template writes its own).
    pub add_special_tokens: Option<bool>,
    /// Also return each token's vocabulary entry (`token_strs`).
    pub return_token_strs: Option<bool>,
    /// Unsupported when true.
    pub continue_final_message: Option<bool>,
    /// Unsupported when set (the served template is used).
    pub chat_template: Option<String>,
    /// Tools to render with the template (as on chat completions).
    pub tools: Option<Vec<ToolDefinition>>,
}

/// POST /tokenize answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TokenizeResponse {
    pub count: usize,
    /// The model's context window in tokens.
    pub max_model_len: u32,
    pub tokens: Vec<u32>,
    /// Each token's vocabulary entry, when `return_token_strs` asked for them.
    pub token_strs: Option<Vec<String>>,
}

/// GET /tokenizer_info answer (vLLM's shape): what a client needs to tokenize as the server
/// does (lm-evaluation-harness's remote tokenizer reads it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TokenizerInfo {
    pub eos_token: Option<String>,
    pub bos_token: Option<String>,
    /// The model has no padding token: always null.
    pub pad_token: Option<String>,
    /// Whether the tokenizer puts BOS before a prompt.
    pub add_bos_token: bool,
    /// The context window in tokens.
    pub model_max_length: u32,
    pub chat_template: Option<String>,
    pub vocab_size: usize,
}

/// POST /detokenize body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DetokenizeRequest {
    pub model: Option<String>,
    pub tokens: Vec<u32>,
}

/// POST /detokenize answer: the text of the tokens, special tokens included.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DetokenizeResponse {
    pub prompt: String,
}

/// The `error` member of an OpenAI error body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ErrorDetail {
    pub message: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub param: Option<String>,
    pub code: Option<String>,
}

/// An OpenAI error body: `{"error": {"message", "type", "param", "code"}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ErrorResponse {
    pub error: ErrorDetail,
}

macro_rules! sampling_fields_of {
    ($req:expr, $max_tokens:expr) => {
        SamplingFields {
            max_tokens: $max_tokens,
            temperature: $req.temperature,
            top_p: $req.top_p,
            n: $req.n,
            stop: $req.stop.clone(),
            stream: $req.stream,
            stream_options: $req.stream_options.clone(),
            seed: $req.seed,
            frequency_penalty: $req.frequency_penalty,
            presence_penalty: $req.presence_penalty,
            logit_bias: $req.logit_bias.clone(),
            user: $req.user.clone(),
            top_k: $req.top_k,
            min_p: $req.min_p,
            repetition_penalty: $req.repetition_penalty,
            min_tokens: $req.min_tokens,
            ignore_eos: $req.ignore_eos,
        }
    };
}

macro_rules! constraint_fields_of {
    ($req:expr) => {
        ConstraintFields {
            response_format: $req.response_format.clone(),
            guided_json: $req.guided_json.clone(),
            guided_regex: $req.guided_regex.clone(),
            guided_choice: $req.guided_choice.clone(),
            guided_grammar: $req.guided_grammar.clone(),
            structured_outputs: $req.structured_outputs.clone(),
        }
    };
}

impl ChatCompletionRequest {
    /// The shared sampling fields; `max_completion_tokens` wins over `max_tokens`.
    pub fn sampling_fields(&self) -> SamplingFields {
        sampling_fields_of!(self, self.max_completion_tokens.or(self.max_tokens))
    }

    /// `response_format` and the guided-decoding extensions.
    pub fn constraint_fields(&self) -> ConstraintFields {
        constraint_fields_of!(self)
    }
}

impl CompletionRequest {
    pub fn sampling_fields(&self) -> SamplingFields {
        sampling_fields_of!(self, self.max_tokens)
    }

    /// `response_format` and the guided-decoding extensions.
    pub fn constraint_fields(&self) -> ConstraintFields {
        constraint_fields_of!(self)
    }
}

/// A schema written as JSON (for the few types whose shape the derive cannot state: untagged
/// unions with length limits).
fn json_schema(
    value: serde_json::Value,
) -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    utoipa::openapi::RefOr::T(
        serde_json::from_value(value).expect("invariant: the literal schemas below are valid"),
    )
}

impl utoipa::PartialSchema for StopSpec {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        json_schema(serde_json::json!({
            "description": "Stop sequences (never shown): one string or a list of at most 4 non-empty strings.",
            "oneOf": [
                {"type": "string", "minLength": 1},
                {"type": "array", "items": {"type": "string", "minLength": 1}, "maxItems": 4}
            ]
        }))
    }
}
impl ToSchema for StopSpec {}

impl utoipa::PartialSchema for Prompt {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        let ids = serde_json::json!({"type": "array", "items": {"type": "integer", "minimum": 0}, "minItems": 1});
        json_schema(serde_json::json!({
            "description": "A prompt as text or token ids, or a list of prompts (one set of choices each).",
            "oneOf": [
                {"type": "string", "minLength": 1},
                {"type": "array", "items": {"type": "string", "minLength": 1}, "minItems": 1},
                ids,
                {"type": "array", "items": ids, "minItems": 1}
            ]
        }))
    }
}
impl ToSchema for Prompt {}

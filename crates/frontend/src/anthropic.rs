//! Anthropic's Messages API: POST /v1/messages and POST /v1/messages/count_tokens.
//!
//! A request is translated into the equivalent OpenAI chat request ([`translate`]) and planned
//! by [`chat_plan`], so rendering, tools and constraints are the chat path's; the answer goes
//! through the same [`ChatOutput`] parsers and comes back as a `Message` of content blocks
//! (`text`, `thinking`, `tool_use`), whole or as Anthropic's event stream ([`stream`]).
//!
//! `stop_reason`: `tool_use` when calls were parsed and generation stopped by itself,
//! `stop_sequence` (with `stop_sequence` set to the matched string) when a stop sequence ended
//! it, `max_tokens` when the token budget did, else `end_turn` (EOS). Tool-call ids are
//! `toolu_` + the parser's 24 random alphanumerics; `input` is the arguments object.
//!
//! Every error on these routes — bad JSON, validation, unknown model, overload, backend
//! failures, and the 401 of the API-key layer — has Anthropic's shape
//! `{"type": "error", "error": {"type", "message"}}` ([`AnthropicError`]); an overload is 529
//! `overloaded_error` with `Retry-After`, as Anthropic's own. `anthropic-version` and
//! `anthropic-beta` headers are accepted and ignored; `x-api-key` is an API key ([`crate::auth`]).
//! Accepted /v1/messages requests are counted in `rotor_frontend_anthropic_messages_total{stream}`.

mod stream;
mod translate;

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use rotor_protocol::anthropic::{
    ContentBlock, CountTokensResponse, ErrorDetail, ErrorResponse, Message, MessageUsage,
    MessagesRequest,
};
use serde_json::Value;

use crate::chat_output::{ChatAnswer, ChatOutput};
use crate::error::ApiError;
use crate::generation::{Finish, TextGeneration};
use crate::json_body::JsonBody;
use crate::overload::refuse_if_overloaded;
use crate::request_id::RequestId;
use crate::routes::AppState;
use crate::validate::chat_plan;
use translate::{chat_request, Purpose};

/// The routes answered in Anthropic's shapes (the API-key layer asks for them).
pub(crate) fn is_anthropic_path(path: &str) -> bool {
    path == "/v1/messages" || path.starts_with("/v1/messages/")
}

/// An [`ApiError`] answered in Anthropic's error shape.
#[derive(Debug)]
pub struct AnthropicError(pub ApiError);

impl From<ApiError> for AnthropicError {
    fn from(err: ApiError) -> Self {
        Self(err)
    }
}

/// HTTP status 529, Anthropic's "overloaded".
const OVERLOADED: u16 = 529;

impl AnthropicError {
    /// The status and Anthropic `error.type` of the error.
    pub fn status_and_kind(&self) -> (StatusCode, &'static str) {
        let err = &self.0;
        if err.code.as_deref() == Some("overloaded") {
            let status = StatusCode::from_u16(OVERLOADED).expect("invariant: 529 is a status");
            return (status, "overloaded_error");
        }
        let kind = match err.status.as_u16() {
            401 => "authentication_error",
            403 => "permission_error",
            404 => "not_found_error",
            413 => "request_too_large",
            429 => "rate_limit_error",
            s if s >= 500 => "api_error",
            _ => "invalid_request_error",
        };
        (err.status, kind)
    }

    pub fn body(&self) -> ErrorResponse {
        let (_, kind) = self.status_and_kind();
        ErrorResponse {
            kind: "error".to_string(),
            error: ErrorDetail {
                kind: kind.to_string(),
                message: self.0.message.clone(),
            },
        }
    }
}

impl IntoResponse for AnthropicError {
    fn into_response(self) -> Response {
        let (status, _) = self.status_and_kind();
        let mut response = (status, Json(self.body())).into_response();
        for (name, value) in self.0.headers {
            response.headers_mut().append(name, value);
        }
        response
    }
}

/// POST /v1/messages.
/// The error answers of the Anthropic routes, in Anthropic's error shape.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)] // only described, never built
pub enum AnthropicErrors {
    /// `invalid_request_error`: the request is malformed or refused.
    #[response(status = 400)]
    BadRequest(rotor_protocol::anthropic::ErrorResponse),
    /// `authentication_error`: a missing or wrong API key (only when the server has keys).
    #[response(status = 401)]
    Unauthorized(rotor_protocol::anthropic::ErrorResponse),
    /// `not_found_error`: no such model.
    #[response(status = 404)]
    NotFound(rotor_protocol::anthropic::ErrorResponse),
    /// `request_too_large`: the body is over the size limit.
    #[response(status = 413)]
    TooLarge(rotor_protocol::anthropic::ErrorResponse),
    /// The body is not `application/json`.
    #[response(status = 415)]
    UnsupportedMediaType(rotor_protocol::anthropic::ErrorResponse),
    /// `api_error`: the engine failed.
    #[response(status = 500)]
    Internal(rotor_protocol::anthropic::ErrorResponse),
    /// `api_error`: no worker is left.
    #[response(status = 503)]
    Unavailable(rotor_protocol::anthropic::ErrorResponse),
    /// `overloaded_error`: every worker of the model is busy.
    #[response(
        status = 529,
        headers(("Retry-After" = u32, description = "Seconds to wait before retrying"))
    )]
    Overloaded(rotor_protocol::anthropic::ErrorResponse),
}

/// Creates a message (Anthropic's Messages API).
#[utoipa::path(
    post,
    path = "/v1/messages",
    request_body = MessagesRequest,
    responses(
        (
            status = 200,
            description = "The message; with `stream: true`, Anthropic's server-sent events \
                           (`message_start` … `message_stop`).",
            content(
                (rotor_protocol::anthropic::Message = "application/json"),
                (rotor_protocol::anthropic::StreamEvent = "text/event-stream")
            )
        ),
        AnthropicErrors
    )
)]
pub async fn messages(
    State(state): State<AppState>,
    Extension(request_id): Extension<RequestId>,
    body: Result<JsonBody<MessagesRequest>, ApiError>,
) -> Result<Response, AnthropicError> {
    let JsonBody(req) = body?;
    let chat = chat_request(&req, Purpose::Generate)?;
    let entry = state.registry.require(&req.model)?;
    refuse_if_overloaded(&state, &entry)?;
    let id = message_id(&request_id);
    let plan = chat_plan(&entry, &chat, &state.config, &id)?;
    state.metrics.count_anthropic_message(plan.stream);
    if let Some(choice) = plan.tool_choice {
        state.metrics.count_tool_request(choice);
    }
    state.metrics.count_sampling_options(&plan.request.sampling);
    if let Some(kind) = plan.constraint_kind {
        state.metrics.count_constrained_request(kind);
    }
    tracing::debug!(
        generation_id = %id,
        model = %entry.card.name,
        prompt_tokens = plan.prompt_tokens(),
        stream = plan.stream,
        "anthropic message starts"
    );
    let timer = state.metrics.start_generation(&entry.card.name);
    let mut generation = TextGeneration::start(&entry, &plan, timer)?;
    let mut output = ChatOutput::new(&plan.output, Arc::clone(&state.metrics));
    let answer = AnswerInfo {
        id,
        model: req.model.clone(),
        input_tokens: plan.prompt_tokens() as u32,
        stop_strings: plan.stop_strings.clone(),
    };
    if plan.stream {
        return stream::respond(generation, output, answer).await;
    }
    // If the client disconnects, hyper drops this future and with it the backend stream.
    let mut parsed = ChatAnswer::default();
    while let Some(step) = generation.next_step().await {
        let step = step?;
        parsed.apply(output.push(&step.text));
        if let Some(finish) = step.finish {
            let (last, reason) = output.finish(finish.reason);
            parsed.apply(last);
            let message = answer.message(content_blocks(parsed)?, Some((reason, &finish)));
            return Ok(Json(message).into_response());
        }
    }
    Err(ApiError::internal("generation ended without a finish").into())
}

/// POST /v1/messages/count_tokens: the prompt tokens /v1/messages would send for this body.
/// Counts the prompt tokens /v1/messages would send for this body.
#[utoipa::path(
    post,
    path = "/v1/messages/count_tokens",
    request_body = MessagesRequest,
    responses((status = 200, body = CountTokensResponse), AnthropicErrors)
)]
pub async fn count_tokens(
    State(state): State<AppState>,
    Extension(request_id): Extension<RequestId>,
    body: Result<JsonBody<MessagesRequest>, ApiError>,
) -> Result<Json<CountTokensResponse>, AnthropicError> {
    let JsonBody(req) = body?;
    let chat = chat_request(&req, Purpose::CountTokens)?;
    let entry = state.registry.require(&req.model)?;
    let plan = chat_plan(&entry, &chat, &state.config, &message_id(&request_id))?;
    Ok(Json(CountTokensResponse {
        input_tokens: plan.prompt_tokens() as u32,
    }))
}

/// `msg_` and the request's generation id.
fn message_id(request_id: &RequestId) -> String {
    let id = request_id.generation_id("msg");
    match id.strip_prefix("msg-") {
        Some(rest) => format!("msg_{rest}"),
        None => id,
    }
}

/// `toolu_` and the random part of the parser's `call_…` id.
pub(crate) fn tool_use_id(call_id: &str) -> String {
    format!("toolu_{}", call_id.strip_prefix("call_").unwrap_or(call_id))
}

/// A call's arguments text (a JSON object, as the tool parsers guarantee) as `input`.
pub(crate) fn tool_input(arguments: &str) -> Result<Value, ApiError> {
    if arguments.trim().is_empty() {
        return Ok(Value::Object(Default::default()));
    }
    serde_json::from_str(arguments).map_err(|err| {
        ApiError::internal(format!(
            "a parsed tool call's arguments are not JSON ({err})"
        ))
    })
}

/// The blocks of a whole answer: thinking, then text (left out when only whitespace), then
/// one `tool_use` per call.
fn content_blocks(answer: ChatAnswer) -> Result<Vec<ContentBlock>, ApiError> {
    let mut blocks = Vec::new();
    if !answer.reasoning.is_empty() {
        blocks.push(ContentBlock::Thinking {
            thinking: answer.reasoning,
            signature: String::new(),
        });
    }
    if !answer.content.trim().is_empty() {
        blocks.push(ContentBlock::Text {
            text: answer.content,
        });
    }
    for call in answer.calls {
        blocks.push(ContentBlock::ToolUse {
            id: tool_use_id(&call.id),
            input: tool_input(&call.arguments)?,
            name: call.name,
        });
    }
    Ok(blocks)
}

/// What every body of one answer shares.
pub(crate) struct AnswerInfo {
    id: String,
    model: String,
    input_tokens: u32,
    stop_strings: Vec<String>,
}

impl AnswerInfo {
    /// Anthropic's `stop_reason` and `stop_sequence` for the chat output's finish reason.
    fn stop_reason(&self, reason: &str, finish: &Finish) -> (String, Option<String>) {
        let matched = finish
            .stop_string
            .and_then(|i| self.stop_strings.get(i))
            .cloned();
        let stop_reason = match (reason, &matched) {
            ("tool_calls", _) => "tool_use",
            ("length", _) => "max_tokens",
            (_, Some(_)) => "stop_sequence",
            _ => "end_turn",
        };
        let matched = matched.filter(|_| stop_reason == "stop_sequence");
        (stop_reason.to_string(), matched)
    }

    /// The `Message`; without a finish (a stream's `message_start`), no stop reason and no
    /// output tokens yet.
    fn message(&self, content: Vec<ContentBlock>, finish: Option<(&str, &Finish)>) -> Message {
        let (stop_reason, stop_sequence, output_tokens) = match finish {
            Some((reason, finish)) => {
                let (stop_reason, stop_sequence) = self.stop_reason(reason, finish);
                (
                    Some(stop_reason),
                    stop_sequence,
                    finish.usage.completion_tokens,
                )
            }
            None => (None, None, 0),
        };
        Message {
            id: self.id.clone(),
            kind: "message".to_string(),
            role: "assistant".to_string(),
            content,
            model: self.model.clone(),
            stop_reason,
            stop_sequence,
            usage: MessageUsage {
                input_tokens: self.input_tokens,
                output_tokens,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overload_is_529_and_statuses_map_to_anthropic_types() {
        let cases = [
            (ApiError::overloaded("m"), 529, "overloaded_error"),
            (ApiError::model_not_found("m"), 404, "not_found_error"),
            (ApiError::invalid_api_key(), 401, "authentication_error"),
            (
                ApiError::invalid_param("x", "bad"),
                400,
                "invalid_request_error",
            ),
            (ApiError::internal("boom"), 500, "api_error"),
        ];
        for (err, status, kind) in cases {
            let err = AnthropicError(err);
            let (got_status, got_kind) = err.status_and_kind();
            assert_eq!((got_status.as_u16(), got_kind), (status, kind));
            assert_eq!(err.body().kind, "error");
        }
    }

    #[test]
    fn ids_have_anthropic_prefixes() {
        assert_eq!(tool_use_id("call_abc"), "toolu_abc");
        let id = message_id(&RequestId::generate());
        assert!(id.starts_with("msg_") && !id.contains("msg-"), "{id}");
    }
}

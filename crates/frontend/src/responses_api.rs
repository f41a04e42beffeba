//! OpenAI's Responses API: POST /v1/responses, GET and DELETE /v1/responses/{id}.
//!
//! A request is translated into a chat request ([`input`]) and served by the chat machinery:
//! [`crate::validate::chat_plan`] (template, tools, forced calls, `text.format` constraints),
//! [`TextGeneration`] and the model's reasoning and tool-call parsers. The parsed answer
//! becomes output items (`reasoning`, `message`, `function_call`) and, when streaming, the
//! Responses event sequence ([`output`]). SSE events carry `event: <type>` lines and no
//! `[DONE]`.
//!
//! `previous_response_id` prepends the stored response's conversation (its input and output,
//! not its `instructions`). Responses with `store` (the default) are kept in a bounded,
//! per-process [`store::ResponseStore`] (`FrontendConfig::max_stored_responses`, oldest
//! evicted first): frontends behind one load balancer do not share it. A stream the client
//! leaves early is not stored.
//!
//! Not served: built-in tools, images, files and audio (400 naming the field), `background`,
//! `conversation`, GET /v1/responses/{id}/input_items.

mod input;
mod output;
pub mod store;

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use rotor_protocol::openai::ChatMessage;
use rotor_protocol::responses_api::{CreateResponseRequest, DeletedResponse, ResponseObject};
use serde_json::json;
use tracing::Instrument;

use crate::chat_output::{ChatOutput, ChatPiece};
use crate::error::ApiError;
use crate::generation::{TextGeneration, TextStep};
use crate::json_body::JsonBody;
use crate::metrics::Metrics;
use crate::openapi::ApiErrors;
use crate::overload::refuse_if_overloaded;
use crate::request_id::RequestId;
use crate::routes::AppState;
use crate::validate::chat_plan;
use input::{chat_request, echoed_tools, input_messages, output_messages, rename_param};
use output::{now_seconds, ResponseAssembler, ResponseEvent};
use store::{ResponseStore, StoredResponse};

/// Default `FrontendConfig::max_stored_responses`.
pub const DEFAULT_MAX_STORED_RESPONSES: usize = 1000;

fn not_stored(id: &str, param: Option<&str>) -> ApiError {
    let message = format!(
        "No response with id {id:?} is stored here. Responses created with `store: false` are \
         not kept; stored ones live in this frontend process only, until deleted or evicted \
         by newer ones."
    );
    let err = match param {
        Some(param) => ApiError::invalid_param(param, message),
        None => ApiError::invalid(None, message),
    };
    ApiError {
        status: StatusCode::NOT_FOUND,
        ..err.with_code("response_not_found")
    }
}

/// The response object echoing `req`, `in_progress` with no output yet.
fn echo(req: &CreateResponseRequest, id: &str, store: bool) -> ResponseObject {
    ResponseObject {
        id: id.to_string(),
        object: "response".to_string(),
        created_at: now_seconds(),
        completed_at: None,
        status: "in_progress".to_string(),
        incomplete_details: None,
        error: None,
        model: req.model.clone(),
        previous_response_id: req.previous_response_id.clone(),
        instructions: req.instructions.clone(),
        output: Vec::new(),
        tools: echoed_tools(req.tools.as_deref()),
        tool_choice: req.tool_choice.clone().unwrap_or_else(|| json!("auto")),
        parallel_tool_calls: req.parallel_tool_calls.unwrap_or(true),
        text: req
            .text
            .clone()
            .unwrap_or_else(|| json!({"format": {"type": "text"}})),
        temperature: req.temperature.unwrap_or(1.0),
        top_p: req.top_p.unwrap_or(1.0),
        presence_penalty: 0.0,
        frequency_penalty: 0.0,
        top_logprobs: 0,
        truncation: "disabled".to_string(),
        reasoning: None,
        usage: None,
        max_output_tokens: req.max_output_tokens,
        max_tool_calls: None,
        store,
        background: false,
        service_tier: "default".to_string(),
        metadata: req.metadata.clone().unwrap_or_else(|| json!({})),
        user: req.user.clone(),
        safety_identifier: None,
        prompt_cache_key: None,
    }
}

/// Where a finished response goes: the store (with `store`) and the stored-responses gauge.
struct Keeper {
    store: Option<Arc<ResponseStore>>,
    metrics: Arc<Metrics>,
    /// The conversation before the output, without instructions.
    input: Vec<ChatMessage>,
}

impl Keeper {
    fn keep(&self, response: &ResponseObject) {
        let Some(store) = &self.store else {
            return;
        };
        let stored = store.insert(StoredResponse {
            response: response.clone(),
            input: self.input.clone(),
        });
        self.metrics.set_responses_stored(stored);
    }
}

/// Feeds one generation step through the parsers into the assembler; `true` when it finished.
fn apply_step(
    step: TextStep,
    chat: &mut Option<ChatOutput>,
    assembler: &mut ResponseAssembler,
    events: &mut Vec<ResponseEvent>,
) -> bool {
    let (piece, finish) = match chat {
        Some(chat) => (chat.push(&step.text), step.finish),
        None => (
            ChatPiece {
                content: step.text,
                ..ChatPiece::default()
            },
            step.finish,
        ),
    };
    events.extend(assembler.push(piece));
    let Some(finish) = finish else {
        return false;
    };
    let reason = match chat {
        Some(chat) => {
            let (last, reason) = chat.finish(finish.reason);
            events.extend(assembler.push(last));
            reason
        }
        None => finish.reason,
    };
    events.extend(assembler.finish(reason, finish.usage));
    true
}

/// POST /v1/responses.
/// Creates a model response (OpenAI's Responses API).
#[utoipa::path(
    post,
    path = "/v1/responses",
    request_body = CreateResponseRequest,
    responses(
        (
            status = 200,
            description = "The response; with `stream: true`, server-sent events (`event:` the \
                           type, `data:` the event with its `sequence_number`).",
            content(
                (ResponseObject = "application/json"),
                (serde_json::Value = "text/event-stream")
            )
        ),
        ApiErrors
    )
)]
pub async fn create_response(
    State(state): State<AppState>,
    Extension(request_id): Extension<RequestId>,
    JsonBody(req): JsonBody<CreateResponseRequest>,
) -> Result<Response, ApiError> {
    let entry = state.registry.require(&req.model)?;
    refuse_if_overloaded(&state, &entry)?;
    let mut conversation = match &req.previous_response_id {
        Some(previous) => {
            let stored = state
                .responses
                .get(previous)
                .ok_or_else(|| not_stored(previous, Some("previous_response_id")))?;
            let mut messages = stored.input.clone();
            messages.extend(output_messages(&stored.response.output));
            messages
        }
        None => Vec::new(),
    };
    conversation.extend(input_messages(&req.input)?);
    let chat_req = chat_request(&req, &conversation)?;
    let id = format!("resp_{}", uuid::Uuid::new_v4().simple());
    let plan = chat_plan(&entry, &chat_req, &state.config, &id).map_err(rename_param)?;
    let store = req.store.unwrap_or(true);
    tracing::debug!(
        request_id = %request_id.as_str(),
        response_id = %id,
        model = %entry.card.name,
        prompt_tokens = plan.prompt_tokens(),
        stream = plan.stream,
        "response starts"
    );
    let timer = state.metrics.start_generation(&entry.card.name);
    let mut generation = TextGeneration::start(&entry, &plan, timer)?;
    state.metrics.count_response(plan.stream);
    if let Some(choice) = plan.tool_choice {
        state.metrics.count_tool_request(choice);
    }
    state.metrics.count_sampling_options(&plan.request.sampling);
    if let Some(kind) = plan.constraint_kind {
        state.metrics.count_constrained_request(kind);
    }
    let mut chat = (!plan.output.is_plain())
        .then(|| ChatOutput::new(&plan.output, Arc::clone(&state.metrics)));
    let mut assembler =
        ResponseAssembler::new(echo(&req, &id, store)).with_kv_block_size(entry.card.kv_block_size);
    let keeper = Keeper {
        store: store.then(|| Arc::clone(&state.responses)),
        metrics: Arc::clone(&state.metrics),
        input: conversation,
    };
    if plan.stream {
        return stream(generation, chat, assembler, keeper).await;
    }
    let mut events = Vec::new();
    while let Some(step) = generation.next_step().await {
        if apply_step(step?, &mut chat, &mut assembler, &mut events) {
            keeper.keep(assembler.response());
            return Ok(Json(assembler.into_response()).into_response());
        }
        events.clear();
    }
    Err(ApiError::internal("generation ended without a finish"))
}

/// GET /v1/responses/{id}.
/// A stored response.
#[utoipa::path(
    get,
    path = "/v1/responses/{id}",
    params(("id" = String, Path, description = "The response's id (`resp_…`)")),
    responses((status = 200, body = ResponseObject), ApiErrors)
)]
pub async fn get_response(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<ResponseObject>, ApiError> {
    let stored = state
        .responses
        .get(&id)
        .ok_or_else(|| not_stored(&id, None))?;
    Ok(Json(stored.response.clone()))
}

/// DELETE /v1/responses/{id}.
/// Deletes a stored response.
#[utoipa::path(
    delete,
    path = "/v1/responses/{id}",
    params(("id" = String, Path, description = "The response's id (`resp_…`)")),
    responses((status = 200, body = DeletedResponse), ApiErrors)
)]
pub async fn delete_response(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<DeletedResponse>, ApiError> {
    let (removed, left) = state.responses.remove(&id);
    state.metrics.set_responses_stored(left);
    removed.ok_or_else(|| not_stored(&id, None))?;
    Ok(Json(DeletedResponse {
        id,
        object: "response".to_string(),
        deleted: true,
    }))
}

struct StreamState {
    /// `None` once generation ended; dropping it cancels the backend request.
    generation: Option<TextGeneration>,
    chat: Option<ChatOutput>,
    assembler: ResponseAssembler,
    keeper: Keeper,
    queue: VecDeque<Event>,
}

fn sse(event: ResponseEvent) -> Event {
    Event::default()
        .event(event.kind)
        .data(event.data.to_string())
}

impl StreamState {
    fn enqueue(&mut self, step: Option<Result<TextStep, ApiError>>) {
        let mut events = Vec::new();
        match step {
            Some(Ok(step)) => {
                if apply_step(step, &mut self.chat, &mut self.assembler, &mut events) {
                    self.keeper.keep(self.assembler.response());
                    self.generation = None;
                }
            }
            Some(Err(err)) => {
                events.push(self.assembler.error(err.code.as_deref(), &err.message));
                self.generation = None;
            }
            None => self.generation = None,
        }
        self.queue.extend(events.into_iter().map(sse));
    }

    async fn next_event(&mut self) -> Option<Event> {
        loop {
            if let Some(event) = self.queue.pop_front() {
                return Some(event);
            }
            let step = self.generation.as_mut()?.next_step().await;
            self.enqueue(step);
        }
    }
}

/// Streams the events. The first step is awaited before answering, so an error the backend
/// reports at once still gets its HTTP status.
async fn stream(
    mut generation: TextGeneration,
    chat: Option<ChatOutput>,
    mut assembler: ResponseAssembler,
    keeper: Keeper,
) -> Result<Response, ApiError> {
    let first = match generation.next_step().await {
        Some(Err(err)) => return Err(err),
        step => step,
    };
    let opening = assembler.start();
    let mut state = StreamState {
        generation: Some(generation),
        chat,
        assembler,
        keeper,
        queue: opening.into_iter().map(sse).collect(),
    };
    state.enqueue(first);
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

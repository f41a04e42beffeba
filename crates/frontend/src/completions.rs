//! POST /v1/chat/completions and POST /v1/completions.

use std::sync::Arc;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Extension;
use axum::Json;
use rotor_protocol::openai::{ChatCompletionRequest, CompletionRequest};

use crate::chat_output::{ChatAnswer, ChatOutput};
use crate::error::ApiError;
use crate::generation::TextGeneration;
use crate::json_body::JsonBody;
use crate::overload::refuse_if_overloaded;
use crate::registry::ModelEntry;
use crate::request_id::RequestId;
use crate::responses::{Api, ResponseBuilder};
use crate::routes::AppState;
use crate::sse::stream_response;
use crate::validate::{chat_plan, completion_plan, GenerationPlan};

pub async fn chat_completions(
    State(state): State<AppState>,
    Extension(request_id): Extension<RequestId>,
    JsonBody(req): JsonBody<ChatCompletionRequest>,
) -> Result<Response, ApiError> {
    let entry = state
        .registry
        .get(&req.model)
        .ok_or_else(|| ApiError::model_not_found(&req.model))?;
    refuse_if_overloaded(&state, &entry)?;
    let builder = ResponseBuilder::new(Api::Chat, &req.model, &request_id);
    let plan = chat_plan(&entry, &req, &state.config, &builder.id)?;
    respond(&state, &entry, plan, builder).await
}

pub async fn completions(
    State(state): State<AppState>,
    Extension(request_id): Extension<RequestId>,
    JsonBody(req): JsonBody<CompletionRequest>,
) -> Result<Response, ApiError> {
    let entry = state
        .registry
        .get(&req.model)
        .ok_or_else(|| ApiError::model_not_found(&req.model))?;
    refuse_if_overloaded(&state, &entry)?;
    let builder = ResponseBuilder::new(Api::Completion, &req.model, &request_id);
    let plan = completion_plan(&entry, &req, &state.config, &builder.id)?;
    respond(&state, &entry, plan, builder).await
}

async fn respond(
    state: &AppState,
    entry: &ModelEntry,
    plan: GenerationPlan,
    mut builder: ResponseBuilder,
) -> Result<Response, ApiError> {
    builder.logprobs = plan.request.sampling.logprobs.is_some();
    tracing::debug!(
        generation_id = %builder.id,
        model = %entry.card.name,
        prompt_tokens = plan.prompt_tokens(),
        stream = plan.stream,
        "generation starts"
    );
    let timer = state.metrics.start_generation(&entry.card.name);
    let mut generation = TextGeneration::start(entry, &plan, timer)?;
    if let Some(choice) = plan.tool_choice {
        state.metrics.count_tool_request(choice);
    }
    state.metrics.count_sampling_options(&plan.request.sampling);
    if let Some(kind) = plan.constraint_kind {
        state.metrics.count_constrained_request(kind);
    }
    let chat = (!plan.output.is_plain())
        .then(|| ChatOutput::new(&plan.output, Arc::clone(&state.metrics)));
    if plan.stream {
        return stream_response(generation, builder, plan.include_usage, chat).await;
    }
    // If the client disconnects, hyper drops this future and with it the backend stream.
    let mut text = String::new();
    let mut chat = chat;
    let mut answer = ChatAnswer::default();
    let mut logprobs = Vec::new();
    while let Some(step) = generation.next_step().await {
        let mut step = step?;
        logprobs.append(&mut step.logprobs);
        let Some(chat) = &mut chat else {
            text.push_str(&step.text);
            if let Some(finish) = step.finish {
                let mut body = builder.full(text, &finish);
                builder.attach_logprobs(&mut body, &logprobs);
                return Ok(Json(body).into_response());
            }
            continue;
        };
        answer.apply(chat.push(&step.text));
        if let Some(finish) = step.finish {
            let (last, reason) = chat.finish(finish.reason);
            answer.apply(last);
            let mut body = builder.chat_full(answer, reason, finish.usage);
            builder.attach_logprobs(&mut body, &logprobs);
            return Ok(Json(body).into_response());
        }
    }
    Err(ApiError::internal("generation ended without a finish"))
}

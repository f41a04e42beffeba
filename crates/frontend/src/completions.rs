//! POST /v1/chat/completions and POST /v1/completions.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Extension;
use axum::Json;
use rotor_protocol::openai::{
    ChatCompletionChunk, ChatCompletionRequest, ChatCompletionResponse, CompletionRequest,
    CompletionResponse,
};

use futures::future::try_join_all;

use crate::choices::{finish_choice, merge_choices, start_choices};
use crate::error::ApiError;
use crate::json_body::JsonBody;
use crate::openapi::ApiErrors;
use crate::overload::refuse_if_overloaded;
use crate::registry::ModelEntry;
use crate::request_id::RequestId;
use crate::responses::{Api, ResponseBuilder};
use crate::routes::AppState;
use crate::sse::stream_response;
use crate::validate::{chat_plan, completion_plans, GenerationPlan};

/// Creates a chat completion.
#[utoipa::path(
    post,
    path = "/v1/chat/completions",
    request_body = ChatCompletionRequest,
    responses(
        (
            status = 200,
            description = "The completion; with `stream: true`, server-sent events whose `data` \
                           is a chunk (then `[DONE]`).",
            content(
                (ChatCompletionResponse = "application/json"),
                (ChatCompletionChunk = "text/event-stream")
            )
        ),
        ApiErrors
    )
)]
pub async fn chat_completions(
    State(state): State<AppState>,
    Extension(request_id): Extension<RequestId>,
    JsonBody(req): JsonBody<ChatCompletionRequest>,
) -> Result<Response, ApiError> {
    let entry = state.registry.require(&req.model)?;
    refuse_if_overloaded(&state, &entry)?;
    let builder = ResponseBuilder::new(Api::Chat, &req.model, &request_id);
    let plan = chat_plan(&entry, &req, &state.config, &builder.id)?;
    let show_logprobs = plan.request.sampling.logprobs.is_some();
    respond(&state, &entry, vec![plan], builder, show_logprobs).await
}

/// Creates a text completion.
#[utoipa::path(
    post,
    path = "/v1/completions",
    request_body = CompletionRequest,
    responses(
        (
            status = 200,
            description = "The completion; with `stream: true`, server-sent events whose `data` \
                           is a chunk (then `[DONE]`).",
            content(
                (CompletionResponse = "application/json"),
                (CompletionResponse = "text/event-stream")
            )
        ),
        ApiErrors
    )
)]
pub async fn completions(
    State(state): State<AppState>,
    Extension(request_id): Extension<RequestId>,
    JsonBody(req): JsonBody<CompletionRequest>,
) -> Result<Response, ApiError> {
    let entry = state.registry.require(&req.model)?;
    refuse_if_overloaded(&state, &entry)?;
    let builder = ResponseBuilder::new(Api::Completion, &req.model, &request_id);
    let plans = completion_plans(&entry, &req, &state.config, &builder.id)?;
    respond(&state, &entry, plans, builder, req.logprobs.is_some()).await
}

/// Answers with every choice of `plans` (one plan per prompt), streamed or whole.
async fn respond(
    state: &AppState,
    entry: &ModelEntry,
    plans: Vec<GenerationPlan>,
    mut builder: ResponseBuilder,
    show_logprobs: bool,
) -> Result<Response, ApiError> {
    let plan = plans
        .first()
        .ok_or_else(|| ApiError::internal("a request without a prompt was planned"))?;
    builder.logprobs = show_logprobs;
    tracing::debug!(
        generation_id = %builder.id,
        model = %entry.card.name,
        prompts = plans.len(),
        prompt_tokens = plans.iter().map(GenerationPlan::prompt_tokens).sum::<usize>(),
        sequences_per_prompt = plan.best_of,
        stream = plan.stream,
        "generation starts"
    );
    if let Some(choice) = plan.tool_choice {
        state.metrics.count_tool_request(choice);
    }
    state.metrics.count_sampling_options(&plan.request.sampling);
    for (option, used) in [
        ("n", plan.n > 1),
        ("best_of", plan.best_of > plan.n),
        ("prompt_list", plans.len() > 1),
        ("echo", plan.echo.is_some()),
    ] {
        if used {
            state.metrics.count_option(option);
        }
    }
    if let Some(kind) = plan.constraint_kind {
        state.metrics.count_constrained_request(kind);
    }
    let (stream, include_usage, n) = (plan.stream, plan.include_usage, plan.n);
    let runs = start_choices(state, entry, &plans).await?;
    if stream {
        return stream_response(runs, builder, include_usage).await;
    }
    let finished = try_join_all(runs.into_iter().map(|run| finish_choice(run, &builder))).await?;
    Ok(Json(merge_choices(&builder, finished, n)).into_response())
}

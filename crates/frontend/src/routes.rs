//! The HTTP surface: every route, the JSON 404/405 fallbacks, and the layers around them.
//!
//! Layers, outermost first: request id (every answer carries `x-request-id`, every log line of
//! the request its span) → CORS (preflights are answered here, before authentication) →
//! request counting → API key → body limit → the route.

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, MatchedPath, Path, Request, State};
use axum::http::{header, Method, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use rotor_protocol::openai::{ErrorResponse, ModelList, ModelObject};
use serde_json::json;

use crate::auth::require_api_key;
use crate::completions::{chat_completions, completions};
use crate::config::FrontendConfig;
use crate::embeddings::embeddings;
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::openapi::{ApiErrors, Health};
use crate::registry::{ModelEntry, ModelRegistry};
use crate::request_id::assign_request_id;
use crate::responses_api::store::ResponseStore;
use crate::responses_api::{create_response, delete_response, get_response};
use crate::tokenize::{detokenize, tokenize, tokenizer_info};

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    pub registry: ModelRegistry,
    pub config: Arc<FrontendConfig>,
    pub metrics: Arc<Metrics>,
    /// Responses API responses kept for GET, DELETE and `previous_response_id`.
    pub responses: Arc<ResponseStore>,
}

pub fn build_router(state: AppState) -> Router {
    let body_limit = state.config.body_limit_bytes;
    let metrics = Arc::clone(&state.metrics);
    let cors = state.config.allowed_origins.as_ref().map(|o| o.layer());
    let router = Router::new()
        .route("/v1/chat/completions", post(chat_completions))
        .route("/v1/completions", post(completions))
        .route("/v1/embeddings", post(embeddings))
        .route("/v1/responses", post(create_response))
        .route(
            "/v1/responses/{id}",
            get(get_response).delete(delete_response),
        )
        .route("/v1/messages", post(crate::anthropic::messages))
        .route(
            "/v1/messages/count_tokens",
            post(crate::anthropic::count_tokens),
        )
        .route("/v1/models", get(list_models))
        .route("/v1/models/{*id}", get(get_model))
        .route("/tokenize", post(tokenize))
        .route("/detokenize", post(detokenize))
        .route("/tokenizer_info", get(tokenizer_info))
        .route("/health", get(health))
        .route("/live", get(live))
        .route("/metrics", get(render_metrics))
        .route("/openapi.json", get(openapi))
        .fallback(route_not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            require_api_key,
        ))
        .layer(middleware::from_fn_with_state(metrics, count_requests))
        .with_state(state);
    let router = match cors {
        Some(cors) => router.layer(cors),
        None => router,
    };
    router.layer(middleware::from_fn(assign_request_id))
}

async fn count_requests(State(metrics): State<Arc<Metrics>>, req: Request, next: Next) -> Response {
    let endpoint = match req.extensions().get::<MatchedPath>() {
        Some(path) => path.as_str().to_string(),
        None => "unmatched".to_string(),
    };
    let response = next.run(req).await;
    metrics.count_request(&endpoint, response.status().as_u16());
    response
}

fn model_object(entry: &ModelEntry, owned_by: &str) -> ModelObject {
    ModelObject {
        id: entry.card.name.clone(),
        object: "model".to_string(),
        created: entry.card.created,
        owned_by: owned_by.to_string(),
        max_model_len: Some(entry.card.context_length),
        tool_call_parser: entry.parsers.tool_kind().map(|k| k.name().to_string()),
        reasoning_parser: entry.parsers.reasoning_kind().map(|k| k.name().to_string()),
    }
}

/// Lists the served models.
#[utoipa::path(get, path = "/v1/models", responses((status = 200, body = ModelList), ApiErrors))]
pub(crate) async fn list_models(State(state): State<AppState>) -> Json<ModelList> {
    let data = state
        .registry
        .list()
        .iter()
        .map(|entry| model_object(entry, &state.config.owned_by))
        .collect();
    Json(ModelList {
        object: "list".to_string(),
        data,
    })
}

/// One served model.
#[utoipa::path(
    get,
    path = "/v1/models/{id}",
    params(("id" = String, Path, description = "The model's name (it may contain `/`)")),
    responses((status = 200, body = ModelObject), ApiErrors)
)]
pub(crate) async fn get_model(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<ModelObject>, ApiError> {
    let entry = state.registry.require(&id)?;
    Ok(Json(model_object(&entry, &state.config.owned_by)))
}

/// 200 with the served models when there is at least one, else 503.
#[utoipa::path(
    get,
    path = "/health",
    responses(
        (status = 200, description = "Serving at least one model", body = Health),
        (status = 503, description = "No model is served", body = Health)
    )
)]
pub(crate) async fn health(State(state): State<AppState>) -> Response {
    let models: Vec<String> = state
        .registry
        .list()
        .iter()
        .map(|entry| entry.card.name.clone())
        .collect();
    if models.is_empty() {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "unavailable", "models": models})),
        )
            .into_response()
    } else {
        (
            StatusCode::OK,
            Json(json!({"status": "healthy", "models": models})),
        )
            .into_response()
    }
}

/// 200 while the process runs.
#[utoipa::path(get, path = "/live", responses((status = 200, body = Health)))]
pub(crate) async fn live() -> Json<serde_json::Value> {
    Json(json!({"status": "live"}))
}

/// Prometheus metrics (text exposition format 0.0.4).
#[utoipa::path(
    get,
    path = "/metrics",
    responses(
        (status = 200, description = "Every metric", body = String, content_type = "text/plain"),
        (status = 401, description = "With --protect-metrics: a missing or wrong API key", body = ErrorResponse)
    )
)]
pub(crate) async fn render_metrics(State(state): State<AppState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
        .into_response()
}

/// This document.
#[utoipa::path(
    get,
    path = "/openapi.json",
    responses((status = 200, description = "The OpenAPI 3.1 description", body = Object))
)]
pub(crate) async fn openapi(State(state): State<AppState>) -> Response {
    let models: Vec<String> = state
        .registry
        .list()
        .iter()
        .map(|entry| entry.card.name.clone())
        .collect();
    (
        [(header::CONTENT_TYPE, "application/json")],
        crate::openapi::openapi_json(&models),
    )
        .into_response()
}

async fn route_not_found(method: Method, uri: Uri) -> ApiError {
    ApiError::route_not_found(method.as_str(), uri.path())
}

async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::method_not_allowed(method.as_str(), uri.path())
}

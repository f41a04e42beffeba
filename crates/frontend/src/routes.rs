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
use rotor_protocol::openai::{ModelList, ModelObject};
use serde_json::json;

use crate::auth::require_api_key;
use crate::completions::{chat_completions, completions};
use crate::config::FrontendConfig;
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::registry::{ModelEntry, ModelRegistry};
use crate::request_id::assign_request_id;
use crate::tokenize::{detokenize, tokenize};

/// The OpenAPI 3 description of every route, served at GET /openapi.json.
pub const OPENAPI_JSON: &str = include_str!("openapi.json");

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    pub registry: ModelRegistry,
    pub config: Arc<FrontendConfig>,
    pub metrics: Arc<Metrics>,
}

pub fn build_router(state: AppState) -> Router {
    let body_limit = state.config.body_limit_bytes;
    let metrics = Arc::clone(&state.metrics);
    let cors = state.config.allowed_origins.as_ref().map(|o| o.layer());
    let router = Router::new()
        .route("/v1/chat/completions", post(chat_completions))
        .route("/v1/completions", post(completions))
        .route("/v1/messages", post(crate::anthropic::messages))
        .route(
            "/v1/messages/count_tokens",
            post(crate::anthropic::count_tokens),
        )
        .route("/v1/models", get(list_models))
        .route("/v1/models/{*id}", get(get_model))
        .route("/tokenize", post(tokenize))
        .route("/detokenize", post(detokenize))
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

async fn list_models(State(state): State<AppState>) -> Json<ModelList> {
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

async fn get_model(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<ModelObject>, ApiError> {
    let entry = state
        .registry
        .get(&id)
        .ok_or_else(|| ApiError::model_not_found(&id))?;
    Ok(Json(model_object(&entry, &state.config.owned_by)))
}

/// 200 with the served models when there is at least one, else 503.
async fn health(State(state): State<AppState>) -> Response {
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

async fn live() -> Json<serde_json::Value> {
    Json(json!({"status": "live"}))
}

async fn render_metrics(State(state): State<AppState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
        .into_response()
}

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI_JSON).into_response()
}

async fn route_not_found(method: Method, uri: Uri) -> ApiError {
    ApiError::route_not_found(method.as_str(), uri.path())
}

async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::method_not_allowed(method.as_str(), uri.path())
}

//! GET /openapi.json: the OpenAPI 3.1 description of every route, generated (utoipa) from the
//! handlers' `#[utoipa::path]` attributes and the request and response types in
//! `rotor_protocol`, so it cannot drift from what the server parses. Streaming answers are
//! described as `text/event-stream` whose events carry the chunk type.

use std::sync::OnceLock;

use rotor_protocol::openai::{
    ChatCompletionChunk, ChatCompletionRequest, ChatCompletionResponse, CompletionRequest,
    CompletionResponse, DetokenizeRequest, DetokenizeResponse, ErrorResponse, ModelList,
    ModelObject, TokenizeRequest, TokenizeResponse,
};
use serde::Serialize;
use utoipa::{OpenApi, ToSchema};

/// GET /health and GET /live answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `healthy` / `unavailable` (/health), `live` (/live).
    pub status: String,
    /// /health: the models served.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub models: Option<Vec<String>>,
}

/// The error answers every model route may give, in OpenAI's error JSON.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)] // only described, never built
pub enum ApiErrors {
    /// The request is malformed or asks for something the server refuses; `param` names it.
    #[response(status = 400)]
    BadRequest(ErrorResponse),
    /// A missing or wrong API key (only when the server has keys).
    #[response(status = 401)]
    Unauthorized(ErrorResponse),
    /// No such model.
    #[response(status = 404)]
    NotFound(ErrorResponse),
    /// The body is over the size limit (`--max-body-bytes`).
    #[response(status = 413)]
    TooLarge(ErrorResponse),
    /// The body is not `application/json`.
    #[response(status = 415)]
    UnsupportedMediaType(ErrorResponse),
    /// The engine failed.
    #[response(status = 500)]
    Internal(ErrorResponse),
    /// Every worker of the model is busy (overload protection) or none is left.
    #[response(
        status = 503,
        headers(("Retry-After" = u32, description = "Seconds to wait before retrying"))
    )]
    Unavailable(ErrorResponse),
}

const DESCRIPTION: &str = "OpenAI-compatible API of Rotor (vLLM's /tokenize and /detokenize \
too). When the server was started with API keys (--api-key, --api-key-file, ROTOR_API_KEY), \
every route except /health, /live, /openapi.json and (unless --protect-metrics) /metrics needs \
one, as `Authorization: Bearer KEY` or `x-api-key: KEY`; without it the answer is 401. Every \
answer carries `x-request-id`: the client's (1 to 128 printable ASCII characters) or a generated \
one. Streaming answers (`stream: true`) are server-sent events: `data: <chunk JSON>` per event, \
then `data: [DONE]`.";

/// Declares the two ways to send an API key.
struct ApiKeys;

impl utoipa::Modify for ApiKeys {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder};
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearerAuth",
            utoipa::openapi::security::SecurityScheme::Http(
                HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build(),
            ),
        );
        components.add_security_scheme(
            "apiKeyHeader",
            utoipa::openapi::security::SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new(
                "x-api-key",
            ))),
        );
    }
}

/// Routes that never need a key.
const OPEN_ROUTES: &[&str] = &["/health", "/live", "/openapi.json"];

#[derive(OpenApi)]
#[openapi(
    info(title = "Rotor OpenAI-compatible API", license(name = "Apache-2.0")),
    modifiers(&ApiKeys),
    security(("bearerAuth" = []), ("apiKeyHeader" = [])),
    paths(
        crate::completions::chat_completions,
        crate::completions::completions,
        crate::embeddings::embeddings,
        crate::responses_api::create_response,
        crate::responses_api::get_response,
        crate::responses_api::delete_response,
        crate::anthropic::messages,
        crate::anthropic::count_tokens,
        crate::routes::list_models,
        crate::routes::get_model,
        crate::tokenize::tokenize,
        crate::tokenize::detokenize,
        crate::tokenize::tokenizer_info,
        crate::routes::health,
        crate::routes::live,
        crate::routes::render_metrics,
        crate::routes::openapi,
    ),
    components(schemas(
        ChatCompletionRequest,
        ChatCompletionResponse,
        ChatCompletionChunk,
        CompletionRequest,
        CompletionResponse,
        crate::embeddings::EmbeddingRequest,
        crate::embeddings::EmbeddingResponse,
        rotor_protocol::responses_api::CreateResponseRequest,
        rotor_protocol::responses_api::ResponseObject,
        rotor_protocol::responses_api::DeletedResponse,
        rotor_protocol::anthropic::MessagesRequest,
        rotor_protocol::anthropic::Message,
        rotor_protocol::anthropic::CountTokensResponse,
        ModelList,
        ModelObject,
        TokenizeRequest,
        TokenizeResponse,
        DetokenizeRequest,
        DetokenizeResponse,
        ErrorResponse,
        Health,
    ))
)]
struct ApiDoc;

/// The generated document, built once.
fn document() -> &'static serde_json::Value {
    static DOC: OnceLock<serde_json::Value> = OnceLock::new();
    DOC.get_or_init(|| {
        let mut doc = ApiDoc::openapi();
        doc.info.description = Some(DESCRIPTION.to_string());
        doc.info.version = env!("CARGO_PKG_VERSION").to_string();
        let mut doc =
            serde_json::to_value(&doc).expect("invariant: the OpenAPI document serializes");
        for open in OPEN_ROUTES {
            if let Some(get) = doc.pointer_mut(&format!("/paths/{}/get", open.replace('/', "~1"))) {
                get["security"] = serde_json::json!([]);
            }
        }
        doc
    })
}

/// The document for a server now serving `models`: every request's `model` is restricted to
/// them (an `enum`), so the description advertises no model the server would answer 404 for.
/// Without models it is left open.
pub fn openapi_json(models: &[String]) -> String {
    let mut doc = document().clone();
    if let (false, Some(schemas)) = (
        models.is_empty(),
        doc.pointer_mut("/components/schemas")
            .and_then(|s| s.as_object_mut()),
    ) {
        for schema in schemas.values_mut() {
            let Some(model) = schema.pointer_mut("/properties/model") else {
                continue;
            };
            let mut names: Vec<serde_json::Value> = models
                .iter()
                .map(|m| serde_json::Value::from(m.as_str()))
                .collect();
            // An optional `model` (tokenize) stays optional.
            if model["type"]
                .as_array()
                .is_some_and(|t| t.contains(&"null".into()))
            {
                names.push(serde_json::Value::Null);
            }
            model["enum"] = serde_json::Value::Array(names);
        }
    }
    serde_json::to_string_pretty(&doc).expect("invariant: JSON values serialize")
}

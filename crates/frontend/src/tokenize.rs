//! POST /tokenize and POST /detokenize, in vLLM's shapes: a client counts or inspects the tokens
//! a prompt (or a chat rendered with the model's template) becomes, and turns ids back into
//! text, with the tokenizer the model is served with.
//!
//! - `/tokenize` `{"model"?, "prompt"}` or `{"model"?, "messages", "add_generation_prompt"?}`,
//!   plus `add_special_tokens` (default true for a prompt, false for messages: templates write
//!   their own BOS) and `return_token_strs` → `{"count", "max_model_len", "tokens",
//!   "token_strs"}`. The ids of a prompt with the defaults are those /v1/completions computes.
//! - `/detokenize` `{"model"?, "tokens"}` → `{"prompt"}`, special tokens included.
//! - `GET /tokenizer_info[?model=…]` → `{"eos_token", "bos_token", "pad_token", "add_bos_token",
//!   "model_max_length", "chat_template", "vocab_size"}` (what lm-evaluation-harness's remote
//!   tokenizer reads before it tokenizes through `/tokenize`).
//!
//! `model` may be left out when exactly one model is served. Errors: unknown model 404, neither
//! or both of `prompt`/`messages` 400, an id outside the vocabulary 400 naming `tokens`.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::Json;
use rotor_protocol::openai::{
    DetokenizeRequest, DetokenizeResponse, TokenizeRequest, TokenizeResponse, TokenizerInfo,
};

use crate::error::ApiError;
use crate::json_body::JsonBody;
use crate::openapi::ApiErrors;
use crate::registry::ModelEntry;
use crate::routes::AppState;
use crate::tool_request::ToolRequest;
use crate::validate::{check_vocabulary, encode, render_chat, ChatRender};

/// The model a request names, or the only one served when it names none.
fn resolve_model(state: &AppState, model: Option<&str>) -> Result<Arc<ModelEntry>, ApiError> {
    if let Some(name) = model {
        return state.registry.require(name);
    }
    match state.registry.list().as_slice() {
        [only] => Ok(Arc::clone(only)),
        [] => Err(ApiError::invalid_param(
            "model",
            "No model is served here yet; nothing to tokenize with.",
        )),
        many => Err(ApiError::invalid_param(
            "model",
            format!(
                "Several models are served; name one in `model`: {}.",
                many.iter()
                    .map(|entry| entry.card.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )),
    }
}

/// Tokenizes a prompt, or chat messages rendered with the model's template (vLLM's shape).
#[utoipa::path(
    post,
    path = "/tokenize",
    request_body = TokenizeRequest,
    responses((status = 200, body = TokenizeResponse), ApiErrors)
)]
pub async fn tokenize(
    State(state): State<AppState>,
    JsonBody(req): JsonBody<TokenizeRequest>,
) -> Result<Json<TokenizeResponse>, ApiError> {
    let entry = resolve_model(&state, req.model.as_deref())?;
    let tokens = match (&req.prompt, &req.messages) {
        (Some(prompt), None) => encode(&entry, prompt, req.add_special_tokens.unwrap_or(true))?,
        (None, Some(messages)) => {
            if req.continue_final_message == Some(true) {
                return Err(ApiError::unsupported(
                    "continue_final_message",
                    "the last message is always closed",
                ));
            }
            if req.chat_template.is_some() {
                return Err(ApiError::unsupported(
                    "chat_template",
                    "the model's served template is used",
                ));
            }
            let tools = ToolRequest::from_parts(req.tools.as_deref(), None, None)?;
            let text = render_chat(
                &entry,
                messages,
                ChatRender {
                    add_generation_prompt: req.add_generation_prompt.unwrap_or(true),
                    tools: tools.as_ref(),
                    kwargs: None,
                },
            )?;
            encode(&entry, &text, req.add_special_tokens.unwrap_or(false))?
        }
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid_param(
                "prompt",
                "Give either `prompt` or `messages`, not both.",
            ))
        }
        (None, None) => {
            return Err(ApiError::invalid_param(
                "prompt",
                "Give `prompt` (text) or `messages` (a chat) to tokenize.",
            ))
        }
    };
    let token_strs = req.return_token_strs.unwrap_or(false).then(|| {
        tokens
            .iter()
            .map(|&id| {
                entry
                    .tokenizer
                    .token_text(id)
                    .unwrap_or_default()
                    .to_string()
            })
            .collect()
    });
    Ok(Json(TokenizeResponse {
        count: tokens.len(),
        max_model_len: entry.card.context_length,
        tokens,
        token_strs,
    }))
}

/// Turns token ids back into text (special tokens included).
#[utoipa::path(
    post,
    path = "/detokenize",
    request_body = DetokenizeRequest,
    responses((status = 200, body = DetokenizeResponse), ApiErrors)
)]
pub async fn detokenize(
    State(state): State<AppState>,
    JsonBody(req): JsonBody<DetokenizeRequest>,
) -> Result<Json<DetokenizeResponse>, ApiError> {
    let entry = resolve_model(&state, req.model.as_deref())?;
    check_vocabulary(&entry, &req.tokens, "tokens")?;
    let prompt = entry
        .tokenizer
        .decode(&req.tokens, false)
        .map_err(|err| ApiError::invalid_param("tokens", format!("Cannot decode: {err}")))?;
    Ok(Json(DetokenizeResponse { prompt }))
}

/// The query of GET /tokenizer_info.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TokenizerInfoQuery {
    /// The model; may be left out when one model is served.
    pub model: Option<String>,
}

/// The served tokenizer's special tokens, template and limits (vLLM's shape).
#[utoipa::path(
    get,
    path = "/tokenizer_info",
    params(TokenizerInfoQuery),
    responses((status = 200, body = TokenizerInfo), ApiErrors)
)]
pub async fn tokenizer_info(
    State(state): State<AppState>,
    Query(query): Query<TokenizerInfoQuery>,
) -> Result<Json<TokenizerInfo>, ApiError> {
    let entry = resolve_model(&state, query.model.as_deref())?;
    let tokenizer = &entry.tokenizer;
    Ok(Json(TokenizerInfo {
        eos_token: tokenizer.eos_token().map(str::to_string),
        bos_token: tokenizer.bos_token().map(str::to_string),
        pad_token: None,
        add_bos_token: tokenizer.add_bos_token(),
        model_max_length: entry.card.context_length,
        chat_template: entry.card.chat_template.clone(),
        vocab_size: tokenizer.vocab_size(),
    }))
}

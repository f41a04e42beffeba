//! POST /v1/embeddings: each input becomes one `GenerateRequest` with `Task::Embed`, sent through
//! the model's backend (so through the router to a worker, like generation), all inputs at once.
//!
//! Request fields:
//! - `model`: a served model.
//! - `input`: a string, a list of strings, a list of token ids or a list of token-id lists; no
//!   input may be empty, and each must leave room in the context window (else 400
//!   `context_length_exceeded`). Text is tokenized as for completions (BOS when the model adds
//!   one).
//! - `encoding_format`: `"float"` (default) or `"base64"` (the vector's little-endian f32 bytes).
//! - `dimensions`: accepted only when equal to the model's embedding length; truncating a vector
//!   is meaningful only for models trained for it (Matryoshka), which no served model claims.
//! - Extensions: `pooling` `"mean"` (default) or `"last"`; `normalize` (default true: unit L2
//!   norm, as OpenAI's and llama-server's embeddings).
//! - `user` (like any other unknown field) is accepted and ignored.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use futures::StreamExt;
use rotor_protocol::{
    ErrorKind, GenerateRequest, Pooling, SamplingParams, StopConditions, Task, WireError,
};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::ToSchema;

use crate::error::ApiError;
use crate::json_body::JsonBody;
use crate::openapi::ApiErrors;
use crate::overload::refuse_if_overloaded;
use crate::registry::ModelEntry;
use crate::request_id::RequestId;
use crate::routes::AppState;
use crate::validate::{check_vocabulary, encode};

/// The body of POST /v1/embeddings (`input` is read by hand for precise errors).
#[derive(Debug, Deserialize, ToSchema)]
pub struct EmbeddingRequest {
    pub model: String,
    /// A string, a list of strings, a list of token ids or a list of token-id lists; none empty.
    #[schema(schema_with = input_schema)]
    pub input: Value,
    /// `float` (default) or `base64` (little-endian f32 bytes).
    #[serde(default)]
    #[schema(value_type = Option<String>, pattern = "^(float|base64)$")]
    pub encoding_format: Option<String>,
    /// Only the model's embedding length is accepted.
    #[serde(default)]
    #[schema(minimum = 1)]
    pub dimensions: Option<i64>,
    /// Rotor extension: `mean` (default) or `last`.
    #[serde(default)]
    #[schema(value_type = Option<String>, pattern = "^(mean|last)$")]
    pub pooling: Option<String>,
    /// Rotor extension: scale to unit L2 norm (default true).
    #[serde(default)]
    pub normalize: Option<bool>,
}

fn input_schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    let ids = json!({"type": "array", "items": {"type": "integer", "minimum": 0}, "minItems": 1});
    utoipa::openapi::RefOr::T(
        serde_json::from_value(json!({"oneOf": [
            {"type": "string", "minLength": 1},
            {"type": "array", "items": {"type": "string", "minLength": 1}, "minItems": 1},
            ids,
            {"type": "array", "items": ids, "minItems": 1}
        ]}))
        .expect("invariant: a valid schema literal"),
    )
}

/// POST /v1/embeddings answer (`object: "list"`).
#[derive(Debug, Serialize, ToSchema)]
pub struct EmbeddingResponse {
    pub object: &'static str,
    pub data: Vec<Embedding>,
    pub model: String,
    pub usage: EmbeddingUsage,
}

/// One input's vector (`object: "embedding"`), at its input's `index`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Embedding {
    pub object: &'static str,
    pub index: usize,
    pub embedding: EmbeddingVector,
}

/// Floats, or their little-endian f32 bytes in base64.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum EmbeddingVector {
    Float(Vec<f32>),
    Base64(String),
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EmbeddingUsage {
    pub prompt_tokens: usize,
    pub total_tokens: usize,
}

/// How the vectors are written in the response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Float,
    Base64,
}

/// Embeds every input with the model (its pooled final hidden states).
#[utoipa::path(
    post,
    path = "/v1/embeddings",
    request_body = EmbeddingRequest,
    responses(
        (status = 200, description = "One embedding per input, in input order", body = EmbeddingResponse),
        ApiErrors
    )
)]
pub async fn embeddings(
    State(state): State<AppState>,
    Extension(request_id): Extension<RequestId>,
    JsonBody(req): JsonBody<EmbeddingRequest>,
) -> Result<Response, ApiError> {
    let entry = state.registry.require(&req.model)?;
    let encoding = match req.encoding_format.as_deref() {
        None | Some("float") => Encoding::Float,
        Some("base64") => Encoding::Base64,
        Some(other) => {
            return Err(ApiError::invalid_param(
                "encoding_format",
                format!("`encoding_format` must be \"float\" or \"base64\", got {other:?}."),
            ))
        }
    };
    let pooling = match req.pooling.as_deref() {
        None | Some("mean") => Pooling::Mean,
        Some("last") => Pooling::Last,
        Some(other) => {
            return Err(ApiError::invalid_param(
                "pooling",
                format!("`pooling` must be \"mean\" or \"last\", got {other:?}."),
            ))
        }
    };
    check_dimensions(&entry, req.dimensions)?;
    let inputs = tokenize_inputs(&entry, &req.input)?;
    refuse_if_overloaded(&state, &entry)?;
    let task = Task::Embed {
        pooling,
        normalize: req.normalize.unwrap_or(true),
    };
    let prompt_tokens: usize = inputs.iter().map(Vec::len).sum();
    let count = inputs.len();
    let jobs = inputs.into_iter().enumerate().map(|(i, token_ids)| {
        let req = GenerateRequest {
            id: format!("{}-embd-{i}", request_id.as_str()),
            token_ids,
            sampling: SamplingParams::greedy(),
            stop: StopConditions {
                max_tokens: 0,
                ..StopConditions::default()
            },
            task,
        };
        embed_one(&entry, req)
    });
    // If the client disconnects, hyper drops this future and with it every backend stream.
    let vectors = futures::future::try_join_all(jobs).await?;
    state
        .metrics
        .count_embeddings(&entry.card.name, count as u64);
    let data = vectors
        .into_iter()
        .enumerate()
        .map(|(index, v)| Embedding {
            object: "embedding",
            index,
            embedding: match encoding {
                Encoding::Float => EmbeddingVector::Float(v),
                Encoding::Base64 => EmbeddingVector::Base64(base64_f32_le(&v)),
            },
        })
        .collect();
    Ok(Json(EmbeddingResponse {
        object: "list",
        data,
        model: req.model,
        usage: EmbeddingUsage {
            prompt_tokens,
            total_tokens: prompt_tokens,
        },
    })
    .into_response())
}

/// `dimensions` must be the model's embedding length (when given).
fn check_dimensions(entry: &ModelEntry, dimensions: Option<i64>) -> Result<(), ApiError> {
    let Some(asked) = dimensions else {
        return Ok(());
    };
    match entry.card.embedding_length {
        Some(len) if i64::from(len) == asked => Ok(()),
        Some(len) => Err(ApiError::invalid_param(
            "dimensions",
            format!(
                "`dimensions` = {asked} is not supported: this model's embeddings have {len} \
                 dimensions, and truncating them is meaningful only for a model trained for it; \
                 leave `dimensions` out or set it to {len}."
            ),
        )),
        None => Err(ApiError::invalid_param(
            "dimensions",
            "`dimensions` is not supported: the model's worker does not publish its \
             embedding length; leave `dimensions` out.",
        )),
    }
}

/// The token ids of every input, checked against the vocabulary and the context window.
fn tokenize_inputs(entry: &ModelEntry, input: &Value) -> Result<Vec<Vec<u32>>, ApiError> {
    const SHAPE: &str = "`input` must be a string, a list of strings, a list of token ids or a \
                         list of token-id lists.";
    let inputs: Vec<Vec<u32>> = match input {
        Value::String(text) => vec![encode_text(entry, text, "input")?],
        Value::Array(items) if items.is_empty() => {
            return Err(ApiError::invalid_param(
                "input",
                "`input` is an empty list.",
            ))
        }
        Value::Array(items) if items.iter().all(Value::is_string) => items
            .iter()
            .enumerate()
            .map(|(i, t)| {
                encode_text(
                    entry,
                    t.as_str().unwrap_or_default(),
                    &format!("input[{i}]"),
                )
            })
            .collect::<Result<_, _>>()?,
        Value::Array(items) if items.iter().all(Value::is_number) => {
            vec![token_ids(items, "input")?]
        }
        Value::Array(items) if items.iter().all(Value::is_array) => items
            .iter()
            .enumerate()
            .map(|(i, ids)| {
                token_ids(
                    ids.as_array().map(Vec::as_slice).unwrap_or_default(),
                    &format!("input[{i}]"),
                )
            })
            .collect::<Result<_, _>>()?,
        _ => return Err(ApiError::invalid_param("input", SHAPE)),
    };
    let context = entry.card.context_length;
    for (i, ids) in inputs.iter().enumerate() {
        let param = if inputs.len() == 1 && !input.is_array() {
            "input".to_string()
        } else {
            format!("input[{i}]")
        };
        if ids.is_empty() {
            return Err(ApiError::invalid_param(
                &param,
                format!("`{param}` is empty: there is nothing to embed."),
            ));
        }
        if ids.len() >= context as usize {
            return Err(ApiError::context_length_exceeded(
                &param,
                ids.len(),
                context,
            ));
        }
        check_vocabulary(entry, ids, &param)?;
    }
    Ok(inputs)
}

fn encode_text(entry: &ModelEntry, text: &str, param: &str) -> Result<Vec<u32>, ApiError> {
    if text.is_empty() {
        return Err(ApiError::invalid_param(
            param,
            format!("`{param}` is an empty string: there is nothing to embed."),
        ));
    }
    encode(entry, text, true)
}

fn token_ids(items: &[Value], param: &str) -> Result<Vec<u32>, ApiError> {
    items
        .iter()
        .map(|v| {
            v.as_u64()
                .and_then(|id| u32::try_from(id).ok())
                .ok_or_else(|| {
                    ApiError::invalid_param(
                        param,
                        format!("`{param}` holds {v}, which is not a token id."),
                    )
                })
        })
        .collect()
}

/// Runs one embedding request to its single output.
async fn embed_one(entry: &ModelEntry, req: GenerateRequest) -> Result<Vec<f32>, ApiError> {
    let mut outputs = entry.backend.generate(req)?;
    while let Some(item) = outputs.next().await {
        let output = item?;
        if let Some(embedding) = output.embedding {
            return Ok(embedding);
        }
        if output.finish_reason.is_some() {
            break;
        }
    }
    Err(WireError::new(
        ErrorKind::Internal,
        "the backend finished an embedding request without an embedding",
    )
    .into())
}

/// Standard base64 (with padding) of the little-endian bytes of `v`, as OpenAI encodes
/// embeddings.
fn base64_f32_le(v: &[f32]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for group in bytes.chunks(3) {
        let b = [
            group[0],
            group.get(1).copied().unwrap_or(0),
            group.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (k, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            if k <= group.len() {
                out.push(ALPHABET[(n >> shift) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::base64_f32_le;

    #[test]
    fn base64_of_little_endian_floats() {
        // 1.0 = 00 00 80 3f; -2.0 = 00 00 00 c0 (checked with Python's base64 and struct).
        assert_eq!(base64_f32_le(&[1.0]), "AACAPw==");
        assert_eq!(base64_f32_le(&[1.0, -2.0]), "AACAPwAAAMA=");
        assert_eq!(base64_f32_le(&[]), "");
        // 12 bytes: no padding.
        assert_eq!(base64_f32_le(&[0.0, 0.0, 0.0]), "AAAAAAAAAAAAAAAA");
    }
}

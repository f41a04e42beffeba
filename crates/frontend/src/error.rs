//! Errors: [`FrontendError`] for the library API, [`ApiError`] for HTTP answers in OpenAI's
//! error JSON, and the one table mapping a backend's [`ErrorKind`] to an HTTP status.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use rotor_protocol::openai::{ErrorDetail, ErrorResponse};
use rotor_protocol::{ErrorKind, WireError};

/// Errors of the frontend's own API (adding models, serving).
#[derive(Debug, thiserror::Error)]
pub enum FrontendError {
    #[error("model {model:?}: cannot build its tokenizer: {source}")]
    Tokenizer {
        model: String,
        source: rotor_text::Error,
    },
    #[error("model {model:?}: cannot build its chat template: {source}")]
    ChatTemplate {
        model: String,
        source: rotor_text::Error,
    },
    #[error("model {model:?} is already served; remove it first")]
    ModelAlreadyServed { model: String },
    #[error("model {model:?} has context_length 0")]
    ZeroContextLength { model: String },
    /// A routing setting out of range (`--kv-overlap-weight`, `--router-temperature`, …).
    #[error("invalid routing setting {field} = {value}: {reason}")]
    InvalidRoutingConfig {
        field: &'static str,
        value: String,
        reason: &'static str,
    },
    /// The KV router of `model` refused its configuration.
    #[error("model {model:?}: cannot build its KV router: {source}")]
    KvRouter {
        model: String,
        source: rotor_kv_router::Error,
    },
    /// A runtime operation (watching discovery, subscribing to events) failed.
    #[error("{op}: {source}")]
    Runtime {
        op: &'static str,
        source: rotor_runtime::Error,
    },
}

/// OpenAI `error.type` for client errors.
pub const INVALID_REQUEST: &str = "invalid_request_error";
/// OpenAI `error.type` for failures on our side.
pub const SERVER_ERROR: &str = "server_error";

/// An HTTP error answer: status plus the fields of OpenAI's error body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    pub kind: &'static str,
    pub param: Option<String>,
    pub code: Option<String>,
}

/// The one table from a backend error kind to the HTTP status and OpenAI error type.
pub fn status_for_kind(kind: ErrorKind) -> (StatusCode, &'static str) {
    match kind {
        ErrorKind::InvalidRequest => (StatusCode::BAD_REQUEST, INVALID_REQUEST),
        ErrorKind::ModelNotFound => (StatusCode::NOT_FOUND, INVALID_REQUEST),
        ErrorKind::Overloaded => (StatusCode::SERVICE_UNAVAILABLE, SERVER_ERROR),
        ErrorKind::Disconnected | ErrorKind::EngineStopped => {
            (StatusCode::SERVICE_UNAVAILABLE, SERVER_ERROR)
        }
        ErrorKind::Internal => (StatusCode::INTERNAL_SERVER_ERROR, SERVER_ERROR),
    }
}

fn code_for_kind(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::InvalidRequest => "invalid_request",
        ErrorKind::ModelNotFound => "model_not_found",
        ErrorKind::Overloaded => "overloaded",
        ErrorKind::Disconnected => "worker_disconnected",
        ErrorKind::EngineStopped => "engine_stopped",
        ErrorKind::Internal => "internal_error",
    }
}

impl ApiError {
    /// A 400 `invalid_request_error` about `param`.
    pub fn invalid(param: impl Into<Option<String>>, message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
            kind: INVALID_REQUEST,
            param: param.into(),
            code: None,
        }
    }

    /// A 400 about a named request field.
    pub fn invalid_param(param: &str, message: impl Into<String>) -> Self {
        Self::invalid(Some(param.to_string()), message)
    }

    /// A 400 for a parameter Rotor does not implement.
    pub fn unsupported(param: &str, what: &str) -> Self {
        Self::invalid_param(param, format!("`{param}` is not supported: {what}"))
            .with_code("unsupported_parameter")
    }

    pub fn with_code(mut self, code: &str) -> Self {
        self.code = Some(code.to_string());
        self
    }

    pub fn model_not_found(model: &str) -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            message: format!("The model `{model}` does not exist or is not served here."),
            kind: INVALID_REQUEST,
            param: Some("model".to_string()),
            code: Some("model_not_found".to_string()),
        }
    }

    pub fn context_length_exceeded(param: &str, prompt_tokens: usize, limit: u32) -> Self {
        Self::invalid_param(
            param,
            format!(
                "This model's maximum context length is {limit} tokens, but the prompt has \
                 {prompt_tokens} tokens, leaving no room for a completion."
            ),
        )
        .with_code("context_length_exceeded")
    }

    pub fn route_not_found(method: &str, path: &str) -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            message: format!("No route for {method} {path}."),
            kind: INVALID_REQUEST,
            param: None,
            code: Some("not_found".to_string()),
        }
    }

    pub fn method_not_allowed(method: &str, path: &str) -> Self {
        Self {
            status: StatusCode::METHOD_NOT_ALLOWED,
            message: format!("Method {method} is not allowed on {path}."),
            kind: INVALID_REQUEST,
            param: None,
            code: Some("method_not_allowed".to_string()),
        }
    }

    /// Any other status with a message (413, 415, …).
    pub fn status(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        let kind = if status.is_server_error() {
            SERVER_ERROR
        } else {
            INVALID_REQUEST
        };
        Self {
            status,
            message: message.into(),
            kind,
            param: None,
            code: Some(code.to_string()),
        }
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::status(StatusCode::INTERNAL_SERVER_ERROR, "internal_error", message)
    }

    /// The OpenAI error body.
    pub fn body(&self) -> ErrorResponse {
        ErrorResponse {
            error: ErrorDetail {
                message: self.message.clone(),
                kind: self.kind.to_string(),
                param: self.param.clone(),
                code: self.code.clone(),
            },
        }
    }
}

impl From<WireError> for ApiError {
    fn from(err: WireError) -> Self {
        let (status, kind) = status_for_kind(err.kind);
        Self {
            status,
            message: err.message,
            kind,
            param: None,
            code: Some(code_for_kind(err.kind).to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body())).into_response()
    }
}

//! Errors: [`FrontendError`] for the library API, [`ApiError`] for HTTP answers in OpenAI's
//! error JSON, and the one table mapping a backend's [`ErrorKind`] to an HTTP status.

use std::time::Duration;

use axum::http::{header, HeaderName, HeaderValue, StatusCode};
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
    /// An API key the frontend cannot accept (empty, or not visible ASCII).
    #[error("invalid API key: {reason}")]
    InvalidApiKey { reason: &'static str },
    /// An entry of the allowed CORS origins that is not an origin.
    #[error("invalid allowed origin {origin:?}: {reason}")]
    InvalidOrigin {
        origin: String,
        reason: &'static str,
    },
    /// A busy threshold out of range.
    #[error("invalid busy threshold {field} = {value}: {reason}")]
    InvalidBusyThreshold {
        field: &'static str,
        value: String,
        reason: &'static str,
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

/// `Retry-After` of an overloaded answer (503): long enough for a busy worker to finish some
/// steps, short enough that a client's retry loop (the openai clients honour the header) does
/// not idle.
pub const OVERLOAD_RETRY_AFTER: Duration = Duration::from_secs(1);

/// An HTTP error answer: status plus the fields of OpenAI's error body, and any headers the
/// status calls for (`WWW-Authenticate` on 401, `Retry-After` on 503).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    pub kind: &'static str,
    pub param: Option<String>,
    pub code: Option<String>,
    pub headers: Vec<(HeaderName, HeaderValue)>,
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
            headers: Vec::new(),
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

    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }

    /// 401 for a request without an API key, as OpenAI words it (`code` null).
    pub fn missing_api_key() -> Self {
        Self {
            status: StatusCode::UNAUTHORIZED,
            message: "You didn't provide an API key. Provide it in an Authorization header \
                      using Bearer auth (Authorization: Bearer YOUR_KEY), or in an x-api-key \
                      header."
                .to_string(),
            kind: INVALID_REQUEST,
            param: None,
            code: None,
            headers: Vec::new(),
        }
        .with_header(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"))
    }

    /// 401 for a key this server does not accept (`code` "invalid_api_key", as OpenAI's). The
    /// key is not repeated back.
    pub fn invalid_api_key() -> Self {
        Self {
            status: StatusCode::UNAUTHORIZED,
            message: "Incorrect API key provided. Use a key this server was started with \
                      (--api-key or --api-key-file)."
                .to_string(),
            kind: INVALID_REQUEST,
            param: None,
            code: Some("invalid_api_key".to_string()),
            headers: Vec::new(),
        }
        .with_header(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer error=\"invalid_token\""),
        )
    }

    /// 503 when every worker of `model` is busy (with `Retry-After`, as every overload).
    pub fn overloaded(model: &str) -> Self {
        Self::from(WireError::new(
            ErrorKind::Overloaded,
            format!(
                "Every worker serving model `{model}` is busy; retry in {} s.",
                OVERLOAD_RETRY_AFTER.as_secs()
            ),
        ))
    }

    pub fn model_not_found(model: &str) -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            message: format!("The model `{model}` does not exist or is not served here."),
            kind: INVALID_REQUEST,
            param: Some("model".to_string()),
            code: Some("model_not_found".to_string()),
            headers: Vec::new(),
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
            headers: Vec::new(),
        }
    }

    pub fn method_not_allowed(method: &str, path: &str) -> Self {
        Self {
            status: StatusCode::METHOD_NOT_ALLOWED,
            message: format!("Method {method} is not allowed on {path}."),
            kind: INVALID_REQUEST,
            param: None,
            code: Some("method_not_allowed".to_string()),
            headers: Vec::new(),
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
            headers: Vec::new(),
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
        let retry = err.kind == ErrorKind::Overloaded;
        let error = Self {
            status,
            message: err.message,
            kind,
            param: None,
            code: Some(code_for_kind(err.kind).to_string()),
            headers: Vec::new(),
        };
        if retry {
            error.with_header(
                header::RETRY_AFTER,
                HeaderValue::from(OVERLOAD_RETRY_AFTER.as_secs()),
            )
        } else {
            error
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(self.body())).into_response();
        for (name, value) in self.headers {
            response.headers_mut().append(name, value);
        }
        response
    }
}

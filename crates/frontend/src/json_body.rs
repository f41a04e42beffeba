//! `JsonBody<T>`: a JSON extractor whose every failure is an OpenAI error (axum's own `Json`
//! answers 415/422 with plain text). Type errors name the field by its path, e.g.
//! `messages[0].content`.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{header, StatusCode};
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// A request body parsed as JSON into `T`.
pub struct JsonBody<T>(pub T);

impl<S, T> FromRequest<S> for JsonBody<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        check_content_type(req.headers().get(header::CONTENT_TYPE))?;
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::status(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "request_too_large",
                    "The request body is larger than this server accepts.",
                )
            } else {
                ApiError::invalid(
                    None,
                    format!("Could not read the request body: {rejection}"),
                )
            }
        })?;
        parse_json(&bytes).map(JsonBody)
    }
}

fn check_content_type(value: Option<&header::HeaderValue>) -> Result<(), ApiError> {
    let unsupported = |got: &str| {
        ApiError::status(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!("Expected Content-Type application/json, got {got}."),
        )
    };
    let Some(value) = value else {
        return Err(unsupported("none"));
    };
    let text = value
        .to_str()
        .map_err(|_| unsupported("a non-ASCII value"))?;
    let mime = text
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let is_json =
        mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json"));
    if is_json {
        Ok(())
    } else {
        Err(unsupported(&format!("{text:?}")))
    }
}

/// Parses `bytes` as `T`, turning serde's error into a 400 naming the offending field.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            return ApiError::invalid(None, format!("The request body is not valid JSON: {inner}"))
                .with_code("invalid_json");
        }
        let param = field_of(&path, &inner.to_string());
        ApiError::invalid(param.clone(), describe(param.as_deref(), &inner))
    })?;
    de.end().map_err(|inner| {
        ApiError::invalid(None, format!("The request body is not valid JSON: {inner}"))
            .with_code("invalid_json")
    })?;
    Ok(value)
}

/// The request field an error is about: serde's path, or for a missing field the path joined
/// with the field's name (serde reports those at the enclosing object).
fn field_of(path: &str, message: &str) -> Option<String> {
    let parent = if path == "." { "" } else { path };
    if let Some(rest) = message.strip_prefix("missing field `") {
        let name = rest.split('`').next().unwrap_or(rest);
        return Some(if parent.is_empty() {
            name.to_string()
        } else {
            format!("{parent}.{name}")
        });
    }
    (!parent.is_empty()).then(|| parent.to_string())
}

fn describe(param: Option<&str>, inner: &serde_json::Error) -> String {
    // serde_json appends " at line L column C"; the field name is more useful to a client.
    let text = inner.to_string();
    let text = match text.rfind(" at line ") {
        Some(cut) => text[..cut].to_string(),
        None => text,
    };
    match param {
        Some(param) => format!("Invalid value for `{param}`: {text}"),
        None => format!("Invalid request body: {text}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rotor_protocol::openai::ChatCompletionRequest;

    fn param_of(body: &str) -> Option<String> {
        parse_json::<ChatCompletionRequest>(body.as_bytes())
            .expect_err("must fail")
            .param
    }

    #[test]
    fn wrong_type_names_nested_field() {
        let body = r#"{"model":"m","messages":[{"role":"user","content":5}]}"#;
        assert_eq!(param_of(body).as_deref(), Some("messages[0].content"));
    }

    #[test]
    fn missing_field_is_named() {
        assert_eq!(param_of(r#"{"model":"m"}"#).as_deref(), Some("messages"));
        let body = r#"{"model":"m","messages":[{"content":"hi"}]}"#;
        assert_eq!(param_of(body).as_deref(), Some("messages[0].role"));
    }

    #[test]
    fn syntax_error_has_no_param() {
        let err = parse_json::<ChatCompletionRequest>(b"{\"model\": ").expect_err("must fail");
        assert_eq!(
            (err.param, err.code.as_deref()),
            (None, Some("invalid_json"))
        );
    }

    #[test]
    fn trailing_garbage_is_rejected() {
        let body = br#"{"model":"m","messages":[]} x"#;
        assert!(parse_json::<ChatCompletionRequest>(body).is_err());
    }
}

//! API keys: [`ApiKeys`] (the keys a frontend accepts) and the middleware that asks every
//! request outside the open routes for one.
//!
//! A key comes as `Authorization: Bearer KEY` (OpenAI's clients) or `x-api-key: KEY`
//! (Anthropic's). Without keys configured nothing is checked. Refusals on Anthropic's routes
//! have Anthropic's error shape. Open routes: /health, /live,
//! /openapi.json and, unless `protect_metrics`, /metrics; every other route, unknown paths
//! included, needs a key, so a route added later is closed by default.
//!
//! Keys are kept only as SHA-256 digests and a presented key is compared digest against digest
//! over all 32 bytes of every configured key, without an early exit: the time taken does not
//! depend on how much of a key was right (and a timing leak would reveal digest bytes, not key
//! bytes).

use std::fmt;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use crate::error::{ApiError, FrontendError};
use crate::routes::AppState;

/// The header Anthropic's clients carry their key in.
pub const X_API_KEY: &str = "x-api-key";

/// Routes served without a key (besides /metrics unless it is protected).
const OPEN_PATHS: &[&str] = &["/health", "/live", "/openapi.json"];

/// The API keys a frontend accepts; empty means no authentication.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ApiKeys {
    digests: Vec<[u8; 32]>,
}

impl fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print keys (or their digests) in logs.
        write!(f, "ApiKeys({} keys)", self.digests.len())
    }
}

fn digest(key: &[u8]) -> [u8; 32] {
    Sha256::digest(key).into()
}

impl ApiKeys {
    /// Adds a key. It must be 1 to 4096 visible ASCII characters (no spaces): keys travel in
    /// HTTP headers, where anything else is mangled or refused by clients.
    pub fn add(&mut self, key: &str) -> Result<(), FrontendError> {
        if key.is_empty() {
            return Err(FrontendError::InvalidApiKey {
                reason: "it is empty",
            });
        }
        if key.len() > 4096 {
            return Err(FrontendError::InvalidApiKey {
                reason: "it is longer than 4096 characters",
            });
        }
        if !key.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(FrontendError::InvalidApiKey {
                reason: "it has a character that is not visible ASCII (a space, a control \
                         character or non-ASCII)",
            });
        }
        self.digests.push(digest(key.as_bytes()));
        Ok(())
    }

    /// The keys in `keys`, each checked as by [`ApiKeys::add`].
    pub fn new<'a>(keys: impl IntoIterator<Item = &'a str>) -> Result<Self, FrontendError> {
        let mut out = Self::default();
        for key in keys {
            out.add(key)?;
        }
        Ok(out)
    }

    pub fn is_empty(&self) -> bool {
        self.digests.is_empty()
    }

    pub fn len(&self) -> usize {
        self.digests.len()
    }

    /// Whether `presented` is one of the keys, in time independent of the keys' contents.
    pub fn accepts(&self, presented: &str) -> bool {
        let got = digest(presented.as_bytes());
        let mut matched = 0u8;
        for want in &self.digests {
            let diff = want.iter().zip(&got).fold(0u8, |acc, (a, b)| acc | (a ^ b));
            matched |= u8::from(diff == 0);
        }
        std::hint::black_box(matched) == 1
    }
}

/// What a request presented as credentials.
#[derive(Debug, PartialEq, Eq)]
enum Credentials<'a> {
    /// No `Authorization` and no `x-api-key` header.
    Missing,
    /// The keys found (Bearer token, x-api-key), and whether a header was unusable (another
    /// auth scheme, non-ASCII).
    Presented { keys: Vec<&'a str>, unusable: bool },
}

fn credentials(headers: &HeaderMap) -> Credentials<'_> {
    let mut keys = Vec::new();
    let mut unusable = false;
    let mut seen = false;
    for value in headers.get_all(header::AUTHORIZATION) {
        seen = true;
        let bearer = value.to_str().ok().and_then(|text| {
            let (scheme, token) = text.trim().split_once(' ')?;
            scheme
                .eq_ignore_ascii_case("bearer")
                .then(|| token.trim())
                .filter(|token| !token.is_empty())
        });
        match bearer {
            Some(token) => keys.push(token),
            None => unusable = true,
        }
    }
    for value in headers.get_all(X_API_KEY) {
        seen = true;
        match value.to_str().map(str::trim) {
            Ok(key) if !key.is_empty() => keys.push(key),
            _ => unusable = true,
        }
    }
    if seen {
        Credentials::Presented { keys, unusable }
    } else {
        Credentials::Missing
    }
}

fn is_open(path: &str, protect_metrics: bool) -> bool {
    OPEN_PATHS.contains(&path) || (path == "/metrics" && !protect_metrics)
}

/// Middleware: lets a request through when no keys are configured, its route is open, or it
/// carries an accepted key; answers 401 with OpenAI's error JSON and `WWW-Authenticate`
/// otherwise (and counts it in `rotor_frontend_auth_rejected_total`).
pub(crate) async fn require_api_key(
    State(state): State<AppState>,
    req: Request,
    next: Next,
) -> Response {
    let keys = &state.config.api_keys;
    if keys.is_empty() || is_open(req.uri().path(), state.config.protect_metrics) {
        return next.run(req).await;
    }
    let error = match credentials(req.headers()) {
        Credentials::Missing => ApiError::missing_api_key(),
        Credentials::Presented {
            keys: presented,
            unusable,
        } => {
            // Every presented key is checked (no short-circuit), then the verdict is taken.
            let accepted = presented
                .iter()
                .fold(false, |any, key| keys.accepts(key) | any);
            if accepted {
                return next.run(req).await;
            }
            if unusable {
                tracing::debug!(
                    "an Authorization header without a Bearer token, or an unreadable x-api-key"
                );
            }
            ApiError::invalid_api_key()
        }
    };
    state.metrics.count_auth_rejected();
    tracing::debug!(code = ?error.code, "request refused: no accepted API key");
    if crate::anthropic::is_anthropic_path(req.uri().path()) {
        return crate::anthropic::AnthropicError(error).into_response();
    }
    error.into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn accepts_exactly_the_configured_keys() {
        let keys = ApiKeys::new(["sk-one", "sk-two"]).unwrap();
        assert_eq!(keys.len(), 2);
        assert!(keys.accepts("sk-one"));
        assert!(keys.accepts("sk-two"));
        for wrong in ["", "sk-on", "sk-one ", "sk-onee", "SK-ONE", "sk-three"] {
            assert!(!keys.accepts(wrong), "{wrong:?}");
        }
        assert!(!ApiKeys::default().accepts(""));
    }

    #[test]
    fn rejects_keys_that_cannot_travel_in_a_header() {
        for bad in ["", "with space", "tab\there", "ключ", "line\nbreak"] {
            assert!(
                matches!(
                    ApiKeys::new([bad]),
                    Err(FrontendError::InvalidApiKey { .. })
                ),
                "{bad:?}"
            );
        }
        assert!(ApiKeys::new([&*"k".repeat(4097)]).is_err());
    }

    #[test]
    fn debug_hides_the_keys() {
        let keys = ApiKeys::new(["sk-secret"]).unwrap();
        assert_eq!(format!("{keys:?}"), "ApiKeys(1 keys)");
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn credentials_from_bearer_and_x_api_key() {
        assert_eq!(credentials(&headers(&[])), Credentials::Missing);
        assert_eq!(
            credentials(&headers(&[("authorization", "Bearer  sk-1 ")])),
            Credentials::Presented {
                keys: vec!["sk-1"],
                unusable: false
            }
        );
        assert_eq!(
            credentials(&headers(&[
                ("authorization", "bearer sk-1"),
                ("x-api-key", "sk-2")
            ])),
            Credentials::Presented {
                keys: vec!["sk-1", "sk-2"],
                unusable: false
            }
        );
        assert_eq!(
            credentials(&headers(&[("authorization", "Basic dXNlcjpwdw==")])),
            Credentials::Presented {
                keys: vec![],
                unusable: true
            }
        );
        assert_eq!(
            credentials(&headers(&[("authorization", "Bearer")])),
            Credentials::Presented {
                keys: vec![],
                unusable: true
            }
        );
    }

    #[test]
    fn open_routes() {
        assert!(is_open("/health", true));
        assert!(is_open("/live", true));
        assert!(is_open("/openapi.json", true));
        assert!(is_open("/metrics", false));
        assert!(!is_open("/metrics", true));
        assert!(!is_open("/v1/models", false));
        assert!(!is_open("/tokenize", false));
        assert!(!is_open("/healthz", false));
    }
}

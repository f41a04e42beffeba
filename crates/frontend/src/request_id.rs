//! Request ids (`x-request-id`): the client's id when it is usable, else a generated one; every
//! response carries it back, and the request's log lines carry it in a span.
//!
//! A client id is usable when it is 1 to [`MAX_REQUEST_ID_LEN`] printable ASCII characters
//! (space to `~`); anything else is replaced by a generated id (32 hex digits), never refused.
//! The generation a request starts gets the id `{prefix}-{request id}` (`chatcmpl-…`,
//! `cmpl-…`), which is the response body's `id` and the id the router, worker and engine log. A client may
//! reuse its ids while an engine needs them unique, so a client-chosen id gets 8 random hex
//! digits appended there; a generated id is unique already.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

/// The header name, lower-case as HTTP/2 wants it.
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Longest client id kept.
pub const MAX_REQUEST_ID_LEN: usize = 128;

/// The id of one HTTP request. Cheap to clone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId {
    id: Arc<str>,
    from_client: bool,
}

impl RequestId {
    /// The client's id from an `x-request-id` header value when it is usable, else a new one.
    pub fn from_header(value: Option<&HeaderValue>) -> Self {
        match value.and_then(|v| v.to_str().ok()).filter(|v| is_usable(v)) {
            Some(id) => Self {
                id: Arc::from(id),
                from_client: true,
            },
            None => Self::generate(),
        }
    }

    /// A fresh id: 32 hex digits.
    pub fn generate() -> Self {
        Self {
            id: Arc::from(uuid::Uuid::new_v4().simple().to_string()),
            from_client: false,
        }
    }

    pub fn as_str(&self) -> &str {
        &self.id
    }

    /// Whether the client chose this id.
    pub fn from_client(&self) -> bool {
        self.from_client
    }

    /// The id of the generation this request starts: `{prefix}-{id}`, made unique with a random
    /// suffix when the client chose the id.
    pub fn generation_id(&self, prefix: &str) -> String {
        if self.from_client {
            let suffix = uuid::Uuid::new_v4().simple().to_string();
            format!("{prefix}-{}-{}", self.id, &suffix[..8])
        } else {
            format!("{prefix}-{}", self.id)
        }
    }

    fn header_value(&self) -> HeaderValue {
        HeaderValue::from_str(&self.id).expect("invariant: request ids are printable ASCII")
    }
}

fn is_usable(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_REQUEST_ID_LEN
        && id.bytes().all(|b| (b' '..=b'~').contains(&b))
}

/// Middleware: assigns the request its [`RequestId`] (an extension handlers read), runs it in a
/// `request` span carrying the id, logs the answer at debug level and sets `x-request-id` on
/// the response.
pub(crate) async fn assign_request_id(mut req: Request, next: Next) -> Response {
    let id = RequestId::from_header(req.headers().get(&X_REQUEST_ID));
    let span = tracing::info_span!(
        "request",
        request_id = %id.as_str(),
        method = %req.method(),
        path = %req.uri().path(),
    );
    req.extensions_mut().insert(id.clone());
    let started = Instant::now();
    let mut response = next.run(req).instrument(span.clone()).await;
    span.in_scope(|| {
        tracing::debug!(
            status = response.status().as_u16(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "answered"
        )
    });
    response
        .headers_mut()
        .insert(X_REQUEST_ID, id.header_value());
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from(value: &str) -> RequestId {
        RequestId::from_header(Some(&HeaderValue::from_str(value).unwrap()))
    }

    #[test]
    fn a_usable_client_id_is_kept() {
        let id = from("req-42_abc:DEF/ x~");
        assert_eq!(id.as_str(), "req-42_abc:DEF/ x~");
        assert!(id.from_client());
        let longest = "a".repeat(MAX_REQUEST_ID_LEN);
        assert_eq!(from(&longest).as_str(), longest);
    }

    #[test]
    fn unusable_ids_are_replaced() {
        let too_long = "a".repeat(MAX_REQUEST_ID_LEN + 1);
        for bad in [too_long.as_str(), "tab\there"] {
            let id = from(bad);
            assert!(!id.from_client(), "{bad:?}");
            assert_eq!(id.as_str().len(), 32);
            assert!(id.as_str().bytes().all(|b| b.is_ascii_hexdigit()));
        }
        let non_ascii = HeaderValue::from_bytes("naïve".as_bytes()).unwrap();
        assert!(!RequestId::from_header(Some(&non_ascii)).from_client());
        assert!(!RequestId::from_header(None).from_client());
        assert!(!from("").from_client());
    }

    #[test]
    fn generation_ids_are_unique_for_client_ids() {
        let client = from("mine");
        let (a, b) = (client.generation_id("cmpl"), client.generation_id("cmpl"));
        assert!(
            a.starts_with("cmpl-mine-") && a.len() == "cmpl-mine-".len() + 8,
            "{a}"
        );
        assert_ne!(a, b);
        let own = RequestId::generate();
        assert_eq!(
            own.generation_id("chatcmpl"),
            format!("chatcmpl-{}", own.as_str())
        );
    }
}

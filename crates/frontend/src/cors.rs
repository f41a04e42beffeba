//! CORS, for browser clients on other origins: [`AllowedOrigins`] (`--allowed-origins`) and the
//! layer answering preflights. Without allowed origins no CORS header is ever sent, so browsers
//! keep cross-origin pages out.
//!
//! With them, a preflight (`OPTIONS` with `Origin` and `Access-Control-Request-Method`) is
//! answered before authentication (browsers send no credentials on preflights) with
//! `Access-Control-Allow-Methods: GET,POST`, the request headers the browser asked for in
//! `Access-Control-Allow-Headers` (`authorization`, `content-type`, `x-api-key`,
//! `x-request-id`, and whatever else a client library adds: the official openai and anthropic
//! browser clients send `x-stainless-*` headers that change between versions, so a fixed list
//! would break them) and a max age of an hour. Every answer to an allowed origin, errors
//! included, gets `Access-Control-Allow-Origin` and exposes `x-request-id` and `retry-after`
//! to scripts. Credentials (cookies) are never allowed: API keys travel in headers.

use std::time::Duration;

use axum::http::{header, HeaderValue, Method};
use tower_http::cors::{AllowHeaders, AllowOrigin, CorsLayer};

use crate::error::FrontendError;
use crate::request_id::X_REQUEST_ID;

/// How long a browser may cache a preflight answer.
const PREFLIGHT_MAX_AGE: Duration = Duration::from_secs(3600);

/// Origins whose pages may call the API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllowedOrigins {
    /// `*`: every origin.
    Any,
    /// These origins (`scheme://host[:port]`, lower-case, no trailing slash), exactly.
    List(Vec<String>),
}

impl AllowedOrigins {
    /// Parses `--allowed-origins` entries: `*` alone, or origins such as
    /// `https://app.example.com` and `http://localhost:3000` (a trailing `/` is dropped; case is
    /// folded, as browsers send origins in lower case).
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<Self, FrontendError> {
        let entries: Vec<&str> = entries.iter().map(|e| e.as_ref().trim()).collect();
        if entries.is_empty() {
            return Err(invalid("", "give `*` or at least one origin"));
        }
        if entries.contains(&"*") {
            if entries.len() > 1 {
                return Err(invalid(
                    "*",
                    "`*` allows every origin; list no others with it",
                ));
            }
            return Ok(Self::Any);
        }
        let mut origins = Vec::with_capacity(entries.len());
        for entry in entries {
            let origin = normalize(entry)?;
            if !origins.contains(&origin) {
                origins.push(origin);
            }
        }
        Ok(Self::List(origins))
    }

    pub(crate) fn layer(&self) -> CorsLayer {
        let origin = match self {
            Self::Any => AllowOrigin::any(),
            Self::List(origins) => AllowOrigin::list(origins.iter().map(|origin| {
                HeaderValue::from_str(origin).expect("invariant: origins were validated")
            })),
        };
        CorsLayer::new()
            .allow_origin(origin)
            .allow_methods([Method::GET, Method::POST])
            .allow_headers(AllowHeaders::mirror_request())
            .expose_headers([X_REQUEST_ID, header::RETRY_AFTER])
            .max_age(PREFLIGHT_MAX_AGE)
    }
}

fn invalid(origin: &str, reason: &'static str) -> FrontendError {
    FrontendError::InvalidOrigin {
        origin: origin.to_string(),
        reason,
    }
}

/// `scheme://host[:port]` in lower case, or why `entry` is not one.
fn normalize(entry: &str) -> Result<String, FrontendError> {
    if entry.is_empty() {
        return Err(invalid(entry, "empty entry (a stray comma?)"));
    }
    let origin = entry
        .strip_suffix('/')
        .unwrap_or(entry)
        .to_ascii_lowercase();
    let Some((scheme, authority)) = origin.split_once("://") else {
        return Err(invalid(
            entry,
            "an origin is scheme://host[:port], e.g. https://app.example.com",
        ));
    };
    let scheme_ok = scheme
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c));
    if !scheme_ok {
        return Err(invalid(entry, "the scheme is not a URL scheme"));
    }
    if authority.is_empty() {
        return Err(invalid(entry, "the host is missing"));
    }
    if authority.contains(['/', '?', '#', '@', '*']) {
        return Err(invalid(
            entry,
            "an origin has no path, query, user or wildcard: scheme://host[:port]",
        ));
    }
    if let Some((host, port)) = authority.rsplit_once(':') {
        // `[::1]` alone has colons but no port.
        if !authority.ends_with(']')
            && (host.is_empty() || port.is_empty() || port.parse::<u16>().is_err())
        {
            return Err(invalid(entry, "the port is not a number up to 65535"));
        }
    }
    if HeaderValue::from_str(&origin).is_err() || !origin.is_ascii() {
        return Err(invalid(
            entry,
            "an origin is ASCII (write an internationalized host in punycode)",
        ));
    }
    Ok(origin)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn star_alone_allows_any() {
        assert_eq!(AllowedOrigins::parse(&["*"]).unwrap(), AllowedOrigins::Any);
        assert!(AllowedOrigins::parse(&["*", "https://a.example"]).is_err());
        assert!(AllowedOrigins::parse::<&str>(&[]).is_err());
    }

    #[test]
    fn origins_are_normalized() {
        let parsed = AllowedOrigins::parse(&[
            "https://App.Example.com/",
            "http://localhost:3000",
            "http://[::1]:8080",
            "http://[::1]",
            "https://app.example.com",
        ])
        .unwrap();
        assert_eq!(
            parsed,
            AllowedOrigins::List(vec![
                "https://app.example.com".to_string(),
                "http://localhost:3000".to_string(),
                "http://[::1]:8080".to_string(),
                "http://[::1]".to_string(),
            ])
        );
    }

    #[test]
    fn non_origins_are_refused_by_name() {
        for bad in [
            "",
            "localhost:3000",
            "https://",
            "https://a.example/path",
            "https://a.example?q",
            "https://user@a.example",
            "https://*.example.com",
            "https://a.example:99999",
            "https://a.example:",
            "1http://a.example",
            "https://exämple.com",
        ] {
            match AllowedOrigins::parse(&[bad]) {
                Err(FrontendError::InvalidOrigin { origin, .. }) => assert_eq!(origin, bad),
                other => panic!("{bad:?}: {other:?}"),
            }
        }
    }
}

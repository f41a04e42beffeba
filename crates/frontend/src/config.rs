//! Validated frontend settings.

/// How the frontend serves requests. Built by the CLI from its arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrontendConfig {
    /// Upper bound on the default `max_tokens` when a request gives none (the default is the
    /// context left after the prompt, clamped to this). `None` = no clamp.
    pub default_max_tokens_cap: Option<u32>,
    /// Largest request body accepted; larger bodies get 413.
    pub body_limit_bytes: usize,
    /// Most stop strings per request (OpenAI allows 4).
    pub max_stop_sequences: usize,
    /// `owned_by` in GET /v1/models.
    pub owned_by: String,
}

impl Default for FrontendConfig {
    fn default() -> Self {
        Self {
            default_max_tokens_cap: None,
            body_limit_bytes: 16 * 1024 * 1024,
            max_stop_sequences: 4,
            owned_by: "rotor".to_string(),
        }
    }
}

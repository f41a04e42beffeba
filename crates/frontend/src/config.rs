//! Validated frontend settings.

use crate::auth::ApiKeys;
use crate::cors::AllowedOrigins;
use crate::overload::BusyThresholds;
use crate::parsers::ParserSetting;
use rotor_text::{ReasoningParserKind, ToolParserKind};

/// Default largest request body: 16 MiB, room for a long context (128k tokens of text is about
/// 0.5 MB of JSON) with a wide margin, small enough that a few hostile bodies cannot exhaust
/// memory.
pub const DEFAULT_BODY_LIMIT_BYTES: usize = 16 * 1024 * 1024;

/// How the frontend serves requests. Built by the CLI from its arguments.
#[derive(Debug, Clone, PartialEq)]
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
    /// Keys a request must present (`Authorization: Bearer` or `x-api-key`) on every route but
    /// /health, /live, /openapi.json and /metrics; empty: no authentication.
    pub api_keys: ApiKeys,
    /// /metrics needs a key too (when there are keys).
    pub protect_metrics: bool,
    /// Origins allowed to call from a browser (CORS); `None`: no CORS headers at all.
    pub allowed_origins: Option<AllowedOrigins>,
    /// When a worker counts as busy; a model whose workers are all busy answers 503.
    pub busy: BusyThresholds,
    /// `--tool-call-parser`: for every model (default: from each model's chat template).
    pub tool_call_parser: ParserSetting<ToolParserKind>,
    /// `--reasoning-parser`: for every model (default: from each model's chat template).
    pub reasoning_parser: ParserSetting<ReasoningParserKind>,
    /// Responses API: most responses kept for GET and `previous_response_id`, in this process
    /// only; the oldest is evicted first.
    pub max_stored_responses: usize,
}

impl Default for FrontendConfig {
    fn default() -> Self {
        Self {
            default_max_tokens_cap: None,
            body_limit_bytes: DEFAULT_BODY_LIMIT_BYTES,
            max_stop_sequences: 4,
            owned_by: "rotor".to_string(),
            api_keys: ApiKeys::default(),
            protect_metrics: false,
            allowed_origins: None,
            busy: BusyThresholds::default(),
            tool_call_parser: ParserSetting::Auto,
            reasoning_parser: ParserSetting::Auto,
            max_stored_responses: crate::responses_api::DEFAULT_MAX_STORED_RESPONSES,
        }
    }
}

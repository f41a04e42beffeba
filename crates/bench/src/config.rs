//! The validated form of [`crate::BenchArgs`].

use std::ops::Range;
use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

use crate::lengths::LengthDist;
use crate::trace::TraceFormat;

/// Which OpenAI route requests go to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Endpoint {
    /// POST /v1/chat/completions with one user message (token prompts are rendered as words).
    Chat,
    /// POST /v1/completions with a token-id or text prompt.
    Completions,
}

impl Endpoint {
    pub fn path(self) -> &'static str {
        match self {
            Endpoint::Chat => "/v1/chat/completions",
            Endpoint::Completions => "/v1/completions",
        }
    }
}

/// How synthetic and trace token prompts are sent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum PromptFormat {
    /// Token ids in `prompt` (Rotor accepts them; exact prompt lengths).
    #[default]
    TokenIds,
    /// Text of one common English word per token (each a single token, with or without a leading
    /// space, in GPT-2-style BPE vocabularies such as SmolLM2's), for servers that take only text.
    Text,
}

/// What a run measures.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Scenario {
    /// Load: many requests under the chosen load mode (the default).
    #[default]
    Load,
    /// Prefix reuse: per repetition, request A (prefix P + suffix), then B (P + another suffix),
    /// then C (a fresh prefix Q + suffix), one at a time; compares the TTFT of B against C.
    SharedPrefix,
}

/// The validated scenario.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ScenarioConfig {
    #[default]
    Load,
    /// See [`Scenario::SharedPrefix`]; the suffixes are `input_len` tokens long.
    SharedPrefix {
        prefix_tokens: u32,
        repetitions: usize,
    },
}

/// How requests are issued. Resolved once the workload is known (a trace with timestamps and no
/// rate or concurrency flag replays its own schedule).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum LoadMode {
    /// Closed loop: `concurrency` requests always in flight.
    Closed { concurrency: usize },
    /// Open loop with Poisson arrivals; at most `max_in_flight` outstanding if set.
    Poisson {
        rate_per_s: f64,
        max_in_flight: Option<usize>,
    },
    /// Open loop at the trace's timestamps times `time_scale`.
    FixedSchedule {
        time_scale: f64,
        max_in_flight: Option<usize>,
    },
}

/// Shared-prefix groups of a synthetic workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PrefixGroups {
    pub groups: u32,
    pub prefix_tokens: u32,
}

/// Where prompts come from.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SourceConfig {
    Synthetic {
        input_len: LengthDist,
        prefix: Option<PrefixGroups>,
    },
    Trace {
        path: PathBuf,
        format: Option<TraceFormat>,
    },
}

/// Service-level objectives for goodput.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Slo {
    pub ttft_ms: Option<f64>,
    pub itl_ms: Option<f64>,
}

/// Everything a run needs, checked.
#[derive(Debug, Clone, Serialize)]
pub struct BenchConfig {
    /// Server base URL without a trailing `/` or `/v1`, e.g. `http://127.0.0.1:8000`.
    pub base_url: String,
    pub metrics_url: Option<String>,
    pub model: Option<String>,
    /// `None`: chat for text prompts (ShareGPT), completions otherwise.
    pub endpoint: Option<Endpoint>,
    pub concurrency: Option<usize>,
    pub request_rate: Option<f64>,
    pub time_scale: f64,
    pub num_requests: Option<usize>,
    pub max_duration: Duration,
    pub request_timeout: Duration,
    pub source: SourceConfig,
    pub output_len: LengthDist,
    pub block_size_tokens: u32,
    pub max_input_tokens: Option<u32>,
    pub max_output_tokens: Option<u32>,
    pub token_ids: Range<u32>,
    pub prompt_format: PromptFormat,
    pub scenario: ScenarioConfig,
    pub seed: u64,
    pub slo: Slo,
    pub output_json: Option<PathBuf>,
    pub plot: Option<PathBuf>,
    pub progress: bool,
}

//! `rotor bench` flags ([`BenchArgs`]) and their validation into a [`BenchConfig`].

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use crate::config::{
    BenchConfig, Endpoint, PrefixGroups, PromptFormat, Scenario, ScenarioConfig, Slo, SourceConfig,
};
use crate::error::Error;
use crate::lengths::LengthDist;
use crate::trace::TraceFormat;

/// Drive an OpenAI-compatible server with synthetic load or a replayed trace and report
/// latency (TTFT, ITL, end to end), throughput, goodput and prefix-cache hits.
#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// Server base URL (plain http; a trailing /v1 is accepted).
    #[arg(long, default_value = "http://127.0.0.1:8000")]
    pub url: String,
    /// Prometheus endpoint to scrape before and after the run [default: URL/metrics].
    #[arg(long)]
    pub metrics_url: Option<String>,
    /// Do not scrape /metrics.
    #[arg(long)]
    pub no_metrics: bool,
    /// Model name to send [default: the first model of GET /v1/models].
    #[arg(long)]
    pub model: Option<String>,
    /// Route to drive [default: chat for ShareGPT prompts, completions otherwise].
    #[arg(long, value_enum)]
    pub endpoint: Option<Endpoint>,

    /// Closed loop with N requests in flight; with --request-rate or a trace schedule, a cap on
    /// requests in flight.
    #[arg(long)]
    pub concurrency: Option<usize>,
    /// Open loop: Poisson arrivals at R requests per second (seeded by --seed).
    #[arg(long)]
    pub request_rate: Option<f64>,
    /// Trace file to replay (Mooncake JSONL, Azure CSV, BurstGPT CSV or ShareGPT JSON).
    #[arg(long)]
    pub trace: Option<PathBuf>,
    /// Trace format [default: guessed from the file's first line].
    #[arg(long, value_enum)]
    pub trace_format: Option<TraceFormat>,
    /// Multiply trace timestamps by F (0.5 replays twice as fast).
    #[arg(long, default_value_t = 1.0)]
    pub time_scale: f64,
    /// Stop after N requests [default: every trace row, or 100 synthetic requests].
    #[arg(long)]
    pub num_requests: Option<usize>,
    /// Stop issuing after this long and cancel what is still in flight (e.g. 90s, 10m).
    #[arg(long, default_value = "10m", value_parser = parse_duration)]
    pub max_duration: Duration,
    /// Give up on one request after this long (counted as an error).
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    pub request_timeout: Duration,

    /// Synthetic prompt length in tokens after any shared prefix: N, MEAN:STDDEV or A..B.
    #[arg(long, default_value = "256")]
    pub input_len: LengthDist,
    /// Output length in tokens (ignored for traces that carry one): N, MEAN:STDDEV or A..B.
    #[arg(long, default_value = "128")]
    pub output_len: LengthDist,
    /// Synthetic: number of groups (conversations) whose requests share a prefix; each request
    /// joins a group drawn at random (seeded by --seed).
    #[arg(long, default_value_t = 0)]
    pub prefix_groups: u32,
    /// Synthetic: length in tokens of each group's shared prefix.
    #[arg(long, default_value_t = 0)]
    pub prefix_len: u32,
    /// Tokens per Mooncake hash id (the trace's own is 512; smaller values shrink prompts for
    /// small-context models while keeping the prefix structure).
    #[arg(long, default_value_t = 512)]
    pub block_size: u32,
    /// Cut every prompt to at most N tokens.
    #[arg(long)]
    pub max_input_tokens: Option<u32>,
    /// Cut every wanted output to at most N tokens.
    #[arg(long)]
    pub max_output_tokens: Option<u32>,
    /// Token ids used for generated prompts, LO..HI (HI exclusive); keep it inside the model's
    /// ordinary vocabulary.
    #[arg(long, default_value = "1000..30000")]
    pub token_id_range: String,
    /// How token prompts are sent: token ids, or text of one common word per token (for servers
    /// such as llama.cpp's that take only text; the server's usage reports the real count).
    #[arg(long, value_enum, default_value = "token-ids")]
    pub prompt_format: PromptFormat,
    /// `load`: the usual run. `shared-prefix`: prefix-reuse TTFT, one request at a time: per
    /// repetition A = prefix P + suffix, B = P + another suffix, C = a fresh prefix + suffix;
    /// reports the TTFT of B against C. Prefix length: --prefix-len (default 1000); suffix:
    /// --input-len; repetitions: --num-requests (default 5). Prefixes are fresh every run.
    #[arg(long, value_enum, default_value = "load")]
    pub scenario: Scenario,
    /// Seed for prompts and arrivals.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,

    /// Goodput SLO on time to first token, in milliseconds.
    #[arg(long)]
    pub slo_ttft_ms: Option<f64>,
    /// Goodput SLO on a request's mean inter-token latency, in milliseconds.
    #[arg(long)]
    pub slo_itl_ms: Option<f64>,
    /// Write the report (summary and per-request records) as JSON.
    #[arg(long)]
    pub output_json: Option<PathBuf>,
    /// Write a PNG with TTFT and ITL CDFs and throughput over time.
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// Hide the progress bar.
    #[arg(long)]
    pub no_progress: bool,
}

/// `--scenario shared-prefix` without `--prefix-len`: the 1,000-token prefix.
pub const DEFAULT_SHARED_PREFIX_TOKENS: u32 = 1000;
/// `--scenario shared-prefix` without `--num-requests`: repetitions (A, B, C each).
pub const DEFAULT_SHARED_PREFIX_REPETITIONS: usize = 5;

fn invalid(flag: &'static str, reason: impl Into<String>) -> Error {
    Error::InvalidArg {
        flag,
        reason: reason.into(),
    }
}

impl BenchArgs {
    /// Checks ranges and combinations and normalises URLs.
    pub fn validate(self) -> Result<BenchConfig, Error> {
        let base_url = normalize_base_url(&self.url)?;
        let metrics_url = if self.no_metrics {
            None
        } else {
            Some(match self.metrics_url {
                Some(u) => check_http("metrics-url", u.trim())?.to_string(),
                None => format!("{base_url}/metrics"),
            })
        };
        if self.concurrency == Some(0) {
            return Err(invalid("concurrency", "must be at least 1"));
        }
        if let Some(r) = self.request_rate {
            if !(r > 0.0 && r.is_finite()) {
                return Err(invalid("request-rate", "must be a positive number"));
            }
        }
        if !(self.time_scale > 0.0 && self.time_scale.is_finite()) {
            return Err(invalid("time-scale", "must be a positive number"));
        }
        if self.num_requests == Some(0) {
            return Err(invalid("num-requests", "must be at least 1"));
        }
        if self.max_duration.is_zero() {
            return Err(invalid("max-duration", "must be positive"));
        }
        if self.request_timeout.is_zero() {
            return Err(invalid("request-timeout", "must be positive"));
        }
        if self.block_size == 0 {
            return Err(invalid("block-size", "must be at least 1"));
        }
        if self.max_input_tokens == Some(0) || self.max_output_tokens == Some(0) {
            return Err(invalid("max-input-tokens", "caps must be at least 1"));
        }
        let token_ids = parse_token_range(&self.token_id_range)?;
        for (flag, v) in [
            ("slo-ttft-ms", self.slo_ttft_ms),
            ("slo-itl-ms", self.slo_itl_ms),
        ] {
            if let Some(v) = v {
                if !(v > 0.0 && v.is_finite()) {
                    return Err(invalid(flag, "must be a positive number of milliseconds"));
                }
            }
        }
        let scenario = match self.scenario {
            Scenario::Load => ScenarioConfig::Load,
            Scenario::SharedPrefix => {
                let refuse = |flag, what: &str| {
                    Err(invalid(
                        flag,
                        format!("{what} does not apply to --scenario shared-prefix"),
                    ))
                };
                if self.trace.is_some() {
                    return refuse("trace", "a trace");
                }
                if self.request_rate.is_some() {
                    return refuse("request-rate", "a request rate");
                }
                if self.concurrency.is_some_and(|c| c > 1) {
                    return refuse("concurrency", "concurrency above 1");
                }
                if self.prefix_groups > 0 {
                    return refuse("prefix-groups", "prefix groups");
                }
                ScenarioConfig::SharedPrefix {
                    prefix_tokens: if self.prefix_len == 0 {
                        DEFAULT_SHARED_PREFIX_TOKENS
                    } else {
                        self.prefix_len
                    },
                    repetitions: self
                        .num_requests
                        .unwrap_or(DEFAULT_SHARED_PREFIX_REPETITIONS),
                }
            }
        };
        let prefix_len = match scenario {
            ScenarioConfig::Load => self.prefix_len,
            ScenarioConfig::SharedPrefix { .. } => 0,
        };
        let source = match self.trace {
            Some(path) => {
                if self.prefix_groups > 0 {
                    return Err(invalid(
                        "prefix-groups",
                        "applies to synthetic prompts only",
                    ));
                }
                SourceConfig::Trace {
                    path,
                    format: self.trace_format,
                }
            }
            None => {
                if self.trace_format.is_some() {
                    return Err(invalid("trace-format", "needs --trace"));
                }
                let prefix = match (self.prefix_groups, prefix_len) {
                    (0, 0) => None,
                    (0, _) => return Err(invalid("prefix-len", "needs --prefix-groups")),
                    (_, 0) => return Err(invalid("prefix-groups", "needs --prefix-len")),
                    (groups, prefix_tokens) => Some(PrefixGroups {
                        groups,
                        prefix_tokens,
                    }),
                };
                SourceConfig::Synthetic {
                    input_len: self.input_len,
                    prefix,
                }
            }
        };
        Ok(BenchConfig {
            base_url,
            metrics_url,
            model: self.model,
            endpoint: self.endpoint,
            concurrency: self.concurrency,
            request_rate: self.request_rate,
            time_scale: self.time_scale,
            num_requests: self.num_requests,
            max_duration: self.max_duration,
            request_timeout: self.request_timeout,
            source,
            output_len: self.output_len,
            block_size_tokens: self.block_size,
            max_input_tokens: self.max_input_tokens,
            max_output_tokens: self.max_output_tokens,
            token_ids,
            prompt_format: self.prompt_format,
            scenario,
            seed: self.seed,
            slo: Slo {
                ttft_ms: self.slo_ttft_ms,
                itl_ms: self.slo_itl_ms,
            },
            output_json: self.output_json,
            plot: self.plot,
            progress: !self.no_progress,
        })
    }
}

fn check_http<'a>(flag: &'static str, url: &'a str) -> Result<&'a str, Error> {
    if url.starts_with("http://") && url.len() > "http://".len() {
        Ok(url)
    } else {
        Err(invalid(
            flag,
            format!("{url:?}: only plain http:// URLs are supported (no TLS)"),
        ))
    }
}

/// `http://h:p/`, `http://h:p/v1` and `http://h:p/v1/` all become `http://h:p`.
pub fn normalize_base_url(url: &str) -> Result<String, Error> {
    let url = check_http("url", url.trim())?;
    let mut s = url.trim_end_matches('/');
    if let Some(stripped) = s.strip_suffix("/v1") {
        s = stripped;
    }
    Ok(s.to_string())
}

fn parse_token_range(s: &str) -> Result<std::ops::Range<u32>, Error> {
    let bad = || {
        invalid(
            "token-id-range",
            format!("{s:?}: expected LO..HI with LO < HI"),
        )
    };
    let (lo, hi) = s.split_once("..").ok_or_else(bad)?;
    let lo: u32 = lo.trim().parse().map_err(|_| bad())?;
    let hi: u32 = hi.trim().parse().map_err(|_| bad())?;
    if lo >= hi {
        return Err(bad());
    }
    Ok(lo..hi)
}

/// Parses `90`, `90s`, `1500ms`, `10m`, `1h`, `2.5s`.
pub fn parse_duration(s: &str) -> Result<Duration, Error> {
    let bad = || Error::DurationSpec {
        spec: s.to_string(),
    };
    let t = s.trim();
    let (num, unit_s) = if let Some(n) = t.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = t.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = t.strip_suffix('m') {
        (n, 60.0)
    } else if let Some(n) = t.strip_suffix('h') {
        (n, 3600.0)
    } else {
        (t, 1.0)
    };
    let v: f64 = num.trim().parse().map_err(|_| bad())?;
    if !(v >= 0.0 && v.is_finite()) {
        return Err(bad());
    }
    Duration::try_from_secs_f64(v * unit_s).map_err(|_| bad())
}

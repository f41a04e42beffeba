//! Prometheus metrics of the frontend, rendered in the text exposition format (version 0.0.4)
//! by hand: a handful of counters, one gauge and three histograms do not need a library.
//!
//! - `rotor_frontend_requests_total{endpoint,status}`: HTTP requests by route and status.
//! - `rotor_frontend_inflight_requests`: generation requests being served.
//! - `rotor_frontend_time_to_first_token_seconds`: request start → first generated token.
//! - `rotor_frontend_inter_token_latency_seconds`: gap between consecutive engine outputs,
//!   divided by the tokens in the later output.
//! - `rotor_frontend_request_duration_seconds`: generation request start → end (stream end or
//!   client disconnect).
//! - `rotor_frontend_prompt_tokens_total{model}`, `rotor_frontend_completion_tokens_total{model}`.
//! - `rotor_frontend_auth_rejected_total`: requests refused for a missing or wrong API key.
//! - `rotor_frontend_overload_rejected_total{model}`: requests refused with 503 because every
//!   worker of the model was busy.
//! - `rotor_frontend_busy_kv_threshold`, `rotor_frontend_busy_queue_threshold`: the busy
//!   thresholds (gauges, present only when set).
//! - `rotor_frontend_tool_requests_total{tool_choice}`: chat requests that offered tools.
//! - `rotor_frontend_tool_calls_total{parser}`: tool calls parsed out of answers.
//! - `rotor_frontend_tool_calls_dropped_total{parser}`: calls after the first of an answer to a
//!   request with `parallel_tool_calls: false` (not returned).
//! - `rotor_frontend_tool_call_parse_failures_total{parser}`: markup that started like a call
//!   but did not parse (returned as content).
//! - `rotor_frontend_reasoning_responses_total{parser}`: answers with reasoning content.
//! - `rotor_frontend_constrained_requests_total{kind}`: requests sent with an output constraint
//!   (`json_object`, `json_schema`, `regex`, `choice`, `lark`, `gbnf`, `tool_call`).
//! - `rotor_frontend_sampling_options_total{option}`: requests that asked for `logprobs`,
//!   `top_logprobs` (more than 0 alternatives), `logit_bias`, `n` (more than one choice),
//!   `best_of` (more sequences than choices), `prompt_list` (several prompts) or `echo`.
//! - `rotor_frontend_shared_prompt_sequences_total`: sequences started after their prompt's
//!   first one had prefilled it (`n` > 1, `best_of`), so as to reuse its KV blocks.
//! - `rotor_frontend_responses_total{stream}`: Responses API requests accepted (POST
//!   /v1/responses), streaming or not; `rotor_frontend_responses_stored`: responses kept in this
//!   process's store (gauge).
//! - `rotor_frontend_anthropic_messages_total{stream}`: accepted Anthropic /v1/messages requests.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::overload::BusyThresholds;

const LATENCY_BUCKETS_SECONDS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];
const DURATION_BUCKETS_SECONDS: &[f64] = &[
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0,
];

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding these short critical sections cannot leave them inconsistent.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

struct Histogram {
    bounds: &'static [f64],
    state: Mutex<HistogramState>,
}

#[derive(Default)]
struct HistogramState {
    /// Non-cumulative count per bucket; one extra for +Inf.
    buckets: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Self {
        let state = HistogramState {
            buckets: vec![0; bounds.len() + 1],
            ..Default::default()
        };
        Self {
            bounds,
            state: Mutex::new(state),
        }
    }

    fn observe(&self, value: f64) {
        let slot = self
            .bounds
            .iter()
            .position(|bound| value <= *bound)
            .unwrap_or(self.bounds.len());
        let mut state = lock(&self.state);
        state.buckets[slot] += 1;
        state.sum += value;
        state.count += 1;
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let state = lock(&self.state);
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut cumulative = 0;
        for (bound, count) in self.bounds.iter().zip(&state.buckets) {
            cumulative += count;
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {}", state.count);
        let _ = writeln!(out, "{name}_sum {}", state.sum);
        let _ = writeln!(out, "{name}_count {}", state.count);
    }
}

/// Something else in the process (an engine, a KV cache) that appends its own metrics, already
/// in the text exposition format, to every /metrics response.
pub trait MetricsSource: Send + Sync + 'static {
    fn render(&self, out: &mut String);
}

/// All frontend metrics. Shared as `Arc<Metrics>`.
pub struct Metrics {
    sources: Mutex<Vec<Arc<dyn MetricsSource>>>,
    requests: Mutex<BTreeMap<(String, u16), u64>>,
    inflight: AtomicI64,
    ttft: Histogram,
    itl: Histogram,
    duration: Histogram,
    prompt_tokens: Mutex<BTreeMap<String, u64>>,
    completion_tokens: Mutex<BTreeMap<String, u64>>,
    auth_rejected: AtomicU64,
    overload_rejected: Mutex<BTreeMap<String, u64>>,
    busy: BusyThresholds,
    tool_requests: Mutex<BTreeMap<String, u64>>,
    tool_calls: Mutex<BTreeMap<String, u64>>,
    tool_parse_failures: Mutex<BTreeMap<String, u64>>,
    tool_calls_dropped: Mutex<BTreeMap<String, u64>>,
    reasoning_responses: Mutex<BTreeMap<String, u64>>,
    constrained_requests: Mutex<BTreeMap<String, u64>>,
    sampling_options: Mutex<BTreeMap<String, u64>>,
    shared_prompt_sequences: AtomicU64,
    embeddings: Mutex<BTreeMap<String, u64>>,
    responses: Mutex<BTreeMap<String, u64>>,
    responses_stored: AtomicI64,
    anthropic_messages: Mutex<BTreeMap<String, u64>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            sources: Mutex::default(),
            requests: Mutex::default(),
            inflight: AtomicI64::new(0),
            ttft: Histogram::new(LATENCY_BUCKETS_SECONDS),
            itl: Histogram::new(LATENCY_BUCKETS_SECONDS),
            duration: Histogram::new(DURATION_BUCKETS_SECONDS),
            prompt_tokens: Mutex::default(),
            completion_tokens: Mutex::default(),
            auth_rejected: AtomicU64::new(0),
            overload_rejected: Mutex::default(),
            busy: BusyThresholds::default(),
            tool_requests: Mutex::default(),
            tool_calls: Mutex::default(),
            tool_parse_failures: Mutex::default(),
            tool_calls_dropped: Mutex::default(),
            reasoning_responses: Mutex::default(),
            constrained_requests: Mutex::default(),
            sampling_options: Mutex::default(),
            shared_prompt_sequences: AtomicU64::new(0),
            embeddings: Mutex::default(),
            responses: Mutex::default(),
            responses_stored: AtomicI64::new(0),
            anthropic_messages: Mutex::default(),
        }
    }
}

impl Metrics {
    /// Metrics that also show the busy thresholds in force.
    pub fn with_busy_thresholds(busy: BusyThresholds) -> Self {
        Self {
            busy,
            ..Self::default()
        }
    }

    /// Counts a request refused for a missing or wrong API key.
    pub fn count_auth_rejected(&self) {
        self.auth_rejected.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a request to `model` refused because every worker was busy.
    pub fn count_overload_rejected(&self, model: &str) {
        *lock(&self.overload_rejected)
            .entry(model.to_string())
            .or_default() += 1;
    }

    /// Counts a chat request that offered tools, by its `tool_choice` (`auto`, `required`, …).
    pub fn count_tool_request(&self, tool_choice: &str) {
        add(&self.tool_requests, tool_choice, 1);
    }

    /// Counts a request sent with an output constraint of this kind.
    pub fn count_constrained_request(&self, kind: &str) {
        add(&self.constrained_requests, kind, 1);
    }

    /// Counts the optional sampling features a request asked for.
    pub fn count_sampling_options(&self, sampling: &rotor_protocol::SamplingParams) {
        if let Some(top) = sampling.logprobs {
            add(&self.sampling_options, "logprobs", 1);
            if top > 0 {
                add(&self.sampling_options, "top_logprobs", 1);
            }
        }
        if !sampling.logit_bias.is_empty() {
            add(&self.sampling_options, "logit_bias", 1);
        }
    }

    /// Counts a request that used a request-level option (`n`, `best_of`, `prompt_list`,
    /// `echo`).
    pub fn count_option(&self, option: &str) {
        add(&self.sampling_options, option, 1);
    }

    /// Counts sequences started to share an already prefilled prompt.
    pub fn count_choices(&self, shared: usize) {
        self.shared_prompt_sequences
            .fetch_add(shared as u64, Ordering::Relaxed);
    }

    /// Counts `inputs` inputs of `model` embedded (POST /v1/embeddings).
    pub fn count_embeddings(&self, model: &str, inputs: u64) {
        add(&self.embeddings, model, inputs);
    }

    /// Counts an accepted Anthropic /v1/messages request.
    pub fn count_anthropic_message(&self, stream: bool) {
        add(
            &self.anthropic_messages,
            if stream { "true" } else { "false" },
            1,
        );
    }

    /// Records what the parsers found in one finished answer.
    pub fn count_chat_output(
        &self,
        tool_parser: Option<&str>,
        calls: usize,
        dropped: usize,
        failures: usize,
        reasoning_parser: Option<&str>,
    ) {
        if let Some(parser) = tool_parser {
            if calls > 0 {
                add(&self.tool_calls, parser, calls as u64);
            }
            if dropped > 0 {
                add(&self.tool_calls_dropped, parser, dropped as u64);
            }
            if failures > 0 {
                add(&self.tool_parse_failures, parser, failures as u64);
            }
        }
        if let Some(parser) = reasoning_parser {
            add(&self.reasoning_responses, parser, 1);
        }
    }

    /// Counts one accepted Responses API request.
    pub fn count_response(&self, stream: bool) {
        add(&self.responses, if stream { "true" } else { "false" }, 1);
    }

    /// Sets how many Responses API responses are stored.
    pub fn set_responses_stored(&self, count: usize) {
        self.responses_stored.store(count as i64, Ordering::Relaxed);
    }

    /// Adds a source whose metrics follow the frontend's own in every /metrics response.
    pub fn add_source(&self, source: Arc<dyn MetricsSource>) {
        lock(&self.sources).push(source);
    }

    /// Counts one finished HTTP exchange.
    pub fn count_request(&self, endpoint: &str, status: u16) {
        *lock(&self.requests)
            .entry((endpoint.to_string(), status))
            .or_default() += 1;
    }

    /// Starts timing a generation request; the returned guard records it when dropped.
    pub fn start_generation(self: &Arc<Self>, model: &str) -> GenerationTimer {
        self.inflight.fetch_add(1, Ordering::Relaxed);
        GenerationTimer {
            metrics: Arc::clone(self),
            model: model.to_string(),
            started: Instant::now(),
            last_output: None,
        }
    }

    /// The text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str(
            "# HELP rotor_frontend_requests_total HTTP requests by endpoint and status.\n",
        );
        out.push_str("# TYPE rotor_frontend_requests_total counter\n");
        for ((endpoint, status), count) in lock(&self.requests).iter() {
            let endpoint = escape_label(endpoint);
            let _ = writeln!(
                out,
                "rotor_frontend_requests_total{{endpoint=\"{endpoint}\",status=\"{status}\"}} {count}"
            );
        }
        out.push_str("# HELP rotor_frontend_inflight_requests Generation requests being served.\n");
        out.push_str("# TYPE rotor_frontend_inflight_requests gauge\n");
        let _ = writeln!(
            out,
            "rotor_frontend_inflight_requests {}",
            self.inflight.load(Ordering::Relaxed)
        );
        self.ttft.render(
            &mut out,
            "rotor_frontend_time_to_first_token_seconds",
            "Time from request start to the first generated token.",
        );
        self.itl.render(
            &mut out,
            "rotor_frontend_inter_token_latency_seconds",
            "Time between consecutive generated tokens.",
        );
        self.duration.render(
            &mut out,
            "rotor_frontend_request_duration_seconds",
            "Generation request duration, to the end of the response or the disconnect.",
        );
        render_by_model(
            &mut out,
            "rotor_frontend_prompt_tokens_total",
            "Prompt tokens of accepted requests.",
            &lock(&self.prompt_tokens),
        );
        render_by_model(
            &mut out,
            "rotor_frontend_completion_tokens_total",
            "Generated tokens.",
            &lock(&self.completion_tokens),
        );
        render_by_model(
            &mut out,
            "rotor_frontend_embeddings_total",
            "Inputs embedded by POST /v1/embeddings.",
            &lock(&self.embeddings),
        );
        out.push_str(
            "# HELP rotor_frontend_auth_rejected_total Requests refused for a missing or wrong \
             API key.\n# TYPE rotor_frontend_auth_rejected_total counter\n",
        );
        let _ = writeln!(
            out,
            "rotor_frontend_auth_rejected_total {}",
            self.auth_rejected.load(Ordering::Relaxed)
        );
        out.push_str(
            "# HELP rotor_frontend_shared_prompt_sequences_total Sequences started after their \
             prompt's first sequence prefilled it (n > 1, best_of).\n\
             # TYPE rotor_frontend_shared_prompt_sequences_total counter\n",
        );
        let _ = writeln!(
            out,
            "rotor_frontend_shared_prompt_sequences_total {}",
            self.shared_prompt_sequences.load(Ordering::Relaxed)
        );
        render_by_model(
            &mut out,
            "rotor_frontend_overload_rejected_total",
            "Requests refused with 503 because every worker of the model was busy.",
            &lock(&self.overload_rejected),
        );
        out.push_str(
            "# HELP rotor_frontend_busy_kv_threshold KV-cache usage fraction at which a worker \
             is busy.\n# TYPE rotor_frontend_busy_kv_threshold gauge\n",
        );
        if let Some(fraction) = self.busy.kv_usage {
            let _ = writeln!(out, "rotor_frontend_busy_kv_threshold {fraction}");
        }
        out.push_str(
            "# HELP rotor_frontend_busy_queue_threshold Queued requests beyond which a worker \
             is busy.\n# TYPE rotor_frontend_busy_queue_threshold gauge\n",
        );
        if let Some(limit) = self.busy.waiting_requests {
            let _ = writeln!(out, "rotor_frontend_busy_queue_threshold {limit}");
        }
        let labelled = [
            (
                "rotor_frontend_tool_requests_total",
                "Chat requests that offered tools, by tool_choice.",
                "tool_choice",
                &self.tool_requests,
            ),
            (
                "rotor_frontend_tool_calls_total",
                "Tool calls parsed out of answers, by parser.",
                "parser",
                &self.tool_calls,
            ),
            (
                "rotor_frontend_tool_call_parse_failures_total",
                "Tool-call markup that did not parse and was returned as content, by parser.",
                "parser",
                &self.tool_parse_failures,
            ),
            (
                "rotor_frontend_tool_calls_dropped_total",
                "Tool calls after the first, dropped because the request set parallel_tool_calls false.",
                "parser",
                &self.tool_calls_dropped,
            ),
            (
                "rotor_frontend_reasoning_responses_total",
                "Answers that had reasoning content, by reasoning parser.",
                "parser",
                &self.reasoning_responses,
            ),
            (
                "rotor_frontend_constrained_requests_total",
                "Requests sent with an output constraint, by kind.",
                "kind",
                &self.constrained_requests,
            ),
            (
                "rotor_frontend_sampling_options_total",
                "Requests that asked for logprobs, top_logprobs, logit_bias, n > 1, best_of, several prompts or echo.",
                "option",
                &self.sampling_options,
            ),
            (
                "rotor_frontend_responses_total",
                "Responses API requests accepted, by stream.",
                "stream",
                &self.responses,
            ),
            (
                "rotor_frontend_anthropic_messages_total",
                "Accepted Anthropic Messages API requests, by stream.",
                "stream",
                &self.anthropic_messages,
            ),
        ];
        for (name, help, label, counts) in labelled {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            for (value, count) in lock(counts).iter() {
                let _ = writeln!(out, "{name}{{{label}=\"{}\"}} {count}", escape_label(value));
            }
        }
        let _ = writeln!(
            out,
            "# HELP rotor_frontend_responses_stored Responses API responses stored in this \
             process.\n# TYPE rotor_frontend_responses_stored gauge\n\
             rotor_frontend_responses_stored {}",
            self.responses_stored.load(Ordering::Relaxed)
        );
        let sources: Vec<_> = lock(&self.sources).clone();
        for source in sources {
            source.render(&mut out);
        }
        out
    }
}

fn add(counts: &Mutex<BTreeMap<String, u64>>, key: &str, by: u64) {
    *lock(counts).entry(key.to_string()).or_default() += by;
}

fn render_by_model(out: &mut String, name: &str, help: &str, counts: &BTreeMap<String, u64>) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
    for (model, count) in counts {
        let _ = writeln!(out, "{name}{{model=\"{}\"}} {count}", escape_label(model));
    }
}

pub(crate) fn escape_label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Times one generation request: time to first token, inter-token latency, token counts and,
/// on drop, the duration and the in-flight gauge.
pub struct GenerationTimer {
    metrics: Arc<Metrics>,
    model: String,
    started: Instant,
    last_output: Option<Instant>,
}

impl GenerationTimer {
    pub fn prompt_tokens(&self, count: usize) {
        *lock(&self.metrics.prompt_tokens)
            .entry(self.model.clone())
            .or_default() += count as u64;
    }

    /// Records an engine output carrying `tokens` new tokens.
    pub fn output(&mut self, tokens: usize) {
        if tokens == 0 {
            return;
        }
        let now = Instant::now();
        match self.last_output {
            None => self.metrics.ttft.observe(seconds(now - self.started)),
            Some(last) => {
                let per_token = seconds(now - last) / tokens as f64;
                for _ in 0..tokens {
                    self.metrics.itl.observe(per_token);
                }
            }
        }
        self.last_output = Some(now);
        *lock(&self.metrics.completion_tokens)
            .entry(self.model.clone())
            .or_default() += tokens as u64;
    }
}

fn seconds(duration: Duration) -> f64 {
    duration.as_secs_f64()
}

impl Drop for GenerationTimer {
    fn drop(&mut self) {
        self.metrics
            .duration
            .observe(seconds(self.started.elapsed()));
        self.metrics.inflight.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative() {
        let hist = Histogram::new(&[0.1, 1.0]);
        for value in [0.05, 0.5, 0.7, 5.0] {
            hist.observe(value);
        }
        let mut out = String::new();
        hist.render(&mut out, "h", "help");
        assert!(out.contains("h_bucket{le=\"0.1\"} 1\n"), "{out}");
        assert!(out.contains("h_bucket{le=\"1\"} 3\n"), "{out}");
        assert!(out.contains("h_bucket{le=\"+Inf\"} 4\n"), "{out}");
        assert!(out.contains("h_count 4\n"), "{out}");
    }

    #[test]
    fn timer_tracks_inflight_and_tokens() {
        let metrics = Arc::new(Metrics::default());
        let mut timer = metrics.start_generation("m");
        timer.prompt_tokens(7);
        timer.output(1);
        timer.output(2);
        assert!(metrics
            .render()
            .contains("rotor_frontend_inflight_requests 1\n"));
        drop(timer);
        let text = metrics.render();
        assert!(
            text.contains("rotor_frontend_inflight_requests 0\n"),
            "{text}"
        );
        assert!(
            text.contains("rotor_frontend_prompt_tokens_total{model=\"m\"} 7\n"),
            "{text}"
        );
        assert!(
            text.contains("rotor_frontend_completion_tokens_total{model=\"m\"} 3\n"),
            "{text}"
        );
        assert!(
            text.contains("rotor_frontend_time_to_first_token_seconds_count 1\n"),
            "{text}"
        );
        assert!(
            text.contains("rotor_frontend_inter_token_latency_seconds_count 2\n"),
            "{text}"
        );
        assert!(
            text.contains("rotor_frontend_request_duration_seconds_count 1\n"),
            "{text}"
        );
    }
}

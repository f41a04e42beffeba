//! `--scenario shared-prefix`: does the server reuse the KV of a prompt prefix it has seen?
//!
//! Per repetition `r`, three requests go out one at a time, in this order:
//! - A ([`Role::First`]): prefix `P_r` + its own suffix — fills the server's prefix cache;
//! - B ([`Role::SharedPrefix`]): the same `P_r` + another suffix — should skip `P_r`'s prefill;
//! - C ([`Role::FreshPrefix`]): a prefix `Q_r` never sent before + a suffix — prefills it all.
//!
//! The figure is the median TTFT of B against that of C (and their ratio). Every repetition uses
//! new prefixes, and every run mixes a nonce into the prompt seed, so neither an earlier
//! repetition nor an earlier run against the same server leaves C's prefix cached.

use std::fmt;

use serde::Serialize;

use crate::client::{Outcome, RequestRecord};
use crate::config::{BenchConfig, Endpoint, LoadMode, PromptFormat, SourceConfig};
use crate::prompt::{PromptBuilder, PromptSpec};
use crate::rng::{mix64, SplitMix64};
use crate::stats::percentile;
use crate::workload::{RequestSpec, Workload};

/// What a request of the scenario is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// A: the first use of a prefix.
    First,
    /// B: the same prefix again, another suffix.
    SharedPrefix,
    /// C: a prefix the server has not seen.
    FreshPrefix,
}

/// The role of the request with workload index `index` (A, B, C repeat in that order).
pub fn role_of(index: usize) -> Role {
    match index % 3 {
        0 => Role::First,
        1 => Role::SharedPrefix,
        _ => Role::FreshPrefix,
    }
}

/// Builds the scenario's workload: `3 × repetitions` requests, closed loop with one in flight.
/// `nonce` is mixed into the prompt seed (callers pass a fresh one per run).
pub fn build(config: &BenchConfig, prefix_tokens: u32, repetitions: usize, nonce: u64) -> Workload {
    let input_len = match &config.source {
        SourceConfig::Synthetic { input_len, .. } => *input_len,
        SourceConfig::Trace { .. } => {
            unreachable!("invariant: validation refuses a trace with this scenario")
        }
    };
    let endpoint = config.endpoint.unwrap_or(Endpoint::Completions);
    let mut lengths = SplitMix64::for_stream(config.seed, 0x7368_7072);
    let cap_output = |n: u32| config.max_output_tokens.map_or(n, |cap| n.min(cap)).max(1);
    let requests = (0..3 * repetitions)
        .map(|i| {
            let rep = (i / 3) as u32;
            let group = match role_of(i) {
                Role::First | Role::SharedPrefix => 2 * rep,
                Role::FreshPrefix => 2 * rep + 1,
            };
            RequestSpec {
                index: i,
                send_at: None,
                prompt: PromptSpec::Random {
                    prefix_group: Some(group),
                    prefix_tokens,
                    unique_tokens: input_len.sample(&mut lengths),
                    stream: i as u64,
                },
                output_tokens: cap_output(config.output_len.sample(&mut lengths)),
            }
        })
        .collect();
    Workload {
        requests,
        mode: LoadMode::Closed { concurrency: 1 },
        endpoint,
        prompts: PromptBuilder {
            seed: config.seed ^ mix64(nonce),
            token_ids: config.token_ids.clone(),
            block_size_tokens: config.block_size_tokens,
            max_input_tokens: config.max_input_tokens,
            as_text: endpoint == Endpoint::Chat || config.prompt_format == PromptFormat::Text,
        },
        source: format!(
            "shared-prefix scenario: {repetitions} x (A, B, C), {prefix_tokens}-token prefixes + \
             {input_len}-token suffixes, output {}",
            config.output_len
        ),
        skipped_trace_rows: 0,
    }
}

/// The successful requests of one role.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RoleFigures {
    pub ok: usize,
    /// TTFT of each successful request, in repetition order.
    pub ttft_ms: Vec<f64>,
    pub ttft_median_ms: Option<f64>,
    /// Median prompt tokens (the server's count where it reported usage).
    pub input_tokens_median: Option<f64>,
    /// Median `usage.prompt_tokens_details.cached_tokens`, if the server reported it.
    pub cached_tokens_median: Option<f64>,
}

/// The scenario's result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SharedPrefixSummary {
    pub repetitions: usize,
    pub prefix_tokens: u32,
    pub first: RoleFigures,
    pub shared_prefix: RoleFigures,
    pub fresh_prefix: RoleFigures,
    /// Median TTFT of C over median TTFT of B: how much faster a shared prefix makes the first
    /// token (> 1 means the server reused the prefix).
    pub fresh_over_shared_ttft: Option<f64>,
}

fn median(mut xs: Vec<f64>) -> Option<f64> {
    xs.sort_by(f64::total_cmp);
    percentile(&xs, 50.0)
}

fn figures(records: &[RequestRecord], role: Role) -> RoleFigures {
    let ok: Vec<&RequestRecord> = records
        .iter()
        .filter(|r| role_of(r.index) == role && r.outcome == Outcome::Ok)
        .collect();
    let ttft_ms: Vec<f64> = ok.iter().filter_map(|r| r.ttft_ms).collect();
    RoleFigures {
        ok: ok.len(),
        ttft_median_ms: median(ttft_ms.clone()),
        ttft_ms,
        input_tokens_median: median(
            ok.iter()
                .filter_map(|r| r.input_tokens.map(f64::from))
                .collect(),
        ),
        cached_tokens_median: median(
            ok.iter()
                .filter_map(|r| r.cached_tokens.map(f64::from))
                .collect(),
        ),
    }
}

impl SharedPrefixSummary {
    /// Sorts `records` (of a [`build`] workload) by role and compares B with C.
    pub fn compute(
        records: &[RequestRecord],
        prefix_tokens: u32,
        repetitions: usize,
    ) -> SharedPrefixSummary {
        let shared_prefix = figures(records, Role::SharedPrefix);
        let fresh_prefix = figures(records, Role::FreshPrefix);
        let fresh_over_shared_ttft =
            match (fresh_prefix.ttft_median_ms, shared_prefix.ttft_median_ms) {
                (Some(c), Some(b)) if b > 0.0 => Some(c / b),
                _ => None,
            };
        SharedPrefixSummary {
            repetitions,
            prefix_tokens,
            first: figures(records, Role::First),
            shared_prefix,
            fresh_prefix,
            fresh_over_shared_ttft,
        }
    }
}

impl fmt::Display for SharedPrefixSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let opt = |v: Option<f64>, digits: usize| {
            v.map_or_else(|| "n/a".to_string(), |v| format!("{v:.digits$}"))
        };
        writeln!(
            f,
            "shared prefix ({} tokens, {} repetitions; medians over ok requests)",
            self.prefix_tokens, self.repetitions
        )?;
        writeln!(
            f,
            "  {:<34}{:>6}{:>12}{:>10}{:>10}",
            "request", "ok", "TTFT ms", "prompt", "cached"
        )?;
        for (name, r) in [
            ("A: first use of prefix P", &self.first),
            ("B: prefix P again", &self.shared_prefix),
            ("C: fresh prefix", &self.fresh_prefix),
        ] {
            writeln!(
                f,
                "  {:<34}{:>6}{:>12}{:>10}{:>10}",
                name,
                r.ok,
                opt(r.ttft_median_ms, 1),
                opt(r.input_tokens_median, 0),
                opt(r.cached_tokens_median, 0)
            )?;
        }
        writeln!(f, "  TTFT C / B: {}", opt(self.fresh_over_shared_ttft, 2))
    }
}

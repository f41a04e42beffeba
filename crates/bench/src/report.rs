//! The run's report: per-request records plus a [`Summary`] (counts, throughput, latency
//! distributions, goodput, prefix-cache hits), printable as a table and serialisable as JSON.
//!
//! Definitions:
//! - duration: from the start of the run until the last request ended (or the deadline);
//! - TTFT: send → first chunk with output text; ITL: gaps between text chunks (all requests
//!   pooled); TPOT: per request `(e2e - ttft) / (output_tokens - 1)`; E2E: send → `[DONE]`;
//!   latency statistics use successful requests only;
//! - goodput: successful requests with TTFT ≤ `slo.ttft_ms` and TPOT ≤ `slo.itl_ms` (each
//!   only if set), per second of duration, and as a share of requests that ended (errors count
//!   against it; cancelled requests do not).

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};

use serde::Serialize;

use crate::client::{Outcome, RequestRecord};
use crate::config::{Endpoint, LoadMode, Slo};
use crate::shared_prefix::SharedPrefixSummary;
use crate::stats::Distribution;

/// Goodput under the run's SLOs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Goodput {
    pub slo: Slo,
    pub good_requests: usize,
    pub good_requests_per_s: f64,
    /// `good / (ok + errors)`.
    pub good_fraction: f64,
}

/// Aggregates of a run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    pub planned_requests: usize,
    pub ok: usize,
    pub errors: usize,
    pub cancelled: usize,
    /// Planned but never sent (deadline or shutdown came first).
    pub not_sent: usize,
    /// Requests sent a second time on a new connection because the server had closed the
    /// pooled keep-alive connection before answering (whatever their outcome).
    pub retried: usize,
    pub duration_s: f64,
    pub requests_per_s: f64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// Successful requests whose stream carried usage (their token counts are the server's).
    pub usage_reported: usize,
    /// Prompt tokens as planned, over successful requests that had a planned count.
    pub planned_input_tokens: u64,
    /// Output tokens asked for (`max_tokens` = `min_tokens`), over successful requests.
    pub expected_output_tokens: u64,
    pub input_tokens_per_s: f64,
    pub output_tokens_per_s: f64,
    pub ttft_ms: Option<Distribution>,
    pub itl_ms: Option<Distribution>,
    pub tpot_ms: Option<Distribution>,
    pub e2e_ms: Option<Distribution>,
    pub goodput: Option<Goodput>,
    /// From the server's /metrics counters, before vs after; `None` if unavailable.
    pub prefix_cache_hit_rate: Option<f64>,
    /// Sum of `usage.prompt_tokens_details.cached_tokens`; `None` if no response reported it.
    pub cached_tokens: Option<u64>,
    /// Error messages and how often each occurred.
    pub error_kinds: BTreeMap<String, usize>,
}

impl Summary {
    /// Summarises `records` of a run of `planned_requests` that took `duration_s`.
    pub fn compute(
        records: &[RequestRecord],
        planned_requests: usize,
        duration_s: f64,
        slo: Slo,
    ) -> Summary {
        let ok: Vec<&RequestRecord> = records
            .iter()
            .filter(|r| r.outcome == Outcome::Ok)
            .collect();
        let errors = records
            .iter()
            .filter(|r| r.outcome == Outcome::Error)
            .count();
        let cancelled = records
            .iter()
            .filter(|r| r.outcome == Outcome::Cancelled)
            .count();
        let per_s = |x: f64| {
            if duration_s > 0.0 {
                x / duration_s
            } else {
                0.0
            }
        };
        let input_tokens: u64 = ok.iter().map(|r| r.input_tokens.unwrap_or(0) as u64).sum();
        let output_tokens: u64 = ok.iter().map(|r| r.output_tokens as u64).sum();
        let planned_input_tokens: u64 = ok
            .iter()
            .filter_map(|r| r.planned_input_tokens)
            .map(u64::from)
            .sum();
        let expected_output_tokens: u64 = ok.iter().map(|r| r.expected_output_tokens as u64).sum();
        let cached: Vec<u32> = records.iter().filter_map(|r| r.cached_tokens).collect();
        let mut error_kinds = BTreeMap::new();
        for r in records.iter().filter(|r| r.outcome == Outcome::Error) {
            let msg = r.error.clone().unwrap_or_default();
            *error_kinds.entry(msg).or_insert(0) += 1;
        }
        let goodput = (slo.ttft_ms.is_some() || slo.itl_ms.is_some()).then(|| {
            let good = ok.iter().filter(|r| meets_slo(r, &slo)).count();
            let ended = ok.len() + errors;
            Goodput {
                slo,
                good_requests: good,
                good_requests_per_s: per_s(good as f64),
                good_fraction: if ended > 0 {
                    good as f64 / ended as f64
                } else {
                    0.0
                },
            }
        });
        Summary {
            planned_requests,
            ok: ok.len(),
            errors,
            cancelled,
            not_sent: planned_requests.saturating_sub(records.len()),
            retried: records.iter().filter(|r| r.retries > 0).count(),
            duration_s,
            requests_per_s: per_s(ok.len() as f64),
            input_tokens,
            output_tokens,
            usage_reported: ok.iter().filter(|r| r.usage_reported).count(),
            planned_input_tokens,
            expected_output_tokens,
            input_tokens_per_s: per_s(input_tokens as f64),
            output_tokens_per_s: per_s(output_tokens as f64),
            ttft_ms: Distribution::of(ok.iter().filter_map(|r| r.ttft_ms)),
            itl_ms: Distribution::of(ok.iter().flat_map(|r| r.itl_ms.iter().copied())),
            tpot_ms: Distribution::of(ok.iter().filter_map(|r| r.time_per_output_token_ms())),
            e2e_ms: Distribution::of(ok.iter().map(|r| r.e2e_ms)),
            goodput,
            prefix_cache_hit_rate: None,
            cached_tokens: (!cached.is_empty()).then(|| cached.iter().map(|&c| c as u64).sum()),
            error_kinds,
        }
    }
}

/// Whether a successful request met every set SLO.
pub fn meets_slo(r: &RequestRecord, slo: &Slo) -> bool {
    let ttft_ok = slo
        .ttft_ms
        .is_none_or(|limit| r.ttft_ms.is_some_and(|t| t <= limit));
    let itl_ok = slo.itl_ms.is_none_or(|limit| {
        r.time_per_output_token_ms()
            .is_none_or(|tpot| tpot <= limit)
    });
    ttft_ok && itl_ok
}

/// What was run, against what.
#[derive(Debug, Clone, Serialize)]
pub struct RunInfo {
    pub url: String,
    pub model: String,
    pub endpoint: Endpoint,
    pub mode: LoadMode,
    pub mode_description: String,
    pub source: String,
    pub seed: u64,
    pub skipped_trace_rows: usize,
}

/// The full result of `rotor bench`.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub run: RunInfo,
    pub summary: Summary,
    /// The prefix-reuse comparison of `--scenario shared-prefix`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shared_prefix: Option<SharedPrefixSummary>,
    pub records: Vec<RequestRecord>,
}

fn fmt_opt(v: Option<f64>, unit: &str) -> String {
    v.map_or_else(|| "n/a".to_string(), |v| format!("{v:.2}{unit}"))
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.summary;
        let r = &self.run;
        let mut out = String::new();
        let _ = writeln!(out, "==================== rotor bench ====================");
        let _ = writeln!(out, "{:<22}{}", "target", r.url);
        let _ = writeln!(out, "{:<22}{} via {}", "model", r.model, r.endpoint.path());
        let _ = writeln!(out, "{:<22}{}", "load", r.mode_description);
        let _ = writeln!(out, "{:<22}{}", "source", r.source);
        if r.skipped_trace_rows > 0 {
            let _ = writeln!(out, "{:<22}{}", "skipped trace rows", r.skipped_trace_rows);
        }
        let _ = writeln!(
            out,
            "{:<22}{} ok, {} errors, {} cancelled, {} not sent (of {})",
            "requests", s.ok, s.errors, s.cancelled, s.not_sent, s.planned_requests
        );
        let _ = writeln!(
            out,
            "{:<22}{} (server closed a kept-alive connection; sent again on a new one)",
            "retried", s.retried
        );
        let _ = writeln!(out, "{:<22}{:.2} s", "duration", s.duration_s);
        let _ = writeln!(
            out,
            "{:<22}{:.3} req/s",
            "request throughput", s.requests_per_s
        );
        let _ = writeln!(
            out,
            "{:<22}{:.1} tok/s ({} tokens)",
            "output throughput", s.output_tokens_per_s, s.output_tokens
        );
        let _ = writeln!(
            out,
            "{:<22}{:.1} tok/s ({} tokens)",
            "input throughput", s.input_tokens_per_s, s.input_tokens
        );
        let _ = writeln!(
            out,
            "{:<22}usage in {} of {} ok; prompt {} (planned {}), output {} (asked {})",
            "token counts",
            s.usage_reported,
            s.ok,
            s.input_tokens,
            s.planned_input_tokens,
            s.output_tokens,
            s.expected_output_tokens
        );
        let _ = writeln!(
            out,
            "{:<22}{:>10}{:>10}{:>10}{:>10}{:>10}",
            "latency (ms)", "mean", "p50", "p90", "p99", "max"
        );
        for (name, d) in [
            ("TTFT", &s.ttft_ms),
            ("ITL", &s.itl_ms),
            ("TPOT", &s.tpot_ms),
            ("E2E", &s.e2e_ms),
        ] {
            match d {
                Some(d) => {
                    let _ = writeln!(
                        out,
                        "  {:<20}{:>10.2}{:>10.2}{:>10.2}{:>10.2}{:>10.2}",
                        name, d.mean, d.p50, d.p90, d.p99, d.max
                    );
                }
                None => {
                    let _ = writeln!(out, "  {name:<20}{:>10}", "n/a");
                }
            }
        }
        match &s.goodput {
            Some(g) => {
                let _ = writeln!(
                    out,
                    "{:<22}{:.3} req/s, {} good ({:.1}% of ended) under TTFT <= {} ms, ITL <= {} ms",
                    "goodput",
                    g.good_requests_per_s,
                    g.good_requests,
                    g.good_fraction * 100.0,
                    fmt_opt(g.slo.ttft_ms, ""),
                    fmt_opt(g.slo.itl_ms, ""),
                );
            }
            None => {
                let _ = writeln!(
                    out,
                    "{:<22}n/a (no --slo-ttft-ms / --slo-itl-ms)",
                    "goodput"
                );
            }
        }
        let _ = writeln!(
            out,
            "{:<22}{}",
            "prefix cache hit rate",
            s.prefix_cache_hit_rate.map_or_else(
                || "n/a".to_string(),
                |h| format!("{:.1}% (server /metrics)", h * 100.0)
            )
        );
        let _ = writeln!(
            out,
            "{:<22}{}",
            "cached prompt tokens",
            s.cached_tokens.map_or_else(
                || "n/a".to_string(),
                |c| format!("{c} of {} (usage)", s.input_tokens)
            )
        );
        for (msg, n) in s.error_kinds.iter().take(5) {
            let _ = writeln!(out, "{:<22}{n} x {msg}", "error");
        }
        f.write_str(&out)?;
        match &self.shared_prefix {
            Some(sp) => write!(f, "{sp}"),
            None => Ok(()),
        }
    }
}

//! Traffic from the frontends' `/metrics` (Prometheus text): the counters the planner diffs
//! between two scrapes into an [`Observation`].
//!
//! Read: `rotor_frontend_requests_total` of the completion endpoints (requests),
//! `rotor_frontend_prompt_tokens_total`, `rotor_frontend_completion_tokens_total`, and the
//! `_sum`/`_count` of `rotor_frontend_time_to_first_token_seconds` and
//! `rotor_frontend_inter_token_latency_seconds`, and the gauge `rotor_frontend_inflight_requests`
//! (the backlog), summed over labels and frontends.

use crate::observation::{LatencyObservation, Observation};

/// Cumulative counters of one or more frontends.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct FrontendCounters {
    pub requests: f64,
    pub prompt_tokens: f64,
    pub completion_tokens: f64,
    pub ttft_sum_s: f64,
    pub ttft_count: f64,
    pub itl_sum_s: f64,
    pub itl_count: f64,
    /// A gauge: generation requests being served now.
    pub inflight: f64,
}

impl FrontendCounters {
    /// Reads the counters out of a `/metrics` body; unknown lines are ignored.
    pub fn parse(text: &str) -> Self {
        let mut c = Self::default();
        for line in text.lines() {
            if line.starts_with('#') {
                continue;
            }
            let Some((key, value)) = line.rsplit_once(' ') else {
                continue;
            };
            let Ok(v) = value.trim().parse::<f64>() else {
                continue;
            };
            if !v.is_finite() {
                continue;
            }
            let (name, labels) = key.split_once('{').unwrap_or((key, ""));
            let slot = match name {
                "rotor_frontend_requests_total" if labels.contains("completions") => {
                    &mut c.requests
                }
                "rotor_frontend_prompt_tokens_total" => &mut c.prompt_tokens,
                "rotor_frontend_completion_tokens_total" => &mut c.completion_tokens,
                "rotor_frontend_time_to_first_token_seconds_sum" => &mut c.ttft_sum_s,
                "rotor_frontend_time_to_first_token_seconds_count" => &mut c.ttft_count,
                "rotor_frontend_inter_token_latency_seconds_sum" => &mut c.itl_sum_s,
                "rotor_frontend_inter_token_latency_seconds_count" => &mut c.itl_count,
                "rotor_frontend_inflight_requests" => &mut c.inflight,
                _ => continue,
            };
            *slot += v;
        }
        c
    }

    pub fn add(&mut self, o: &Self) {
        self.requests += o.requests;
        self.prompt_tokens += o.prompt_tokens;
        self.completion_tokens += o.completion_tokens;
        self.ttft_sum_s += o.ttft_sum_s;
        self.ttft_count += o.ttft_count;
        self.itl_sum_s += o.itl_sum_s;
        self.itl_count += o.itl_count;
        self.inflight += o.inflight;
    }

    /// The traffic between `prev` and `self`, `interval_s` apart. A counter that went down (a
    /// frontend restarted) counts from zero. Replicas are left for the connector to fill in.
    pub fn observation_since(&self, prev: &Self, interval_s: f64) -> Observation {
        let d = |cur: f64, old: f64| if cur >= old { cur - old } else { cur };
        let latency = |sum: f64, count: f64| LatencyObservation {
            count: count.round() as u64,
            mean_ms: if count > 0.0 {
                1000.0 * sum / count
            } else {
                0.0
            },
        };
        Observation {
            interval_s,
            requests: d(self.requests, prev.requests).round() as u64,
            input_tokens: d(self.prompt_tokens, prev.prompt_tokens).round() as u64,
            cached_tokens: 0,
            output_tokens: d(self.completion_tokens, prev.completion_tokens).round() as u64,
            ttft: latency(
                d(self.ttft_sum_s, prev.ttft_sum_s),
                d(self.ttft_count, prev.ttft_count),
            ),
            itl: latency(
                d(self.itl_sum_s, prev.itl_sum_s),
                d(self.itl_count, prev.itl_count),
            ),
            inflight_requests: self.inflight.round() as u64,
            replicas: Default::default(),
        }
    }
}

//! The list of requests a run will send: prompts (as [`PromptSpec`]s), wanted output lengths
//! and, for open-loop modes, send times; plus the resolved [`LoadMode`].

use std::time::Duration;

use crate::config::{BenchConfig, Endpoint, LoadMode, PromptFormat, ScenarioConfig, SourceConfig};
use crate::error::Error;
use crate::prompt::{PromptBuilder, PromptSpec};
use crate::rng::SplitMix64;
use crate::schedule::{poisson_arrivals, scaled};
use crate::trace::{self, Trace, TracePrompt};

/// Synthetic runs without --num-requests send this many requests.
pub const DEFAULT_SYNTHETIC_REQUESTS: usize = 100;

/// One request to send.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestSpec {
    pub index: usize,
    /// Offset from the start of the run (open-loop modes only).
    pub send_at: Option<Duration>,
    pub prompt: PromptSpec,
    pub output_tokens: u32,
}

/// A run's requests and how to issue them.
#[derive(Debug, Clone)]
pub struct Workload {
    pub requests: Vec<RequestSpec>,
    pub mode: LoadMode,
    pub endpoint: Endpoint,
    pub prompts: PromptBuilder,
    /// Human-readable description of the source, for the report.
    pub source: String,
    /// Trace rows dropped as unusable (BurstGPT's zero-token failures).
    pub skipped_trace_rows: usize,
}

/// Builds the workload of `config`, reading the trace file if there is one. The shared-prefix
/// scenario gets a fresh nonce from the clock, so its prefixes are new to the server.
pub fn build(config: &BenchConfig) -> Result<Workload, Error> {
    if let ScenarioConfig::SharedPrefix {
        prefix_tokens,
        repetitions,
    } = config.scenario
    {
        let nonce = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        return Ok(crate::shared_prefix::build(
            config,
            prefix_tokens,
            repetitions,
            nonce,
        ));
    }
    match &config.source {
        SourceConfig::Synthetic { .. } => Ok(build_from_rows(config, None)),
        SourceConfig::Trace { path, format } => {
            let trace = trace::load(path, *format)?;
            Ok(build_from_rows(config, Some(trace)))
        }
    }
}

/// Builds the workload from an already parsed trace (`None`: synthetic prompts).
pub fn build_from_rows(config: &BenchConfig, trace: Option<Trace>) -> Workload {
    let has_text = trace.as_ref().is_some_and(|t| {
        matches!(
            t.rows.first().map(|r| &r.prompt),
            Some(TracePrompt::Text(_))
        )
    });
    let endpoint = config.endpoint.unwrap_or(if has_text {
        Endpoint::Chat
    } else {
        Endpoint::Completions
    });
    let has_timestamps = trace
        .as_ref()
        .is_some_and(|t| t.rows.iter().all(|r| r.timestamp.is_some()));
    let mode = resolve_mode(config, has_timestamps);
    let prompts = PromptBuilder {
        seed: config.seed,
        token_ids: config.token_ids.clone(),
        block_size_tokens: config.block_size_tokens,
        max_input_tokens: config.max_input_tokens,
        as_text: endpoint == Endpoint::Chat || config.prompt_format == PromptFormat::Text,
    };
    let mut lengths = SplitMix64::for_stream(config.seed, 0x6c65_6e73);
    let cap_output = |n: u32| config.max_output_tokens.map_or(n, |cap| n.min(cap)).max(1);
    let (mut requests, source, skipped_trace_rows) = match trace {
        None => {
            let n = config.num_requests.unwrap_or(DEFAULT_SYNTHETIC_REQUESTS);
            let SourceConfig::Synthetic { input_len, prefix } = &config.source else {
                unreachable!("invariant: no trace means a synthetic source")
            };
            // Conversations take turns in a seeded random order, as users do: a fixed rotation
            // would hand a round-robin router the same worker for every turn of a group.
            let mut groups = SplitMix64::for_stream(config.seed, 0x6772_6f75);
            let requests: Vec<RequestSpec> = (0..n)
                .map(|i| RequestSpec {
                    index: i,
                    send_at: None,
                    prompt: PromptSpec::Random {
                        prefix_group: prefix.map(|p| groups.next_in(0, p.groups as u64) as u32),
                        prefix_tokens: prefix.map_or(0, |p| p.prefix_tokens),
                        unique_tokens: input_len.sample(&mut lengths),
                        stream: i as u64,
                    },
                    output_tokens: cap_output(config.output_len.sample(&mut lengths)),
                })
                .collect();
            let source = match prefix {
                Some(p) => format!(
                    "synthetic input {input_len} + {}-token prefix in {} groups, output {}",
                    p.prefix_tokens, p.groups, config.output_len
                ),
                None => format!("synthetic input {input_len}, output {}", config.output_len),
            };
            (requests, source, 0)
        }
        Some(trace) => {
            let n = config.num_requests.unwrap_or(trace.rows.len());
            let requests: Vec<RequestSpec> = trace
                .rows
                .into_iter()
                .take(n)
                .enumerate()
                .map(|(i, row)| {
                    let output = row
                        .output_tokens
                        .unwrap_or_else(|| config.output_len.sample(&mut lengths));
                    RequestSpec {
                        index: i,
                        send_at: row.timestamp,
                        prompt: match row.prompt {
                            TracePrompt::Length(tokens) => PromptSpec::Random {
                                prefix_group: None,
                                prefix_tokens: 0,
                                unique_tokens: tokens,
                                stream: i as u64,
                            },
                            TracePrompt::HashIds {
                                input_tokens,
                                hash_ids,
                            } => PromptSpec::HashBlocks {
                                hash_ids,
                                trace_input_tokens: input_tokens,
                            },
                            TracePrompt::Text(text) => PromptSpec::Text(text),
                        },
                        output_tokens: cap_output(output),
                    }
                })
                .collect();
            let source = match &config.source {
                SourceConfig::Trace { path, .. } => {
                    format!("{} trace {}", trace.format.name(), path.display())
                }
                SourceConfig::Synthetic { .. } => format!("{} trace", trace.format.name()),
            };
            (requests, source, trace.skipped_rows)
        }
    };
    apply_schedule(&mut requests, mode, config.seed);
    Workload {
        requests,
        mode,
        endpoint,
        prompts,
        source,
        skipped_trace_rows,
    }
}

/// Rate wins over a trace's own schedule; concurrency alone means a closed loop; a trace with
/// timestamps and neither flag replays its schedule; otherwise one request at a time.
fn resolve_mode(config: &BenchConfig, has_timestamps: bool) -> LoadMode {
    match (config.request_rate, config.concurrency) {
        (Some(rate_per_s), cap) => LoadMode::Poisson {
            rate_per_s,
            max_in_flight: cap,
        },
        (None, Some(concurrency)) if !has_timestamps => LoadMode::Closed { concurrency },
        (None, cap) if has_timestamps => LoadMode::FixedSchedule {
            time_scale: config.time_scale,
            max_in_flight: cap,
        },
        (None, _) => LoadMode::Closed { concurrency: 1 },
    }
}

fn apply_schedule(requests: &mut [RequestSpec], mode: LoadMode, seed: u64) {
    match mode {
        LoadMode::Closed { .. } => requests.iter_mut().for_each(|r| r.send_at = None),
        LoadMode::Poisson { rate_per_s, .. } => {
            let arrivals = poisson_arrivals(rate_per_s, requests.len(), seed);
            for (r, at) in requests.iter_mut().zip(arrivals) {
                r.send_at = Some(at);
            }
        }
        LoadMode::FixedSchedule { time_scale, .. } => {
            for r in requests.iter_mut() {
                r.send_at = r.send_at.map(|at| scaled(at, time_scale));
            }
        }
    }
}

/// A short description of a mode for the report.
pub fn describe_mode(mode: &LoadMode) -> String {
    let cap = |c: &Option<usize>| c.map_or(String::new(), |c| format!(", at most {c} in flight"));
    match mode {
        LoadMode::Closed { concurrency } => format!("closed loop, concurrency {concurrency}"),
        LoadMode::Poisson {
            rate_per_s,
            max_in_flight,
        } => format!("Poisson {rate_per_s} req/s{}", cap(max_in_flight)),
        LoadMode::FixedSchedule {
            time_scale,
            max_in_flight,
        } => format!("trace schedule x{time_scale}{}", cap(max_in_flight)),
    }
}

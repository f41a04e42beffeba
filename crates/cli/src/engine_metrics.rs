//! The engines' load and KV-cache occupancy in /metrics.

use std::fmt::Write;

use rotor_engine::{EngineHandle, EngineStats};
use rotor_frontend::MetricsSource;

/// Renders engines' [`EngineStats`] as Prometheus metrics, one sample per engine.
pub struct EngineMetrics {
    /// Each engine with the labels of its samples, e.g. `model="m"` or `model="m",worker="…"`.
    pub engines: Vec<(String, EngineHandle)>,
}

type Field = fn(&EngineStats) -> f64;

/// Name, type, help and value of every engine metric.
const METRICS: &[(&str, &str, &str, Field)] = &[
    (
        "rotor_engine_running_requests",
        "gauge",
        "Sequences holding KV blocks.",
        |s| s.running as f64,
    ),
    (
        "rotor_engine_waiting_requests",
        "gauge",
        "Requests queued for admission.",
        |s| s.waiting as f64,
    ),
    (
        "rotor_engine_steps_total",
        "counter",
        "Engine steps run.",
        |s| s.steps as f64,
    ),
    (
        "rotor_engine_processed_tokens_total",
        "counter",
        "Tokens fed to the model.",
        |s| s.tokens_processed as f64,
    ),
    (
        "rotor_engine_generated_tokens_total",
        "counter",
        "Tokens sampled.",
        |s| s.tokens_generated as f64,
    ),
    (
        "rotor_engine_preemptions_total",
        "counter",
        "Sequences preempted for KV space.",
        |s| s.preemptions as f64,
    ),
    (
        "rotor_kv_cache_blocks_used",
        "gauge",
        "KV blocks held by sequences.",
        |s| s.blocks_used as f64,
    ),
    (
        "rotor_kv_cache_blocks_total",
        "gauge",
        "KV blocks in the pool.",
        |s| s.blocks_total as f64,
    ),
    (
        "rotor_kv_cache_prefix_queries_tokens_total",
        "counter",
        "Prompt tokens looked up in the prefix cache at a request's first admission.",
        |s| s.prefix_cache_queries_tokens as f64,
    ),
    (
        "rotor_kv_cache_prefix_hit_tokens_total",
        "counter",
        "Of those, prompt tokens served from the prefix cache.",
        |s| s.prefix_cache_hit_tokens as f64,
    ),
    (
        "rotor_kv_cache_recompute_queries_tokens_total",
        "counter",
        "Tokens looked up again when a preempted request is re-admitted to be recomputed.",
        |s| s.prefix_cache_recompute_queries_tokens as f64,
    ),
    (
        "rotor_kv_cache_recompute_hit_tokens_total",
        "counter",
        "Of those, tokens served from the prefix cache (mostly the request's own blocks).",
        |s| s.prefix_cache_recompute_hit_tokens as f64,
    ),
    (
        "rotor_kv_cache_evictions_total",
        "counter",
        "Cached blocks evicted for reuse.",
        |s| s.prefix_cache_evictions as f64,
    ),
];

impl MetricsSource for EngineMetrics {
    fn render(&self, out: &mut String) {
        let stats: Vec<(&str, EngineStats)> = self
            .engines
            .iter()
            .map(|(labels, engine)| (labels.as_str(), engine.stats()))
            .collect();
        for (name, kind, help, field) in METRICS {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (labels, s) in &stats {
                let _ = writeln!(out, "{name}{{{labels}}} {}", field(s));
            }
        }
    }
}

//! The engine's load and KV-cache occupancy in /metrics.

use std::fmt::Write;

use rotor_engine::EngineHandle;
use rotor_frontend::MetricsSource;

/// Renders an engine's [`rotor_engine::EngineStats`] as Prometheus metrics.
pub struct EngineMetrics {
    pub engine: EngineHandle,
    pub model: String,
}

impl MetricsSource for EngineMetrics {
    fn render(&self, out: &mut String) {
        let s = self.engine.stats();
        let model = &self.model;
        let mut metric = |name: &str, kind: &str, help: &str, value: f64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name}{{model=\"{model}\"}} {value}"
            );
        };
        metric(
            "rotor_engine_running_requests",
            "gauge",
            "Sequences holding KV blocks.",
            s.running as f64,
        );
        metric(
            "rotor_engine_waiting_requests",
            "gauge",
            "Requests queued for admission.",
            s.waiting as f64,
        );
        metric(
            "rotor_engine_steps_total",
            "counter",
            "Engine steps run.",
            s.steps as f64,
        );
        metric(
            "rotor_engine_processed_tokens_total",
            "counter",
            "Tokens fed to the model.",
            s.tokens_processed as f64,
        );
        metric(
            "rotor_engine_generated_tokens_total",
            "counter",
            "Tokens sampled.",
            s.tokens_generated as f64,
        );
        metric(
            "rotor_engine_preemptions_total",
            "counter",
            "Sequences preempted for KV space.",
            s.preemptions as f64,
        );
        metric(
            "rotor_kv_cache_blocks_used",
            "gauge",
            "KV blocks held by sequences.",
            s.blocks_used as f64,
        );
        metric(
            "rotor_kv_cache_blocks_total",
            "gauge",
            "KV blocks in the pool.",
            s.blocks_total as f64,
        );
        metric(
            "rotor_kv_cache_prefix_queries_tokens_total",
            "counter",
            "Prompt tokens looked up in the prefix cache.",
            s.prefix_cache_queries_tokens as f64,
        );
        metric(
            "rotor_kv_cache_prefix_hit_tokens_total",
            "counter",
            "Prompt tokens served from the prefix cache.",
            s.prefix_cache_hit_tokens as f64,
        );
        metric(
            "rotor_kv_cache_evictions_total",
            "counter",
            "Cached blocks evicted for reuse.",
            s.prefix_cache_evictions as f64,
        );
    }
}

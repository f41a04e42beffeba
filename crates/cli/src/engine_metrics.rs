//! The engines' load, KV-cache occupancy, KV offload tiers (one sample per tier, `tier="host"`
//! for G2 and `tier="disk"` for G3) and KV block transfers in /metrics.

use std::fmt::Write;

use rotor_engine::{EngineHandle, EngineStats, KvImportRejectReason, TierStats};
use rotor_frontend::MetricsSource;

/// Renders engines' [`EngineStats`] as Prometheus metrics, one sample per engine.
pub struct EngineMetrics {
    /// Each engine with the labels of its samples, e.g. `model="m"` or `model="m",worker="…"`.
    pub engines: Vec<(String, EngineHandle)>,
    /// Mocker workers' simulated KV links (`--mocker-kv-bandwidth`), labelled as their engines.
    pub kv_links: Vec<(String, std::sync::Arc<rotor_worker::SimulatedKvLink>)>,
    /// Workers' prefill exports (disaggregated serving, prefill side), labelled as their engines.
    pub prefill_exports: Vec<(String, std::sync::Arc<rotor_worker::PrefillExportStats>)>,
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
        "rotor_engine_prompt_logprob_requests_total",
        "counter",
        "Requests whose prompt was scored (prompt logprobs delivered).",
        |s| s.prompt_logprob_requests as f64,
    ),
    (
        "rotor_engine_embedding_requests_total",
        "counter",
        "Embedding requests whose embedding was delivered.",
        |s| s.embedding_requests as f64,
    ),
    (
        "rotor_engine_kv_copy_on_write_blocks_total",
        "counter",
        "Sequences admitted with a copy of a prompt block another sequence computed (n > 1 siblings).",
        |s| s.kv_copy_on_write_blocks as f64,
    ),
    (
        "rotor_engine_kv_copy_on_write_tokens_total",
        "counter",
        "Prompt tokens served by copy-on-write copies instead of being computed.",
        |s| s.kv_copy_on_write_tokens as f64,
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
    (
        "rotor_engine_kv_tier_offloads_dropped_total",
        "counter",
        "Evicted KV blocks not offloaded because the tiers' writer queue was full.",
        |s| s.kv_tiers.offloads_dropped as f64,
    ),
    (
        "rotor_engine_kv_blocks_exported_total",
        "counter",
        "KV blocks exported (disaggregated serving, peers).",
        |s| s.kv_transfer.exported_blocks as f64,
    ),
    (
        "rotor_engine_kv_blocks_imported_total",
        "counter",
        "KV blocks imported and registered (not those already cached).",
        |s| s.kv_transfer.imported_blocks as f64,
    ),
    (
        "rotor_engine_constrained_requests_total",
        "counter",
        "Grammar-constrained requests accepted (json_object, json_schema, regex, choice, grammar).",
        |s| s.constraints.requests as f64,
    ),
    (
        "rotor_engine_constraint_rejections_total",
        "counter",
        "Constrained requests refused: a schema keyword or grammar the engine cannot enforce.",
        |s| s.constraints.rejections as f64,
    ),
    (
        "rotor_engine_constraint_masks_total",
        "counter",
        "Token masks computed for constrained sequences.",
        |s| s.constraints.masks as f64,
    ),
    (
        "rotor_engine_constraint_mask_seconds_total",
        "counter",
        "Time spent computing token masks (on a helper thread, during the forward pass).",
        |s| s.constraints.mask_nanos as f64 / 1e9,
    ),
    (
        "rotor_engine_constraint_mask_seconds_max",
        "gauge",
        "The longest single token mask so far.",
        |s| s.constraints.mask_nanos_max as f64 / 1e9,
    ),
    (
        "rotor_engine_constraint_mask_wait_seconds_total",
        "counter",
        "Time the engine waited for token masks after the forward pass (mask time not hidden).",
        |s| s.constraints.mask_wait_nanos as f64 / 1e9,
    ),
    (
        "rotor_engine_constraint_forced_tokens_total",
        "counter",
        "Tokens a grammar forced, appended without sampling (fast-forward).",
        |s| s.constraints.forced_tokens as f64,
    ),
    (
        "rotor_engine_constraint_failures_total",
        "counter",
        "Constrained sequences failed mid-generation (matcher error).",
        |s| s.constraints.failures as f64,
    ),
];

type TierField = fn(&TierStats) -> f64;

/// Name, type, help and value of every per-tier metric (all zero for a tier not configured).
const TIER_METRICS: &[(&str, &str, &str, TierField)] = &[
    (
        "rotor_engine_kv_tier_blocks",
        "gauge",
        "KV blocks held by the offload tier (host: every worker's blocks in the shared pool).",
        |t| t.blocks_held as f64,
    ),
    (
        "rotor_engine_kv_tier_bytes",
        "gauge",
        "Bytes of KV blocks held by the offload tier.",
        |t| t.bytes_held as f64,
    ),
    (
        "rotor_engine_kv_tier_hits_total",
        "counter",
        "KV blocks a prefix lookup found in the tier, beyond the KV cache's own prefix.",
        |t| t.hits as f64,
    ),
    (
        "rotor_engine_kv_tier_offloads_total",
        "counter",
        "KV blocks written to the tier.",
        |t| t.offloads as f64,
    ),
    (
        "rotor_engine_kv_tier_onboards_total",
        "counter",
        "KV blocks loaded from the tier, verified and imported into the KV cache.",
        |t| t.onboards as f64,
    ),
    (
        "rotor_engine_kv_tier_onboard_seconds_total",
        "counter",
        "Time spent loading, verifying and importing blocks from the tier.",
        |t| t.onboard_time.as_secs_f64(),
    ),
    (
        "rotor_engine_kv_tier_failed_loads_total",
        "counter",
        "KV blocks found in the tier that could not be delivered (read error, corrupt bytes, \
         segment removed); the request recomputed them.",
        |t| t.failed_loads as f64,
    ),
    (
        "rotor_engine_kv_tier_write_errors_total",
        "counter",
        "Writes to the tier that failed (disk full, I/O error, contention) and were skipped.",
        |t| t.write_errors as f64,
    ),
    (
        "rotor_engine_kv_tier_not_admitted_total",
        "counter",
        "KV blocks offered to the tier but not written (disk frequency filter, too large).",
        |t| t.not_admitted as f64,
    ),
];

const REJECTIONS: &str = "rotor_engine_kv_import_rejections_total";

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
        for (name, kind, help, field) in TIER_METRICS {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (labels, s) in &stats {
                for (tier, t) in [("host", &s.kv_tiers.host), ("disk", &s.kv_tiers.disk)] {
                    let _ = writeln!(out, "{name}{{{labels},tier=\"{tier}\"}} {}", field(t));
                }
            }
        }
        if !self.kv_links.is_empty() {
            let totals: Vec<(&str, (u64, f64))> = self
                .kv_links
                .iter()
                .map(|(labels, link)| (labels.as_str(), link.totals()))
                .collect();
            let (bytes, secs) = (
                "rotor_mocker_kv_link_bytes_total",
                "rotor_mocker_kv_link_seconds_total",
            );
            let _ = writeln!(
                out,
                "# HELP {bytes} KV bytes imported over the mocker's simulated link.\n\
                 # TYPE {bytes} counter"
            );
            for (labels, (b, _)) in &totals {
                let _ = writeln!(out, "{bytes}{{{labels}}} {b}");
            }
            let _ = writeln!(
                out,
                "# HELP {secs} Time the mocker's simulated KV link was busy (bytes / bandwidth).\n\
                 # TYPE {secs} counter"
            );
            for (labels, (_, t)) in &totals {
                let _ = writeln!(out, "{secs}{{{labels}}} {t}");
            }
        }
        if !self.prefill_exports.is_empty() {
            let name = "rotor_kv_prefill_exported_blocks_total";
            let _ = writeln!(
                out,
                "# HELP {name} KV blocks a prefill worker streamed to decode workers, `when` the \
                 prompt was still being prefilled (overlapping the compute) or after.\n\
                 # TYPE {name} counter"
            );
            for (labels, stats) in &self.prefill_exports {
                let load =
                    |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
                let _ = writeln!(
                    out,
                    "{name}{{{labels},when=\"during_prefill\"}} {}\n\
                     {name}{{{labels},when=\"after_prefill\"}} {}",
                    load(&stats.early_blocks),
                    load(&stats.late_blocks)
                );
            }
        }
        let _ = writeln!(
            out,
            "# HELP {REJECTIONS} KV blocks refused by an import, by reason.\n\
             # TYPE {REJECTIONS} counter"
        );
        for (labels, s) in &stats {
            for reason in KvImportRejectReason::ALL {
                let _ = writeln!(
                    out,
                    "{REJECTIONS}{{{labels},reason=\"{}\"}} {}",
                    reason.label(),
                    s.kv_transfer.rejections(reason)
                );
            }
        }
    }
}

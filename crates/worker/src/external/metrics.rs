//! vLLM's Prometheus `/metrics` read into Rotor's [`WorkerLoad`]: running and waiting requests
//! and KV-cache usage, so the router's cost sees the engine's real load.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rotor_protocol::WorkerLoad;
use tokio_util::sync::CancellationToken;

use super::http;
use super::Shared;

/// The value of the first sample of `name` (any labels) in a Prometheus text exposition.
pub fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|line| {
            let rest = line.strip_prefix(name)?;
            let rest = match rest.chars().next()? {
                '{' => &rest[rest.find('}')? + 1..],
                ' ' => rest,
                _ => return None,
            };
            rest.split_whitespace().next()?.parse().ok()
        })
}

/// A label's value on the first sample of `name`.
pub fn label(text: &str, name: &str, key: &str) -> Option<String> {
    let line = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with('{'))?;
    let labels = &line[name.len() + 1..line.find('}')?];
    let pat = format!("{key}=\"");
    let start = labels.find(&pat)? + pat.len();
    let end = labels[start..].find('"')? + start;
    Some(labels[start..end].to_string())
}

/// What `vllm:cache_config_info` says about the KV cache.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheConfig {
    pub block_size: Option<usize>,
    pub num_blocks: Option<u64>,
}

pub fn cache_config(text: &str) -> CacheConfig {
    let get = |key| label(text, "vllm:cache_config_info", key).and_then(|v| v.parse::<f64>().ok());
    CacheConfig {
        block_size: get("block_size").map(|v| v as usize),
        num_blocks: get("num_gpu_blocks").map(|v| v as u64),
    }
}

/// The load in a vLLM exposition; `total_blocks` from `cache_config_info` (or `known_blocks`).
pub fn vllm_load(text: &str, known_blocks: Option<u64>) -> Option<WorkerLoad> {
    let running = sample(text, "vllm:num_requests_running")?;
    let waiting = sample(text, "vllm:num_requests_waiting").unwrap_or(0.0);
    let usage = sample(text, "vllm:kv_cache_usage_perc")
        .or_else(|| sample(text, "vllm:gpu_cache_usage_perc"))
        .unwrap_or(0.0);
    let total = cache_config(text)
        .num_blocks
        .or(known_blocks)
        .unwrap_or(1000);
    Some(WorkerLoad {
        active_blocks: (usage.clamp(0.0, 1.0) * total as f64).round() as u64,
        total_blocks: total,
        waiting: waiting.max(0.0) as u64,
        running: running.max(0.0) as u64,
    })
}

/// Reads vLLM's `/metrics` every `interval` into `load` until `stop` fires.
pub(crate) async fn poll_vllm(
    shared: Arc<Shared>,
    load: Arc<Mutex<Option<WorkerLoad>>>,
    known_blocks: Option<u64>,
    interval: Duration,
    stop: CancellationToken,
) {
    loop {
        let read = http::get_text(&shared.base, "/metrics").await;
        shared.stats.metrics_reads.fetch_add(1, Ordering::Relaxed);
        let parsed = match read {
            Ok((200, text)) => vllm_load(&text, known_blocks),
            _ => None,
        };
        if parsed.is_none() {
            shared.stats.metrics_errors.fetch_add(1, Ordering::Relaxed);
        }
        *load.lock().unwrap_or_else(PoisonError::into_inner) = parsed;
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(interval) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "# HELP vllm:num_requests_running x\n\
vllm:num_requests_running{engine=\"0\",model_name=\"smollm2\"} 2.0\n\
vllm:num_requests_waiting{engine=\"0\",model_name=\"smollm2\"} 3.0\n\
vllm:kv_cache_usage_perc{engine=\"0\",model_name=\"smollm2\"} 0.25\n\
vllm:cache_config_info{block_size=\"32\",cache_dtype=\"auto\",num_gpu_blocks=\"24\"} 1.0\n";

    #[test]
    fn reads_vllm_load_and_cache_config() {
        assert_eq!(
            cache_config(TEXT),
            CacheConfig {
                block_size: Some(32),
                num_blocks: Some(24)
            }
        );
        assert_eq!(
            vllm_load(TEXT, None),
            Some(WorkerLoad {
                active_blocks: 6,
                total_blocks: 24,
                waiting: 3,
                running: 2
            })
        );
        assert_eq!(vllm_load("other 1\n", None), None);
        assert_eq!(sample("a_b 1\na 2\n", "a"), Some(2.0));
    }
}

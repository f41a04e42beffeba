//! Reading counters from a Prometheus text exposition (GET /metrics), to measure the server's
//! prefix-cache hit rate over a run: `delta(hit tokens) / delta(queried tokens)` between a scrape
//! before and one after.

use serde::Serialize;

/// Prompt tokens served from the prefix cache.
pub const PREFIX_HIT_TOKENS: &str = "rotor_kv_cache_prefix_hit_tokens_total";
/// Prompt tokens looked up in the prefix cache.
pub const PREFIX_QUERY_TOKENS: &str = "rotor_kv_cache_prefix_queries_tokens_total";

/// Sum of every series of metric `name` (all label sets), or `None` if it has none.
pub fn metric_sum(text: &str, name: &str) -> Option<f64> {
    let mut total = None;
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') {
            continue;
        }
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        let rest = match rest.chars().next() {
            Some('{') => match rest.rfind('}') {
                Some(close) => &rest[close + 1..],
                None => continue,
            },
            Some(c) if c.is_whitespace() => rest,
            _ => continue, // a longer name sharing the prefix
        };
        if let Some(value) = rest
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<f64>().ok())
        {
            *total.get_or_insert(0.0) += value;
        }
    }
    total
}

/// The prefix-cache counters at one instant.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct CacheCounters {
    pub hit_tokens: f64,
    pub query_tokens: f64,
}

impl CacheCounters {
    /// Both counters from a scrape, or `None` if either is missing.
    pub fn from_exposition(text: &str) -> Option<CacheCounters> {
        Some(CacheCounters {
            hit_tokens: metric_sum(text, PREFIX_HIT_TOKENS)?,
            query_tokens: metric_sum(text, PREFIX_QUERY_TOKENS)?,
        })
    }

    /// Hit rate between two scrapes; `None` when nothing was queried in between.
    pub fn hit_rate_since(&self, before: &CacheCounters) -> Option<f64> {
        let queried = self.query_tokens - before.query_tokens;
        (queried > 0.0).then(|| (self.hit_tokens - before.hit_tokens) / queried)
    }
}

/// Scrapes `url`; any failure (unreachable, non-200, counters absent) gives `None`.
pub async fn scrape(client: &reqwest::Client, url: &str) -> Option<CacheCounters> {
    let resp = match client.get(url).send().await {
        Ok(r) if r.status().is_success() => r,
        Ok(r) => {
            tracing::warn!(url, status = %r.status(), "metrics scrape failed");
            return None;
        }
        Err(e) => {
            tracing::warn!(url, error = %e, "metrics scrape failed");
            return None;
        }
    };
    let text = resp.text().await.ok()?;
    CacheCounters::from_exposition(&text)
}

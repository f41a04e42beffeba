//! Mooncake JSONL: `{"timestamp": ms, "input_length": n, "output_length": n, "hash_ids": [..]}`.

use std::time::Duration;

use serde::Deserialize;

use super::{TracePrompt, TraceRow};
use crate::error::Error;

#[derive(Deserialize)]
struct Row {
    timestamp: u64,
    input_length: u32,
    output_length: u32,
    hash_ids: Vec<u64>,
}

/// Parses Mooncake JSONL; blank lines are ignored. Timestamps are milliseconds and are rebased
/// on the first row's.
pub fn parse_mooncake(text: &str) -> Result<Vec<TraceRow>, Error> {
    let mut rows = Vec::new();
    let mut first_ms = None;
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let bad = |reason: String| Error::TraceRow {
            format: "mooncake",
            line: i + 1,
            reason,
        };
        let row: Row = serde_json::from_str(line).map_err(|e| bad(e.to_string()))?;
        if row.hash_ids.is_empty() || row.input_length == 0 {
            return Err(bad("empty prompt (no hash_ids or input_length 0)".into()));
        }
        let first = *first_ms.get_or_insert(row.timestamp);
        rows.push(TraceRow {
            timestamp: Some(Duration::from_millis(row.timestamp.saturating_sub(first))),
            prompt: TracePrompt::HashIds {
                input_tokens: row.input_length,
                hash_ids: row.hash_ids,
            },
            output_tokens: Some(row.output_length.max(1)),
        });
    }
    Ok(rows)
}

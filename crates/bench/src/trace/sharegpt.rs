//! ShareGPT JSON: an array of `{"id", "conversations": [{"from": "human", "value": text}, ..]}`.
//! The first human (or user) turn becomes the prompt; entries without one are an error.

use serde::Deserialize;

use super::{TracePrompt, TraceRow};
use crate::error::Error;

#[derive(Deserialize)]
struct Entry {
    conversations: Vec<Turn>,
}

#[derive(Deserialize)]
struct Turn {
    from: String,
    value: String,
}

/// Parses a ShareGPT file; errors name the entry (1-based) as the "line".
pub fn parse_sharegpt(text: &str) -> Result<Vec<TraceRow>, Error> {
    let entries: Vec<Entry> = serde_json::from_str(text).map_err(|e| Error::TraceRow {
        format: "sharegpt",
        line: e.line(),
        reason: e.to_string(),
    })?;
    entries
        .into_iter()
        .enumerate()
        .map(|(i, entry)| {
            let turn = entry
                .conversations
                .into_iter()
                .find(|t| t.from == "human" || t.from == "user")
                .ok_or_else(|| Error::TraceRow {
                    format: "sharegpt",
                    line: i + 1,
                    reason: "no human turn".into(),
                })?;
            Ok(TraceRow {
                timestamp: None,
                prompt: TracePrompt::Text(turn.value),
                output_tokens: None,
            })
        })
        .collect()
}

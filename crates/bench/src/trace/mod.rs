//! Request traces: parsers for Mooncake JSONL, Azure LLM inference CSV, BurstGPT CSV and ShareGPT
//! JSON, all producing [`TraceRow`]s with timestamps relative to the trace's first request.
//! Parsers take the file's text, so they are tested on inline samples.

mod azure;
mod burstgpt;
mod mooncake;
mod sharegpt;

use std::path::Path;
use std::time::Duration;

use serde::Serialize;

use crate::error::Error;

pub use azure::parse_azure;
pub use burstgpt::parse_burstgpt;
pub use mooncake::parse_mooncake;
pub use sharegpt::parse_sharegpt;

/// The supported trace formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum TraceFormat {
    /// JSONL `{timestamp ms, input_length, output_length, hash_ids}` (512-token blocks).
    Mooncake,
    /// CSV `TIMESTAMP,ContextTokens,GeneratedTokens` (Azure LLM inference 2023).
    Azure,
    /// CSV `Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type`.
    Burstgpt,
    /// JSON array of `{id, conversations: [{from, value}]}`; prompts only, no timestamps.
    Sharegpt,
}

impl TraceFormat {
    pub fn name(self) -> &'static str {
        match self {
            TraceFormat::Mooncake => "mooncake",
            TraceFormat::Azure => "azure",
            TraceFormat::Burstgpt => "burstgpt",
            TraceFormat::Sharegpt => "sharegpt",
        }
    }

    /// Guesses the format from the file's first bytes: `{` is Mooncake JSONL, `[` ShareGPT, and
    /// a CSV header names Azure or BurstGPT.
    pub fn detect(head: &str) -> Option<TraceFormat> {
        let first = head.trim_start().lines().next()?.trim();
        if first.starts_with('[') {
            Some(TraceFormat::Sharegpt)
        } else if first.starts_with('{') {
            Some(TraceFormat::Mooncake)
        } else if first.starts_with("TIMESTAMP,ContextTokens") {
            Some(TraceFormat::Azure)
        } else if first.starts_with("Timestamp,Model,Request tokens") {
            Some(TraceFormat::Burstgpt)
        } else {
            None
        }
    }
}

/// What a trace row says about the prompt.
#[derive(Debug, Clone, PartialEq)]
pub enum TracePrompt {
    /// Only a length (Azure, BurstGPT): the prompt is random tokens.
    Length(u32),
    /// Mooncake: the prompt length and its 512-token prefix blocks.
    HashIds {
        input_tokens: u32,
        hash_ids: Vec<u64>,
    },
    /// ShareGPT: the user's message.
    Text(String),
}

/// One request of a trace.
#[derive(Debug, Clone, PartialEq)]
pub struct TraceRow {
    /// Arrival relative to the trace's first row; `None` for prompt-only formats.
    pub timestamp: Option<Duration>,
    pub prompt: TracePrompt,
    /// Wanted output length; `None` when the trace does not say (ShareGPT).
    pub output_tokens: Option<u32>,
}

/// A parsed trace and how many rows were dropped as unusable (BurstGPT's failed requests with
/// zero tokens).
#[derive(Debug, Clone, PartialEq)]
pub struct Trace {
    pub format: TraceFormat,
    pub rows: Vec<TraceRow>,
    pub skipped_rows: usize,
}

/// Parses `text` in `format`.
pub fn parse(format: TraceFormat, text: &str) -> Result<Trace, Error> {
    let (rows, skipped_rows) = match format {
        TraceFormat::Mooncake => (parse_mooncake(text)?, 0),
        TraceFormat::Azure => (parse_azure(text)?, 0),
        TraceFormat::Burstgpt => parse_burstgpt(text)?,
        TraceFormat::Sharegpt => (parse_sharegpt(text)?, 0),
    };
    Ok(Trace {
        format,
        rows,
        skipped_rows,
    })
}

/// Reads and parses a trace file, guessing the format when `format` is `None`.
pub fn load(path: &Path, format: Option<TraceFormat>) -> Result<Trace, Error> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::TraceIo {
        path: path.to_path_buf(),
        source,
    })?;
    let format = match format.or_else(|| TraceFormat::detect(&text)) {
        Some(f) => f,
        None => {
            return Err(Error::UnknownTraceFormat {
                path: path.to_path_buf(),
            })
        }
    };
    let trace = parse(format, &text)?;
    if trace.rows.is_empty() {
        return Err(Error::EmptyTrace {
            path: path.to_path_buf(),
        });
    }
    Ok(trace)
}

/// Rebases absolute arrival times (seconds) on the earliest one.
fn relative_timestamps(seconds: &[f64]) -> Vec<Duration> {
    let start = seconds.iter().copied().fold(f64::INFINITY, f64::min);
    seconds
        .iter()
        .map(|s| Duration::from_secs_f64((s - start).max(0.0)))
        .collect()
}

/// Splits a CSV data line (these traces have no quoted fields) and checks its width.
fn csv_fields<'a>(
    format: &'static str,
    line_no: usize,
    line: &'a str,
    width: usize,
) -> Result<Vec<&'a str>, Error> {
    let fields: Vec<&str> = line.split(',').map(str::trim).collect();
    if fields.len() != width {
        return Err(Error::TraceRow {
            format,
            line: line_no,
            reason: format!("expected {width} fields, found {}", fields.len()),
        });
    }
    Ok(fields)
}

fn parse_field<T: std::str::FromStr>(
    format: &'static str,
    line_no: usize,
    name: &str,
    value: &str,
) -> Result<T, Error> {
    value.parse().map_err(|_| Error::TraceRow {
        format,
        line: line_no,
        reason: format!("bad {name} {value:?}"),
    })
}

/// Checks a CSV trace's first line starts with `header`; a named error otherwise.
pub(crate) fn expect_header(
    format: &'static str,
    first: Option<&str>,
    header: &str,
) -> Result<(), Error> {
    match first {
        Some(line) if line.trim().starts_with(header) => Ok(()),
        _ => Err(Error::TraceRow {
            format,
            line: 1,
            reason: format!("missing header {header}"),
        }),
    }
}

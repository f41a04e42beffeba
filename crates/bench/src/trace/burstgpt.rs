//! BurstGPT CSV: `Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type`,
//! timestamps in seconds. Rows with zero request or response tokens are failed requests in the
//! original service; they are dropped and counted.

use super::{csv_fields, expect_header, parse_field, relative_timestamps, TracePrompt, TraceRow};
use crate::error::Error;

const FORMAT: &str = "burstgpt";

/// Parses the BurstGPT CSV (header required); returns the rows and the number dropped.
pub fn parse_burstgpt(text: &str) -> Result<(Vec<TraceRow>, usize), Error> {
    let mut lines = text.lines().enumerate();
    expect_header(
        FORMAT,
        lines.next().map(|(_, h)| h),
        "Timestamp,Model,Request tokens,Response tokens",
    )?;
    let mut seconds = Vec::new();
    let mut lengths = Vec::new();
    let mut skipped = 0;
    for (i, line) in lines {
        if line.trim().is_empty() {
            continue;
        }
        let f = csv_fields(FORMAT, i + 1, line, 6)?;
        let at: f64 = parse_field(FORMAT, i + 1, "Timestamp", f[0])?;
        let request: u32 = parse_field(FORMAT, i + 1, "Request tokens", f[2])?;
        let response: u32 = parse_field(FORMAT, i + 1, "Response tokens", f[3])?;
        if request == 0 || response == 0 {
            skipped += 1;
            continue;
        }
        seconds.push(at);
        lengths.push((request, response));
    }
    let rows = relative_timestamps(&seconds)
        .into_iter()
        .zip(lengths)
        .map(|(t, (input, output))| TraceRow {
            timestamp: Some(t),
            prompt: TracePrompt::Length(input),
            output_tokens: Some(output),
        })
        .collect();
    Ok((rows, skipped))
}

//! Azure LLM inference trace CSV: `TIMESTAMP,ContextTokens,GeneratedTokens`, timestamps as
//! wall-clock `YYYY-MM-DD HH:MM:SS.fffffff` (CRLF line endings in the published files).

use super::{csv_fields, expect_header, parse_field, relative_timestamps, TracePrompt, TraceRow};
use crate::error::Error;

const FORMAT: &str = "azure";

/// Parses the Azure CSV (header required).
pub fn parse_azure(text: &str) -> Result<Vec<TraceRow>, Error> {
    let mut lines = text.lines().enumerate();
    expect_header(
        FORMAT,
        lines.next().map(|(_, h)| h),
        "TIMESTAMP,ContextTokens,GeneratedTokens",
    )?;
    let mut seconds = Vec::new();
    let mut lengths = Vec::new();
    for (i, line) in lines {
        if line.trim().is_empty() {
            continue;
        }
        let f = csv_fields(FORMAT, i + 1, line, 3)?;
        let at = wall_clock_seconds(f[0]).ok_or_else(|| Error::TraceRow {
            format: FORMAT,
            line: i + 1,
            reason: format!("bad TIMESTAMP {:?}", f[0]),
        })?;
        let context: u32 = parse_field(FORMAT, i + 1, "ContextTokens", f[1])?;
        let generated: u32 = parse_field(FORMAT, i + 1, "GeneratedTokens", f[2])?;
        seconds.push(at);
        lengths.push((context.max(1), generated.max(1)));
    }
    Ok(relative_timestamps(&seconds)
        .into_iter()
        .zip(lengths)
        .map(|(t, (input, output))| TraceRow {
            timestamp: Some(t),
            prompt: TracePrompt::Length(input),
            output_tokens: Some(output),
        })
        .collect())
}

/// Seconds since 1970-01-01 of `YYYY-MM-DD HH:MM:SS[.fraction]` (UTC assumed; only differences
/// matter).
pub fn wall_clock_seconds(s: &str) -> Option<f64> {
    let (date, time) = s.trim().split_once(' ')?;
    let mut d = date.split('-');
    let year: i64 = d.next()?.parse().ok()?;
    let month: i64 = d.next()?.parse().ok()?;
    let day: i64 = d.next()?.parse().ok()?;
    let mut t = time.split(':');
    let hour: i64 = t.next()?.parse().ok()?;
    let minute: i64 = t.next()?.parse().ok()?;
    let sec: f64 = t.next()?.parse().ok()?;
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 {
        return None;
    }
    let days = days_from_civil(year, month, day);
    Some((days * 86_400 + hour * 3600 + minute * 60) as f64 + sec)
}

/// Days since 1970-01-01 in the proleptic Gregorian calendar (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

//! Trace parsers on inline samples and on fixtures copied from the public traces.

use std::path::PathBuf;
use std::time::Duration;

use rotor_bench::trace::{self, TraceFormat, TracePrompt};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

#[test]
fn mooncake_inline_rows_are_rebased_and_keep_hash_ids() {
    let text = "{\"timestamp\": 1000, \"input_length\": 600, \"output_length\": 7, \"hash_ids\": [3, 4]}\n\n\
                {\"timestamp\": 4000, \"input_length\": 10, \"output_length\": 0, \"hash_ids\": [3]}\n";
    let rows = trace::parse_mooncake(text).unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].timestamp, Some(Duration::ZERO));
    assert_eq!(rows[1].timestamp, Some(Duration::from_millis(3000)));
    assert_eq!(
        rows[0].prompt,
        TracePrompt::HashIds {
            input_tokens: 600,
            hash_ids: vec![3, 4]
        }
    );
    assert_eq!(rows[0].output_tokens, Some(7));
    assert_eq!(
        rows[1].output_tokens,
        Some(1),
        "zero outputs become one token"
    );
}

#[test]
fn mooncake_bad_line_names_its_line() {
    let text = "{\"timestamp\": 0, \"input_length\": 5, \"output_length\": 1, \"hash_ids\": [0]}\n{\"timestamp\": 1}\n";
    let err = trace::parse_mooncake(text).unwrap_err().to_string();
    assert!(err.starts_with("mooncake trace, line 2:"), "{err}");
}

#[test]
fn mooncake_fixture_matches_the_published_trace() {
    let t = trace::load(&fixture("mooncake_head40.jsonl"), None).unwrap();
    assert_eq!(t.format, TraceFormat::Mooncake);
    assert_eq!(t.rows.len(), 40);
    assert_eq!(
        t.rows[0].prompt,
        TracePrompt::HashIds {
            input_tokens: 6758,
            hash_ids: (0..14).collect()
        }
    );
    assert_eq!(t.rows[0].output_tokens, Some(500));
    assert_eq!(t.rows[39].timestamp, Some(Duration::from_millis(12_000)));
    for row in &t.rows {
        let TracePrompt::HashIds {
            input_tokens,
            hash_ids,
        } = &row.prompt
        else {
            panic!("not hash ids")
        };
        assert_eq!(hash_ids.len() as u32, input_tokens.div_ceil(512));
        assert_eq!(hash_ids[0], 0, "block 0 starts every request here");
    }
}

#[test]
fn azure_inline_crlf_timestamps_are_relative_seconds() {
    let text = "TIMESTAMP,ContextTokens,GeneratedTokens\r\n\
                2023-11-16 18:17:03.9799600,4808,10\r\n\
                2023-11-16 18:17:04.0319600,3180,8\r\n\
                2023-11-16 18:18:03.9799600,110,27";
    let rows = trace::parse_azure(text).unwrap();
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[0].timestamp, Some(Duration::ZERO));
    let t1 = rows[1].timestamp.unwrap().as_secs_f64();
    assert!((t1 - 0.052).abs() < 1e-6, "{t1}");
    let t2 = rows[2].timestamp.unwrap().as_secs_f64();
    assert!((t2 - 60.0).abs() < 1e-6, "{t2}");
    assert_eq!(rows[1].prompt, TracePrompt::Length(3180));
    assert_eq!(rows[1].output_tokens, Some(8));
}

#[test]
fn azure_timestamps_cross_day_and_month_boundaries() {
    use rotor_bench::trace::TraceRow;
    let text = "TIMESTAMP,ContextTokens,GeneratedTokens\n\
                2023-11-30 23:59:59.5000000,1,1\n\
                2023-12-01 00:00:00.7500000,1,1\n\
                2024-03-01 00:00:00.5000000,1,1\n";
    let rows: Vec<TraceRow> = trace::parse_azure(text).unwrap();
    let secs: Vec<f64> = rows
        .iter()
        .map(|r| r.timestamp.unwrap().as_secs_f64())
        .collect();
    assert!((secs[1] - 1.25).abs() < 1e-6, "{secs:?}");
    // 2023-11-30 23:59:59.5 to 2024-03-01 00:00:00.5: 91 days (2024 is a leap year) + 1 s.
    assert!((secs[2] - (91.0 * 86_400.0 + 1.0)).abs() < 1e-6, "{secs:?}");
}

#[test]
fn azure_fixture_and_a_bad_row() {
    let t = trace::load(&fixture("azure_code_head20.csv"), None).unwrap();
    assert_eq!(t.format, TraceFormat::Azure);
    assert_eq!(t.rows.len(), 20);
    assert_eq!(t.rows[0].prompt, TracePrompt::Length(4808));
    assert_eq!(t.rows[0].output_tokens, Some(10));
    let err =
        trace::parse_azure("TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:17:03.9,x,1\n")
            .unwrap_err()
            .to_string();
    assert_eq!(err, "azure trace, line 2: bad ContextTokens \"x\"");
}

#[test]
fn burstgpt_fixture_drops_failed_rows() {
    let t = trace::load(&fixture("burstgpt_head45.csv"), None).unwrap();
    assert_eq!(t.format, TraceFormat::Burstgpt);
    assert_eq!(t.skipped_rows, 4);
    assert_eq!(t.rows.len(), 41);
    assert_eq!(t.rows[0].timestamp, Some(Duration::ZERO));
    assert_eq!(t.rows[0].prompt, TracePrompt::Length(472));
    assert_eq!(t.rows[0].output_tokens, Some(18));
    assert_eq!(t.rows[1].timestamp, Some(Duration::from_secs(40)));
}

#[test]
fn sharegpt_takes_the_first_human_turn() {
    let text = r#"[{"id": "a", "conversations": [{"from": "gpt", "value": "no"}, {"from": "human", "value": "Hi there"}]},
                   {"id": "b", "conversations": [{"from": "user", "value": "Second"}]}]"#;
    let rows = trace::parse_sharegpt(text).unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].prompt, TracePrompt::Text("Hi there".into()));
    assert_eq!(rows[1].prompt, TracePrompt::Text("Second".into()));
    assert_eq!(rows[0].timestamp, None);
    assert_eq!(rows[0].output_tokens, None);
    let err =
        trace::parse_sharegpt(r#"[{"id": "a", "conversations": [{"from": "gpt", "value": "x"}]}]"#)
            .unwrap_err()
            .to_string();
    assert_eq!(err, "sharegpt trace, line 1: no human turn");
}

#[test]
fn sharegpt_fixture() {
    let t = trace::load(&fixture("sharegpt_head5.json"), None).unwrap();
    assert_eq!(t.format, TraceFormat::Sharegpt);
    assert_eq!(t.rows.len(), 5);
    let TracePrompt::Text(first) = &t.rows[0].prompt else {
        panic!("not text")
    };
    assert!(
        first.starts_with("a. A blog is a type of website"),
        "{first}"
    );
    assert_eq!(first.chars().count(), 2138);
}

#[test]
fn format_detection_and_unknown_files() {
    assert_eq!(
        TraceFormat::detect("{\"timestamp\":0}"),
        Some(TraceFormat::Mooncake)
    );
    assert_eq!(TraceFormat::detect("  [\n{}]"), Some(TraceFormat::Sharegpt));
    assert_eq!(
        TraceFormat::detect("TIMESTAMP,ContextTokens,GeneratedTokens\r\n"),
        Some(TraceFormat::Azure)
    );
    assert_eq!(
        TraceFormat::detect("Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type"),
        Some(TraceFormat::Burstgpt)
    );
    assert_eq!(TraceFormat::detect("a,b,c"), None);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.csv");
    std::fs::write(&path, "a,b,c\n1,2,3\n").unwrap();
    let err = trace::load(&path, None).unwrap_err().to_string();
    assert!(err.contains("pass --trace-format"), "{err}");
    let missing = trace::load(&dir.path().join("nope.jsonl"), None)
        .unwrap_err()
        .to_string();
    assert!(missing.starts_with("cannot read trace"), "{missing}");
}

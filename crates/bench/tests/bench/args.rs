//! Flag parsing and validation, and the parse helper the other tests use.

use std::time::Duration;

use clap::Parser;
use rotor_bench::args::{normalize_base_url, parse_duration};
use rotor_bench::config::{PromptFormat, ScenarioConfig, SourceConfig};
use rotor_bench::lengths::LengthDist;
use rotor_bench::BenchArgs;

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    bench: BenchArgs,
}

/// Parses `rotor bench` flags as the binary would.
pub fn parse(flags: &[&str]) -> BenchArgs {
    Cli::try_parse_from(std::iter::once("bench").chain(flags.iter().copied()))
        .unwrap_or_else(|e| panic!("flags {flags:?}: {e}"))
        .bench
}

#[test]
fn defaults_validate_to_a_bounded_synthetic_run() {
    let c = parse(&[]).validate().unwrap();
    assert_eq!(c.base_url, "http://127.0.0.1:8000");
    assert_eq!(
        c.metrics_url.as_deref(),
        Some("http://127.0.0.1:8000/metrics")
    );
    assert_eq!(c.max_duration, Duration::from_secs(600));
    assert_eq!(c.token_ids, 1000..30000);
    assert_eq!(c.block_size_tokens, 512);
    assert_eq!(
        c.source,
        SourceConfig::Synthetic {
            input_len: LengthDist::Fixed { tokens: 256 },
            prefix: None
        }
    );
}

#[test]
fn url_forms_and_durations() {
    assert_eq!(normalize_base_url("http://h:1/v1/").unwrap(), "http://h:1");
    assert_eq!(normalize_base_url("http://h:1/").unwrap(), "http://h:1");
    assert!(normalize_base_url("https://h:1").is_err());
    assert!(normalize_base_url("h:1").is_err());
    assert_eq!(
        parse_duration("1500ms").unwrap(),
        Duration::from_millis(1500)
    );
    assert_eq!(parse_duration("2.5s").unwrap(), Duration::from_millis(2500));
    assert_eq!(parse_duration("10m").unwrap(), Duration::from_secs(600));
    assert_eq!(parse_duration("1h").unwrap(), Duration::from_secs(3600));
    assert_eq!(parse_duration("7").unwrap(), Duration::from_secs(7));
    assert!(parse_duration("-1s").is_err());
    assert!(parse_duration("soon").is_err());
}

#[test]
fn contradictory_or_out_of_range_flags_are_refused() {
    let cases: [(&[&str], &str); 8] = [
        (&["--concurrency", "0"], "invalid --concurrency"),
        (&["--request-rate", "0"], "invalid --request-rate"),
        (&["--time-scale=-1"], "invalid --time-scale"),
        (&["--prefix-groups", "4"], "invalid --prefix-groups"),
        (&["--prefix-len", "4"], "invalid --prefix-len"),
        (&["--trace-format", "azure"], "invalid --trace-format"),
        (&["--token-id-range", "5..5"], "invalid --token-id-range"),
        (&["--url", "https://example.org"], "invalid --url"),
    ];
    for (flags, want) in cases {
        let err = parse(flags).validate().unwrap_err().to_string();
        assert!(err.starts_with(want), "{flags:?}: {err}");
    }
}

#[test]
fn metrics_can_be_redirected_or_turned_off() {
    let c = parse(&["--metrics-url", "http://127.0.0.1:9/m"])
        .validate()
        .unwrap();
    assert_eq!(c.metrics_url.as_deref(), Some("http://127.0.0.1:9/m"));
    let c = parse(&["--no-metrics"]).validate().unwrap();
    assert_eq!(c.metrics_url, None);
}

#[test]
fn prompt_format_and_shared_prefix_scenario_flags() {
    let c = parse(&[]).validate().unwrap();
    assert_eq!(c.prompt_format, PromptFormat::TokenIds);
    assert_eq!(c.scenario, ScenarioConfig::Load);
    let c = parse(&["--prompt-format", "text", "--scenario", "shared-prefix"])
        .validate()
        .unwrap();
    assert_eq!(c.prompt_format, PromptFormat::Text);
    assert_eq!(
        c.scenario,
        ScenarioConfig::SharedPrefix {
            prefix_tokens: 1000,
            repetitions: 5
        }
    );
    let c = parse(&[
        "--scenario",
        "shared-prefix",
        "--prefix-len",
        "64",
        "--num-requests",
        "2",
        "--concurrency",
        "1",
    ])
    .validate()
    .unwrap();
    assert_eq!(
        c.scenario,
        ScenarioConfig::SharedPrefix {
            prefix_tokens: 64,
            repetitions: 2
        }
    );
    let refused: [(&[&str], &str); 4] = [
        (&["--concurrency", "4"], "invalid --concurrency"),
        (&["--request-rate", "2"], "invalid --request-rate"),
        (&["--prefix-groups", "2"], "invalid --prefix-groups"),
        (&["--trace", "t.jsonl"], "invalid --trace"),
    ];
    for (flags, want) in refused {
        let mut all = vec!["--scenario", "shared-prefix"];
        all.extend_from_slice(flags);
        let err = parse(&all).validate().unwrap_err().to_string();
        assert!(err.starts_with(want), "{flags:?}: {err}");
    }
}

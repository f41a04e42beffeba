//! Percentile math, summaries, goodput and metrics parsing.

use rotor_bench::client::{Outcome, RequestRecord};
use rotor_bench::config::Slo;
use rotor_bench::prom::{metric_sum, CacheCounters};
use rotor_bench::stats::{percentile, Distribution};
use rotor_bench::Summary;

#[test]
fn percentiles_interpolate_between_ranks() {
    let xs = [1.0, 2.0, 3.0, 4.0];
    assert_eq!(percentile(&xs, 0.0), Some(1.0));
    assert_eq!(percentile(&xs, 50.0), Some(2.5));
    assert!((percentile(&xs, 90.0).unwrap() - 3.7).abs() < 1e-12);
    assert_eq!(percentile(&xs, 100.0), Some(4.0));
    assert_eq!(percentile(&[5.0], 99.0), Some(5.0));
    assert_eq!(percentile(&[], 50.0), None);
}

#[test]
fn distribution_of_one_to_a_hundred() {
    let d = Distribution::of((1..=100).rev().map(|x| x as f64)).unwrap();
    assert_eq!(d.count, 100);
    assert_eq!(d.mean, 50.5);
    assert_eq!(d.min, 1.0);
    assert_eq!(d.max, 100.0);
    assert!((d.p50 - 50.5).abs() < 1e-9);
    assert!((d.p90 - 90.1).abs() < 1e-9);
    assert!((d.p99 - 99.01).abs() < 1e-9);
    assert_eq!(Distribution::of(std::iter::empty()), None);
}

fn record(index: usize, outcome: Outcome, ttft: f64, gap: f64, tokens: u32) -> RequestRecord {
    RequestRecord {
        index,
        start_ms: 0.0,
        outcome,
        error: (outcome == Outcome::Error).then(|| "HTTP 503: busy".to_string()),
        ttft_ms: (outcome == Outcome::Ok).then_some(ttft),
        e2e_ms: ttft + gap * (tokens.saturating_sub(1)) as f64,
        itl_ms: vec![gap; tokens.saturating_sub(1) as usize],
        input_tokens: Some(100),
        planned_input_tokens: Some(96),
        usage_reported: index != 2,
        output_tokens: if outcome == Outcome::Ok { tokens } else { 0 },
        expected_output_tokens: tokens,
        cached_tokens: (outcome == Outcome::Ok).then_some(25),
        retries: 0,
    }
}

#[test]
fn summary_counts_goodput_with_errors_in_the_denominator() {
    let records = vec![
        record(0, Outcome::Ok, 100.0, 10.0, 11), // good
        record(1, Outcome::Ok, 300.0, 10.0, 11), // TTFT too slow
        record(2, Outcome::Ok, 100.0, 30.0, 11), // ITL too slow
        record(3, Outcome::Error, 0.0, 0.0, 11), // error
        record(4, Outcome::Cancelled, 0.0, 0.0, 11),
    ];
    let slo = Slo {
        ttft_ms: Some(200.0),
        itl_ms: Some(20.0),
    };
    let s = Summary::compute(&records, 6, 2.0, slo);
    assert_eq!((s.ok, s.errors, s.cancelled, s.not_sent), (3, 1, 1, 1));
    assert_eq!(s.requests_per_s, 1.5);
    assert_eq!(s.output_tokens, 33);
    assert_eq!(s.output_tokens_per_s, 16.5);
    assert_eq!(s.input_tokens, 300);
    assert_eq!(s.cached_tokens, Some(75));
    assert_eq!(s.planned_input_tokens, 3 * 96);
    assert_eq!(s.expected_output_tokens, 33);
    assert_eq!(s.usage_reported, 2, "record 2 carried no usage");
    let g = s.goodput.unwrap();
    assert_eq!(g.good_requests, 1);
    assert_eq!(g.good_requests_per_s, 0.5);
    assert_eq!(g.good_fraction, 0.25);
    assert_eq!(s.error_kinds.get("HTTP 503: busy"), Some(&1));
    assert_eq!(s.ttft_ms.unwrap().p50, 100.0);
    assert_eq!(s.itl_ms.unwrap().count, 30);
    assert_eq!(s.tpot_ms.unwrap().max, 30.0);
    let none = Summary::compute(&records, 5, 2.0, Slo::default());
    assert_eq!(none.goodput, None);
}

#[test]
fn prometheus_counters_sum_label_sets_and_ignore_longer_names() {
    let text = "# HELP rotor_kv_cache_prefix_hit_tokens_total x\n\
                # TYPE rotor_kv_cache_prefix_hit_tokens_total counter\n\
                rotor_kv_cache_prefix_hit_tokens_total{model=\"a\"} 30\n\
                rotor_kv_cache_prefix_hit_tokens_total{model=\"b\"} 12 1700000000000\n\
                rotor_kv_cache_prefix_hit_tokens_total_extra 999\n\
                rotor_kv_cache_prefix_queries_tokens_total 100\n";
    assert_eq!(
        metric_sum(text, "rotor_kv_cache_prefix_hit_tokens_total"),
        Some(42.0)
    );
    assert_eq!(metric_sum(text, "absent_metric"), None);
    let after = CacheCounters::from_exposition(text).unwrap();
    let before = CacheCounters {
        hit_tokens: 2.0,
        query_tokens: 20.0,
    };
    assert_eq!(after.hit_rate_since(&before), Some(0.5));
    assert_eq!(after.hit_rate_since(&after), None, "nothing queried");
    assert_eq!(CacheCounters::from_exposition("up 1\n"), None);
}

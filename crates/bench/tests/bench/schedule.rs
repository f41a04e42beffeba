//! Arrival schedules.

use std::time::Duration;

use rotor_bench::config::LoadMode;
use rotor_bench::schedule::poisson_arrivals;
use rotor_bench::workload;

use super::args::parse;

#[test]
fn poisson_schedule_is_reproducible_and_has_the_asked_rate() {
    let a = poisson_arrivals(20.0, 10_000, 42);
    assert_eq!(a, poisson_arrivals(20.0, 10_000, 42));
    assert_ne!(a, poisson_arrivals(20.0, 10_000, 43));
    assert!(a.windows(2).all(|w| w[0] <= w[1]));
    let rate = a.len() as f64 / a.last().unwrap().as_secs_f64();
    // The mean of 10k exponential gaps has a relative standard error of 1%.
    assert!((rate - 20.0).abs() < 20.0 * 0.04, "rate {rate}");
    // Exponential gaps: about e^-1 of them exceed the mean gap.
    let gaps: Vec<f64> = a.windows(2).map(|w| (w[1] - w[0]).as_secs_f64()).collect();
    let long = gaps.iter().filter(|&&g| g > 0.05).count() as f64 / gaps.len() as f64;
    assert!(
        (long - (-1.0f64).exp()).abs() < 0.03,
        "share of long gaps {long}"
    );
}

#[test]
fn rate_flag_builds_a_poisson_workload_capped_by_concurrency() {
    let cfg = parse(&[
        "--num-requests",
        "50",
        "--request-rate",
        "5",
        "--concurrency",
        "3",
        "--seed",
        "9",
    ])
    .validate()
    .unwrap();
    let w = workload::build(&cfg).unwrap();
    assert_eq!(
        w.mode,
        LoadMode::Poisson {
            rate_per_s: 5.0,
            max_in_flight: Some(3)
        }
    );
    let at: Vec<Duration> = w.requests.iter().map(|r| r.send_at.unwrap()).collect();
    assert_eq!(at, poisson_arrivals(5.0, 50, 9));
}

#[test]
fn trace_schedule_is_scaled_by_time_scale() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/mooncake_head40.jsonl"
    );
    let cfg = parse(&[
        "--trace",
        path,
        "--time-scale",
        "0.5",
        "--num-requests",
        "30",
    ])
    .validate()
    .unwrap();
    let w = workload::build(&cfg).unwrap();
    assert_eq!(
        w.mode,
        LoadMode::FixedSchedule {
            time_scale: 0.5,
            max_in_flight: None
        }
    );
    assert_eq!(w.requests.len(), 30);
    assert_eq!(w.requests[0].send_at, Some(Duration::ZERO));
    assert_eq!(w.requests[10].send_at, Some(Duration::from_millis(1500)));
    assert_eq!(w.requests[29].send_at, Some(Duration::from_millis(4500)));
    assert_eq!(w.requests[0].output_tokens, 500);
    // ShareGPT has no timestamps: without flags it runs one request at a time, on chat.
    let sg = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/sharegpt_head5.json"
    );
    let w = workload::build(
        &parse(&["--trace", sg, "--output-len", "9"])
            .validate()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(w.mode, LoadMode::Closed { concurrency: 1 });
    assert_eq!(w.endpoint, rotor_bench::Endpoint::Chat);
    assert!(w.requests.iter().all(|r| r.output_tokens == 9));
}

//! Whole runs against the fake SSE server: timing, errors, goodput, cache metrics, outputs,
//! open-loop modes and the deadline.

use std::time::{Duration, Instant};

use rotor_bench::client::Outcome;
use rotor_bench::config::{LoadMode, Slo};
use rotor_bench::Summary;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::args::parse;
use super::fake_server::{FakeConfig, FakeServer};

const TTFT_MS: f64 = 150.0;
const ITL_MS: f64 = 40.0;
/// Scheduling slack allowed on a loaded 2-core machine (timing is only bounded, not asserted
/// as performance).
const SLACK_MS: f64 = 400.0;

async fn server(fail: bool) -> FakeServer {
    FakeServer::start(FakeConfig {
        ttft: Duration::from_millis(TTFT_MS as u64),
        itl: Duration::from_millis(ITL_MS as u64),
        fail_every_fourth: fail,
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_loop_measures_timing_errors_goodput_and_cache_hits() {
    let srv = server(true).await;
    let dir = tempfile::tempdir().unwrap();
    let json_path = dir.path().join("report.json");
    let png_path = dir.path().join("report.png");
    let url = srv.url();
    let args = parse(&[
        "--url",
        &url,
        "--concurrency",
        "2",
        "--num-requests",
        "8",
        "--input-len",
        "10",
        "--output-len",
        "5",
        "--slo-ttft-ms",
        "5000",
        "--slo-itl-ms",
        "5",
        "--no-progress",
        "--output-json",
        json_path.to_str().unwrap(),
        "--plot",
        png_path.to_str().unwrap(),
    ]);
    let report = rotor_bench::run(args, CancellationToken::new())
        .await
        .unwrap();
    let s = &report.summary;

    assert_eq!(report.run.model, "fake-model", "taken from /v1/models");
    assert_eq!(report.run.mode, LoadMode::Closed { concurrency: 2 });
    assert_eq!((s.ok, s.errors, s.cancelled, s.not_sent), (5, 3, 0, 0));
    assert_eq!(
        s.error_kinds
            .get("HTTP 503: {\"error\":{\"message\":\"busy\"}}"),
        Some(&2)
    );
    assert_eq!(s.error_kinds.get("error event: engine stopped"), Some(&1));
    assert_eq!(s.output_tokens, 25);
    assert_eq!(s.input_tokens, 50);
    assert_eq!(s.cached_tokens, Some(35));
    assert_eq!(s.prefix_cache_hit_rate, Some(0.25));

    let ttft = s.ttft_ms.unwrap();
    assert_eq!(ttft.count, 5);
    assert!(
        ttft.min >= TTFT_MS && ttft.max < TTFT_MS + SLACK_MS,
        "{ttft:?}"
    );
    let itl = s.itl_ms.unwrap();
    assert_eq!(itl.count, 20, "four gaps per five-token answer");
    assert!(
        itl.p50 >= ITL_MS - 5.0 && itl.p50 < ITL_MS + SLACK_MS,
        "{itl:?}"
    );
    let e2e = s.e2e_ms.unwrap();
    assert!(e2e.min >= TTFT_MS + 4.0 * ITL_MS - 5.0, "{e2e:?}");

    // ITL SLO of 5 ms cannot be met (gaps are 40 ms): no good request, errors in the ratio.
    let g = s.goodput.unwrap();
    assert_eq!(g.good_requests, 0);
    let relaxed = Summary::compute(
        &report.records,
        8,
        s.duration_s,
        Slo {
            ttft_ms: Some(TTFT_MS + SLACK_MS),
            itl_ms: Some(ITL_MS + SLACK_MS),
        },
    );
    let g = relaxed.goodput.unwrap();
    assert_eq!(g.good_requests, 5);
    assert_eq!(g.good_fraction, 5.0 / 8.0);

    let bodies = srv.seen.bodies.lock().unwrap().clone();
    assert_eq!(bodies.len(), 8);
    for b in &bodies {
        assert_eq!(b["model"], "fake-model");
        assert_eq!(b["max_tokens"], 5);
        assert_eq!(b["min_tokens"], 5);
        assert_eq!(b["ignore_eos"], true);
        assert_eq!(b["stream"], true);
        assert_eq!(b["stream_options"]["include_usage"], true);
        assert_eq!(b["prompt"].as_array().unwrap().len(), 10);
    }

    let json: Value = serde_json::from_slice(&std::fs::read(&json_path).unwrap()).unwrap();
    assert_eq!(json["records"].as_array().unwrap().len(), 8);
    assert_eq!(json["summary"]["ok"], 5);
    let errors = json["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["outcome"] == "error")
        .count();
    assert_eq!(errors, 3);
    let png = std::fs::read(&png_path).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poisson_chat_run_sends_sharegpt_prompts_as_messages() {
    let srv = server(false).await;
    let url = srv.url();
    let sg = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/sharegpt_head5.json"
    );
    let args = parse(&[
        "--url",
        &url,
        "--trace",
        sg,
        "--request-rate",
        "50",
        "--output-len",
        "3",
        "--model",
        "m",
        "--no-metrics",
        "--no-progress",
    ]);
    let report = rotor_bench::run(args, CancellationToken::new())
        .await
        .unwrap();
    let s = &report.summary;
    assert_eq!((s.ok, s.errors), (5, 0));
    assert_eq!(s.prefix_cache_hit_rate, None);
    assert!(report
        .records
        .iter()
        .all(|r| r.output_tokens == 3 && r.itl_ms.len() == 2));
    let bodies = srv.seen.bodies.lock().unwrap().clone();
    assert!(bodies
        .iter()
        .all(|b| b["model"] == "m" && b["messages"][0]["role"] == "user"));
    assert!(bodies.iter().any(|b| b["messages"][0]["content"]
        .as_str()
        .unwrap()
        .starts_with("a. A blog")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mooncake_replay_sends_rescaled_token_prompts_on_schedule() {
    let srv = server(false).await;
    let url = srv.url();
    let trace = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/mooncake_shared_pair.jsonl"
    );
    let args = parse(&[
        "--url",
        &url,
        "--trace",
        trace,
        "--time-scale",
        "0.01",
        "--block-size",
        "16",
        "--max-output-tokens",
        "2",
        "--no-progress",
    ]);
    let report = rotor_bench::run(args, CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(report.summary.ok, 2);
    // Rows are 27 s apart in the trace: 270 ms at time scale 0.01.
    let gap = report.records[1].start_ms - report.records[0].start_ms;
    assert!((260.0..270.0 + SLACK_MS).contains(&gap), "gap {gap}");
    let mut lens: Vec<usize> = srv
        .seen
        .bodies
        .lock()
        .unwrap()
        .iter()
        .map(|b| b["prompt"].as_array().unwrap().len())
        .collect();
    lens.sort();
    assert_eq!(lens, vec![83, 95]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_duration_bounds_the_run_and_cancels_what_is_in_flight() {
    let srv = server(false).await;
    let url = srv.url();
    let args = parse(&[
        "--url",
        &url,
        "--concurrency",
        "2",
        "--num-requests",
        "6",
        "--output-len",
        "100",
        "--max-duration",
        "600ms",
        "--no-progress",
        "--model",
        "m",
    ]);
    let started = Instant::now();
    let report = rotor_bench::run(args, CancellationToken::new())
        .await
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    let s = &report.summary;
    // Each answer takes 150 + 99 * 40 ms, far past the deadline.
    assert_eq!((s.ok, s.errors, s.cancelled, s.not_sent), (0, 0, 2, 4));
    assert!(report
        .records
        .iter()
        .all(|r| r.outcome == Outcome::Cancelled));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_token_stops_the_run() {
    let srv = server(false).await;
    let url = srv.url();
    let args = parse(&[
        "--url",
        &url,
        "--request-rate",
        "1",
        "--num-requests",
        "50",
        "--output-len",
        "2",
        "--no-progress",
        "--model",
        "m",
    ]);
    let shutdown = CancellationToken::new();
    let stopper = shutdown.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        stopper.cancel();
    });
    let report = rotor_bench::run(args, shutdown).await.unwrap();
    assert!(report.summary.not_sent > 40, "{:?}", report.summary);
    assert!(report.summary.duration_s < 5.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_prefix_scenario_sends_a_b_c_one_at_a_time_as_text() {
    let srv = server(false).await;
    let url = srv.url();
    let args = parse(&[
        "--url",
        &url,
        "--scenario",
        "shared-prefix",
        "--prompt-format",
        "text",
        "--prefix-len",
        "40",
        "--input-len",
        "6",
        "--output-len",
        "2",
        "--num-requests",
        "2",
        "--no-progress",
        "--no-metrics",
    ]);
    let report = rotor_bench::run(args, CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(report.run.mode, LoadMode::Closed { concurrency: 1 });
    let s = &report.summary;
    assert_eq!((s.ok, s.errors), (6, 0));
    assert_eq!(s.usage_reported, 6);
    assert_eq!(s.input_tokens, 6 * 46, "the server's count of words");
    assert_eq!(s.planned_input_tokens, 6 * 46);
    assert_eq!((s.output_tokens, s.expected_output_tokens), (12, 12));
    let sp = report.shared_prefix.as_ref().unwrap();
    assert_eq!((sp.repetitions, sp.prefix_tokens), (2, 40));
    assert_eq!(
        (sp.first.ok, sp.shared_prefix.ok, sp.fresh_prefix.ok),
        (2, 2, 2)
    );
    assert_eq!(sp.shared_prefix.cached_tokens_median, Some(7.0));
    assert!(sp.fresh_over_shared_ttft.is_some());
    assert!(report.to_string().contains("TTFT C / B"));

    let bodies = srv.seen.bodies.lock().unwrap().clone();
    let prompts: Vec<Vec<&str>> = bodies
        .iter()
        .map(|b| b["prompt"].as_str().unwrap().split(' ').collect())
        .collect();
    assert_eq!(prompts.len(), 6);
    for rep in 0..2 {
        let (a, b, c) = (
            &prompts[3 * rep],
            &prompts[3 * rep + 1],
            &prompts[3 * rep + 2],
        );
        assert_eq!(a[..40], b[..40]);
        assert_ne!(a[..40], c[..40]);
    }
}

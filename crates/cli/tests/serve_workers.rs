//! `rotor serve --num-workers N`: several engines in one process behind the embedded router.

#[allow(dead_code)]
mod support;

use serde_json::json;
use support::{curl_json, RotorServer};

const MODEL: &str = "smollm2-135m-instruct";

fn metric_for(server: &RotorServer, name: &str, worker: u64) -> f64 {
    let out = std::process::Command::new("curl")
        .args(["-sS", "--max-time", "10"])
        .arg(server.url("/metrics"))
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&out.stdout);
    let label = format!("worker=\"{worker:016x}\"");
    text.lines()
        .filter(|l| l.starts_with(name) && l.contains(&label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn complete(server: &RotorServer, prompt: &str) -> u64 {
    let (status, body) = curl_json(
        &server.url("/v1/completions"),
        &json!({"model": MODEL, "prompt": prompt, "max_tokens": 4}),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["usage"]["completion_tokens"], 4, "{body}");
    body["usage"]["prompt_tokens_details"]["cached_tokens"]
        .as_u64()
        .unwrap_or(0)
}

fn prefix(topic: &str) -> String {
    (0..40)
        .map(|i| format!("Fact {i} about {topic} is worth remembering. "))
        .collect()
}

#[test]
fn kv_mode_sends_each_shared_prefix_to_the_worker_that_caches_it() {
    let server = RotorServer::start(&[
        "--engine",
        "mocker",
        "--num-workers",
        "4",
        "--router-mode",
        "kv",
        "--mocker-speedup",
        "10",
    ]);
    for topic in ["rivers", "mountains", "deserts"] {
        let p = prefix(topic);
        let before: Vec<f64> = (0..4)
            .map(|w| metric_for(&server, "rotor_frontend_router_decisions_total", w))
            .collect();
        assert_eq!(complete(&server, &format!("{p}Question zero?")), 0);
        // Let the owner's KV events reach the router (fed every few milliseconds).
        std::thread::sleep(std::time::Duration::from_millis(200));
        for q in 1..=3 {
            let cached = complete(&server, &format!("{p}Question {q}?"));
            assert!(
                cached >= 256,
                "{topic} request {q}: only {cached} cached tokens"
            );
        }
        let after: Vec<f64> = (0..4)
            .map(|w| metric_for(&server, "rotor_frontend_router_decisions_total", w))
            .collect();
        let grew: Vec<f64> = after.iter().zip(&before).map(|(a, b)| a - b).collect();
        assert_eq!(
            grew.iter().filter(|&&g| g == 4.0).count(),
            1,
            "{topic}: all four requests should land on one worker, got {grew:?}"
        );
    }
}

#[test]
fn round_robin_spreads_requests_evenly_over_in_process_workers() {
    let server = RotorServer::start(&[
        "--engine",
        "mocker",
        "--num-workers",
        "3",
        "--router-mode",
        "round-robin",
        "--mocker-speedup",
        "10",
    ]);
    for i in 0..6 {
        complete(&server, &format!("Request {i}"));
    }
    for w in 0..3 {
        assert_eq!(
            metric_for(&server, "rotor_frontend_router_decisions_total", w),
            2.0,
            "worker {w}"
        );
        assert!(metric_for(&server, "rotor_engine_generated_tokens_total", w) >= 8.0);
    }
}

#[test]
fn bad_worker_count_is_a_named_cli_error() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_rotor"))
        .args(["serve", "--num-workers", "0"])
        .output()
        .expect("run rotor");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--num-workers"), "{err}");
}

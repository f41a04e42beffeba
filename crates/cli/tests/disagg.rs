//! Disaggregated serving through `rotor serve --prefill-workers 1 --decode-workers 1` on the
//! real model: greedy text equal to aggregated serving, a second turn moving only its new KV
//! blocks, the prefill worker actually used (a silent fallback fails the test), no KV block left
//! held afterwards, and the no-prefill-worker cases (served aggregated and counted, or refused
//! with `--enforce-disagg`).

#[allow(dead_code)]
mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::json;
use support::{curl_json, RotorServer};

const MODEL: &str = "smollm2-135m-instruct";
const BLOCK_TOKENS: u64 = 16;

/// The sum of `name`'s samples whose labels contain every one of `labels`.
fn metric_with(server: &RotorServer, name: &str, labels: &[&str]) -> f64 {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "10"])
        .arg(server.url("/metrics"))
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&out.stdout);
    let values: Vec<f64> = text
        .lines()
        .filter(|l| l.split('{').next() == Some(name))
        .filter(|l| labels.iter().all(|label| l.contains(label)))
        .filter_map(|l| l.rsplit(' ').next()?.parse().ok())
        .collect();
    assert!(
        !values.is_empty(),
        "{name} {labels:?} not in /metrics:\n{text}"
    );
    values.iter().sum()
}

/// Greedy completion of 12 tokens: the text and the prompt's token count.
fn complete(server: &RotorServer, prompt: &str) -> (String, u64) {
    let (status, body) = curl_json(
        &server.url("/v1/completions"),
        &json!({"model": MODEL, "prompt": prompt, "max_tokens": 12, "temperature": 0}),
    );
    assert_eq!(status, 200, "{body}");
    let text = body["choices"][0]["text"]
        .as_str()
        .expect("text")
        .to_string();
    (
        text,
        body["usage"]["prompt_tokens"].as_u64().expect("usage"),
    )
}

const TURN1: &str = "Here is a short story about lighthouses. Once upon a time, in a small \
    village at the edge of a great forest, there lived a curious child who wanted to learn \
    everything about lighthouses. Every morning the child asked the";
const TURN2_TAIL: &str = " keeper a new question, and every evening the keeper told a new \
    story about ships, storms and the sea. One day the child asked the keeper why the light";

/// Waits until no KV block is held by a request on any worker.
fn wait_blocks_released(server: &RotorServer) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let used = server.metric("rotor_kv_cache_blocks_used");
        if used == 0.0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{used} KV blocks still held after every request ended"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn disaggregated_greedy_output_equals_aggregated_and_moves_only_new_blocks() {
    let aggregated = RotorServer::start(&[]);
    let disagg = RotorServer::start(&[
        "--prefill-workers",
        "1",
        "--decode-workers",
        "1",
        "--disagg-min-prefill-tokens",
        "0",
    ]);
    let turn2 = format!("{TURN1}{TURN2_TAIL}");

    let (want1, _) = complete(&aggregated, TURN1);
    let (got1, prompt1) = complete(&disagg, TURN1);
    assert_eq!(
        got1, want1,
        "disaggregated greedy text differs from aggregated"
    );
    assert_eq!(
        metric_with(&disagg, "rotor_frontend_remote_prefill_total", &[]),
        1.0,
        "the prefill worker was not used"
    );
    let blocks1 = metric_with(&disagg, "rotor_kv_transfer_blocks_total", &[]);
    assert_eq!(
        blocks1 as u64,
        prompt1 / BLOCK_TOKENS,
        "every full prompt block moves on the first turn"
    );
    assert!(metric_with(&disagg, "rotor_kv_transfer_bytes_total", &[]) > 0.0);
    assert_eq!(
        metric_with(&disagg, "rotor_kv_transfer_seconds_count", &[]),
        1.0
    );
    assert_eq!(
        metric_with(&disagg, "rotor_engine_kv_blocks_imported_total", &[]),
        blocks1
    );
    assert!(metric_with(&disagg, "rotor_engine_kv_blocks_exported_total", &[]) >= blocks1);

    // Second turn: only the blocks past what the decode worker holds move.
    let (want2, _) = complete(&aggregated, &turn2);
    let (got2, prompt2) = complete(&disagg, &turn2);
    assert_eq!(got2, want2, "second turn differs from aggregated");
    assert_eq!(
        metric_with(&disagg, "rotor_frontend_remote_prefill_total", &[]),
        2.0
    );
    let moved2 = metric_with(&disagg, "rotor_kv_transfer_blocks_total", &[]) - blocks1;
    let full2 = prompt2 / BLOCK_TOKENS;
    assert!(moved2 > 0.0, "the new turn's blocks must move");
    assert!(
        (moved2 as u64) < full2 && moved2 as u64 <= full2 - prompt1 / BLOCK_TOKENS + 1,
        "moved {moved2} blocks of {full2}: the first turn's blocks were sent again"
    );

    // The same prompt again: cached on the decode worker, nothing moves.
    let (again, _) = complete(&disagg, &turn2);
    assert_eq!(again, want2);
    assert_eq!(
        metric_with(
            &disagg,
            "rotor_frontend_local_prefill_total",
            &["reason=\"cached\""]
        ),
        1.0
    );
    assert_eq!(
        metric_with(&disagg, "rotor_frontend_disagg_active", &[]),
        1.0
    );
    wait_blocks_released(&disagg);
}

#[test]
fn without_a_prefill_worker_requests_are_served_aggregated_or_refused_when_enforced() {
    let decode_only = RotorServer::start(&["--decode-workers", "1"]);
    let (text, _) = complete(&decode_only, TURN1);
    assert!(!text.is_empty());
    assert_eq!(
        metric_with(
            &decode_only,
            "rotor_frontend_local_prefill_total",
            &["reason=\"no_prefill_worker\""]
        ),
        1.0
    );
    assert_eq!(
        metric_with(&decode_only, "rotor_frontend_disagg_active", &[]),
        0.0
    );
    drop(decode_only);

    let enforced = RotorServer::start(&["--decode-workers", "1", "--enforce-disagg"]);
    let (status, body) = curl_json(
        &enforced.url("/v1/completions"),
        &json!({"model": MODEL, "prompt": "Hello", "max_tokens": 4}),
    );
    assert_eq!(status, 503, "{body}");
    let message = body["error"]["message"]
        .as_str()
        .expect("OpenAI error JSON");
    assert!(message.contains("`prefill`"), "{message}");
}

#[test]
fn serve_refuses_prefill_workers_without_decode_workers() {
    let out = Command::new(env!("CARGO_BIN_EXE_rotor"))
        .args(["serve", "--prefill-workers", "1"])
        .output()
        .expect("run rotor");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--decode-workers"), "{stderr}");
}

/// Mockers studying a disaggregated layout pay for the KV they move: with
/// `--mocker-kv-bandwidth`, each import waits bytes / bandwidth on the decode worker's simulated
/// link (counted in /metrics), and the remote prefill's transfer time includes that wait.
#[test]
fn mocker_kv_transfers_take_bytes_over_the_simulated_bandwidth() {
    const GB_PER_S: f64 = 0.002; // 2 MB/s: a 16-token SmolLM2 block (about 369 KB) takes ~0.18 s
    let server = RotorServer::start(&[
        "--engine",
        "mocker",
        "--mocker-speedup",
        "10",
        "--prefill-workers",
        "1",
        "--decode-workers",
        "1",
        "--disagg-min-prefill-tokens",
        "0",
        "--mocker-kv-bandwidth",
        &GB_PER_S.to_string(),
    ]);
    let (_, prompt_tokens) = complete(&server, TURN1);
    assert_eq!(
        metric_with(&server, "rotor_frontend_remote_prefill_total", &[]),
        1.0
    );
    let moved = metric_with(&server, "rotor_kv_transfer_bytes_total", &[]);
    let link_bytes = metric_with(&server, "rotor_mocker_kv_link_bytes_total", &[]);
    let link_secs = metric_with(&server, "rotor_mocker_kv_link_seconds_total", &[]);
    assert!(
        prompt_tokens / BLOCK_TOKENS >= 2 && moved > 0.0,
        "{prompt_tokens} tokens, {moved} bytes"
    );
    // The link carried the imported blocks (encoded: payload plus a small header each).
    assert!(
        link_bytes >= moved && link_bytes < moved * 1.01 + 4096.0,
        "link {link_bytes} B vs moved {moved} B"
    );
    // Time = bytes / (bandwidth × speedup).
    let expected = link_bytes / (GB_PER_S * 1e9 * 10.0);
    assert!(
        (link_secs - expected).abs() < 1e-3,
        "link busy {link_secs} s, expected {expected} s"
    );
    let transfer_secs = metric_with(&server, "rotor_kv_transfer_seconds_sum", &[]);
    assert!(
        transfer_secs >= link_secs,
        "the remote prefill took {transfer_secs} s, less than the link's {link_secs} s"
    );
    wait_blocks_released(&server);
}

/// The transfer overlaps the prefill: with small engine steps (a 32-token budget), a prompt
/// takes several steps on the prefill worker, and the blocks each step caches are streamed to
/// the decode worker before the prompt is done (counted `when="during_prefill"`). Every block
/// still arrives, in order, and the greedy text is aggregated serving's.
#[test]
fn blocks_stream_to_the_decode_worker_while_the_prompt_is_prefilled() {
    let small_steps = ["--max-num-batched-tokens", "32"];
    let aggregated = RotorServer::start(&small_steps);
    let mut args = vec![
        "--prefill-workers",
        "1",
        "--decode-workers",
        "1",
        "--disagg-min-prefill-tokens",
        "0",
    ];
    args.extend_from_slice(&small_steps);
    let disagg = RotorServer::start(&args);
    let prompt = format!("{TURN1}{TURN2_TAIL}");
    let (want, _) = complete(&aggregated, &prompt);
    let (got, prompt_tokens) = complete(&disagg, &prompt);
    assert_eq!(
        got, want,
        "disaggregated greedy text differs from aggregated"
    );
    let moved = metric_with(&disagg, "rotor_kv_transfer_blocks_total", &[]);
    assert_eq!(
        moved as u64,
        prompt_tokens / BLOCK_TOKENS,
        "every full block moved"
    );
    let early = metric_with(
        &disagg,
        "rotor_kv_prefill_exported_blocks_total",
        &["when=\"during_prefill\""],
    );
    let late = metric_with(
        &disagg,
        "rotor_kv_prefill_exported_blocks_total",
        &["when=\"after_prefill\""],
    );
    assert_eq!(early + late, moved, "early {early} + late {late}");
    assert!(
        early >= 2.0,
        "{early} blocks sent before the prefill ended (of {moved}): no overlap"
    );
    wait_blocks_released(&disagg);
}

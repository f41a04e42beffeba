//! The planner with the native engine: `rotor profile --engine native` measures the real model,
//! and `rotor planner --connector local` scales real `rotor worker` processes behind a real
//! frontend — a step up in load adds a worker that registers and serves, the end of the load
//! brings the count back to the minimum (the removed worker deregisters and drains), and no
//! request fails. Run with `--nocapture` to see the step-up figures (docs/BENCHMARKS.md).

mod cluster;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cluster::{frontend, metric_from, planner, Frontend};
use rotor_planner::PerfProfile;
use serde_json::json;

const MODEL: &str = "smollm2-135m-instruct";

fn rotor(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_rotor"))
        .args(args)
        .output()
        .expect("run rotor");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Within `tolerance` (relative) of non-decreasing.
fn roughly_non_decreasing(ys: &[f64], tolerance: f64) -> bool {
    ys.windows(2).all(|w| w[1] >= w[0] * (1.0 - tolerance))
}

#[test]
fn native_profile_is_measured_and_the_planner_accepts_it() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("profile.json");
    let model = cluster::model_path().display().to_string();
    let (ok, stderr) = rotor(&[
        "profile",
        "--engine",
        "native",
        "--model",
        &model,
        "--threads",
        "1",
        "--isl",
        "16,64,256",
        "--batch",
        "1,8",
        "--context",
        "64",
        "--repetitions",
        "2",
        "--max-seconds",
        "60",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(ok, "{stderr}");
    assert!(
        stderr.contains("3 prefill and 2 decode points (0 skipped by --max-seconds)"),
        "{stderr}"
    );
    let profile = PerfProfile::load(&out).expect("a valid PerfProfile");
    assert!(profile.engine.starts_with("native "), "{}", profile.engine);
    let ttft: Vec<f64> = profile.prefill.iter().map(|p| p.ttft_ms).collect();
    assert_eq!(
        profile.prefill.iter().map(|p| p.isl).collect::<Vec<_>>(),
        [16, 64, 256]
    );
    // 16 times the tokens costs clearly more, whatever else this machine runs.
    assert!(roughly_non_decreasing(&ttft, 0.2), "TTFT by ISL: {ttft:?}");
    assert!(ttft[2] > ttft[0] * 1.5, "TTFT by ISL: {ttft:?}");
    let itl: Vec<f64> = profile.decode.iter().map(|d| d.itl_ms).collect();
    assert!(itl[1] > itl[0], "ITL by batch at context 64: {itl:?}");

    // The planner loads it and runs its loop (no frontend answers: counted, not fatal).
    let mut p = planner(&[
        "--profile".into(),
        out.display().to_string(),
        "--connector".into(),
        "virtual".into(),
        "--virtual-file".into(),
        dir.path().join("decision.json").display().to_string(),
        "--interval".into(),
        "0.2".into(),
        "--frontend".into(),
        format!("http://127.0.0.1:{}", rotor_testing::free_port()),
    ]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while p.metric("rotor_planner_decisions_total", &[]) < 2.0 {
        assert!(Instant::now() < deadline, "{}", p.metrics_text());
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(p.metric("rotor_planner_frontend_scrape_failures_total", &[]) >= 2.0);
    assert_eq!(p.metric("rotor_planner_frontends_scraped", &[]), 0.0);
    p.proc.terminate(Duration::from_secs(10));
}

#[test]
fn max_seconds_cuts_the_native_sweep_and_counts_what_it_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("profile.json");
    let model = cluster::model_path().display().to_string();
    let (ok, stderr) = rotor(&[
        "profile",
        "--engine",
        "native",
        "--model",
        &model,
        "--threads",
        "1",
        "--isl",
        "16,32",
        "--batch",
        "1,2",
        "--context",
        "32",
        "--max-seconds",
        "0.001",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(ok, "{stderr}");
    // Each half keeps its first point.
    assert!(
        stderr.contains("1 prefill and 1 decode points (2 skipped by --max-seconds)"),
        "{stderr}"
    );
    let profile = PerfProfile::load(&out).expect("a valid PerfProfile");
    assert_eq!((profile.prefill.len(), profile.decode.len()), (1, 1));
}

#[test]
fn bad_native_profile_flags_are_named_errors() {
    for (args, expected) in [
        (
            &["--engine", "gpu"][..],
            "unknown --engine \"gpu\" (mocker or native)",
        ),
        (
            &["--engine", "native", "--isl", "0,16"][..],
            "--isl needs at least one value, each at least 1",
        ),
        (
            &["--engine", "native", "--batch", "128"][..],
            "--batch 128 is over --max-num-seqs 64",
        ),
        (
            &["--engine", "native", "--max-seconds", "0"][..],
            "--max-seconds must be a positive number",
        ),
        (
            &["--engine", "native", "--block-size", "0"][..],
            "--block-size and --max-num-batched-tokens must be at least 1",
        ),
        (
            &["--engine", "native", "--context", "9000000"][..],
            "--context 9000000 is past the model's context length",
        ),
        (
            &["--engine", "native", "--batch", "64", "--context", "8000"][..],
            "MiB of KV cache, over the sweep's bound of 4096 MiB",
        ),
    ] {
        let model = cluster::model_path().display().to_string();
        let mut all = vec!["profile", "--out", "/nonexistent/p.json", "--model", &model];
        all.extend_from_slice(args);
        let (ok, stderr) = rotor(&all);
        assert!(!ok, "{args:?}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

/// SIGTERM to the planner on the way out (also on a failed assertion), so that it stops the
/// workers it started instead of leaving them running.
struct PlannerGuard(Frontend);

impl Drop for PlannerGuard {
    fn drop(&mut self) {
        self.0.proc.terminate(Duration::from_secs(20));
    }
}

/// One streamed completion over a raw socket: (HTTP status, seconds to the first token, whether
/// it finished with `[DONE]` and no error event).
fn streamed_completion(addr: SocketAddr, prompt: &str, max_tokens: u32) -> (u16, f64, bool) {
    let body = json!({
        "model": MODEL,
        "prompt": prompt,
        "max_tokens": max_tokens,
        "temperature": 0,
        "stream": true,
    })
    .to_string();
    let t0 = Instant::now();
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_secs(5)) else {
        return (0, 0.0, false);
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(60)));
    let req = format!(
        "POST /v1/completions HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    if s.write_all(req.as_bytes()).is_err() {
        return (0, 0.0, false);
    }
    let mut reader = BufReader::new(s);
    let mut line = String::new();
    let _ = reader.read_line(&mut line);
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let mut ttft = None;
    let mut done = false;
    let mut error = false;
    loop {
        line.clear();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        let Some(data) = line.trim().strip_prefix("data: ") else {
            continue;
        };
        if data == "[DONE]" {
            done = true;
            break;
        }
        if data.contains("\"error\"") {
            error = true;
        }
        if ttft.is_none() && data.contains("\"text\"") {
            ttft = Some(t0.elapsed().as_secs_f64());
        }
    }
    let mut rest = Vec::new();
    let _ = reader.read_to_end(&mut rest);
    (status, ttft.unwrap_or(0.0), done && !error)
}

/// Concurrent clients, each looping over streamed completions until told to stop or until its
/// bound (count and time) is reached.
struct Load {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
    /// (time since the load started, TTFT) per request.
    ttfts: Arc<Mutex<Vec<(f64, f64)>>>,
    started: Instant,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Load {
    fn start(addr: SocketAddr, clients: usize, max_requests: u64, max_time: Duration) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(AtomicU64::new(0));
        let ttfts = Arc::new(Mutex::new(Vec::new()));
        let started = Instant::now();
        let threads = (0..clients)
            .map(|c| {
                let (stop, ok, failed, ttfts) =
                    (stop.clone(), ok.clone(), failed.clone(), ttfts.clone());
                std::thread::spawn(move || {
                    for i in 0..max_requests {
                        if stop.load(Ordering::Relaxed) || started.elapsed() > max_time {
                            break;
                        }
                        let prompt = format!("Client {c} request {i}: list three colours of the sky at dawn, noon and dusk.");
                        let (status, ttft, good) = streamed_completion(addr, &prompt, 8);
                        if status == 200 && good {
                            ok.fetch_add(1, Ordering::Relaxed);
                            ttfts
                                .lock()
                                .unwrap()
                                .push((started.elapsed().as_secs_f64(), ttft));
                        } else {
                            eprintln!("[load] request failed: status {status}");
                            failed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                })
            })
            .collect();
        Load {
            stop,
            ok,
            failed,
            ttfts,
            started,
            threads,
        }
    }

    fn finish(self) -> (u64, u64, Vec<(f64, f64)>) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            t.join().expect("load thread");
        }
        let ttfts = self.ttfts.lock().unwrap().clone();
        (
            self.ok.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
            ttfts,
        )
    }
}

/// Router decisions per worker instance, from the frontend's /metrics.
fn decisions_per_worker(text: &str) -> Vec<(String, f64)> {
    text.lines()
        .filter(|l| l.starts_with("rotor_frontend_router_decisions_total{"))
        .filter_map(|l| {
            let worker = l.split("worker=\"").nth(1)?.split('"').next()?.to_string();
            let v: f64 = l.rsplit(' ').next()?.parse().ok()?;
            Some((worker, v))
        })
        .collect()
}

fn wait_until(what: &str, within: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "timed out after {within:?}: {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn percentile(mut xs: Vec<f64>, p: f64) -> f64 {
    if xs.is_empty() {
        return 0.0;
    }
    xs.sort_by(f64::total_cmp);
    let i = ((xs.len() as f64 * p).ceil() as usize).clamp(1, xs.len()) - 1;
    xs[i]
}

#[test]
fn local_connector_adds_a_serving_worker_under_load_and_returns_to_the_minimum() {
    let dir = tempfile::tempdir().unwrap();
    let discovery = format!("file:{}", dir.path().join("discovery").display());
    // A profile slow enough that any sustained traffic needs more than one worker: 2 s of
    // prefill per request (TTFT corrections are bounded to a third of that), while no traffic
    // needs the minimum.
    let profile = dir.path().join("profile.json");
    std::fs::write(
        &profile,
        r#"{"engine":"test: 2 s per prefill","max_batch":4,
            "prefill":[{"isl":1,"ttft_ms":2000.0},{"isl":100000,"ttft_ms":2000.0}],
            "decode":[{"batch":1,"context":1000,"itl_ms":10.0},{"batch":4,"context":1000,"itl_ms":40.0}]}"#,
    )
    .unwrap();
    let f = frontend(&discovery, "mem", &["--router-mode", "round-robin"]);
    let model = cluster::model_path().display().to_string();
    let mut args: Vec<String> = [
        "--profile",
        profile.to_str().unwrap(),
        "--connector",
        "local",
        "--min-workers",
        "1",
        "--max-workers",
        "2",
        "--interval",
        "1",
        "--predictor",
        "constant",
        "--ttft-ms",
        "60000",
        "--itl-ms",
        "1000",
        "--decision-log",
        dir.path().join("decisions.jsonl").to_str().unwrap(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    // The planner finds the frontend through discovery, as deployments run it.
    args.push(format!("--discovery={discovery}"));
    args.extend(
        [
            "--",
            env!("CARGO_BIN_EXE_rotor"),
            "worker",
            "--discovery",
            &discovery,
            "--events",
            "mem",
            "--model",
            &model,
            "--engine",
            "native",
            "--threads",
            "1",
            "--kv-cache-memory",
            "256MiB",
        ]
        .iter()
        .map(|s| s.to_string()),
    );
    let p = PlannerGuard(planner(&args));
    let routable = || f.metric("rotor_frontend_routable_workers", &[]);
    // The planner starts the minimum: one worker, which registers.
    wait_until(
        "the first worker registers",
        Duration::from_secs(60),
        || routable() == 1.0,
    );
    f.wait_models(Duration::from_secs(30), "the model", |ids| ids == [MODEL]);
    std::thread::sleep(Duration::from_secs(3)); // a few idle plans: they keep one worker
    assert_eq!(p.0.metric("rotor_planner_scale_ups_total", &[]), 0.0);
    let first: Vec<String> = decisions_per_worker(&f.metrics_text())
        .into_iter()
        .map(|(w, _)| w)
        .collect();

    // Step up: four clients.
    let load = Load::start(f.addr, 4, 200, Duration::from_secs(90));
    let mut scale_up_at = None;
    let mut registered_at = None;
    let mut serving_at = None;
    let deadline = Instant::now() + Duration::from_secs(60);
    while serving_at.is_none() {
        assert!(
            Instant::now() < deadline,
            "no second worker served within 60 s\nplanner:\n{}\nfrontend:\n{}",
            p.0.metrics_text(),
            f.metrics_text()
        );
        let t = load.started.elapsed().as_secs_f64();
        if scale_up_at.is_none() && p.0.metric("rotor_planner_scale_ups_total", &[]) >= 1.0 {
            scale_up_at = Some(t);
        }
        let text = f.metrics_text();
        if registered_at.is_none()
            && metric_from(&text, "rotor_frontend_routable_workers", &[]) >= 2.0
        {
            registered_at = Some(t);
        }
        if decisions_per_worker(&text)
            .iter()
            .any(|(w, n)| !first.contains(w) && *n >= 1.0)
        {
            serving_at = Some(t);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    // Both workers keep serving under round-robin for a little while.
    std::thread::sleep(Duration::from_secs(4));
    let per_worker = decisions_per_worker(&f.metrics_text());
    let (ok, failed, ttfts) = load.finish();
    assert!(
        per_worker.iter().filter(|(_, n)| *n >= 2.0).count() >= 2,
        "two workers served: {per_worker:?}"
    );

    // Load stops: back to the minimum; the removed worker deregisters.
    let idle_from = Instant::now();
    wait_until(
        "the planner scales back to one worker",
        Duration::from_secs(40),
        || routable() == 1.0 && p.0.metric("rotor_planner_scale_downs_total", &[]) >= 1.0,
    );
    let back_to_min_s = idle_from.elapsed().as_secs_f64();
    // The survivor serves.
    let (status, _, good) = streamed_completion(f.addr, "One more question: what is 2+2?", 4);
    assert!(status == 200 && good, "after scale-down: status {status}");

    assert_eq!(failed, 0, "failed requests ({ok} succeeded)");
    let pm = p.0.metrics_text();
    assert_eq!(
        metric_from(&pm, "rotor_planner_frontends_scraped", &[]),
        1.0,
        "the frontend registered in discovery is read"
    );
    assert!(
        metric_from(&pm, "rotor_planner_decisions_total", &[]) >= 5.0,
        "{pm}"
    );
    assert!(
        metric_from(&pm, "rotor_planner_scale_ups_total", &[]) >= 1.0,
        "{pm}"
    );
    assert!(
        metric_from(&pm, "rotor_planner_scale_downs_total", &[]) >= 1.0,
        "{pm}"
    );
    assert_eq!(
        metric_from(&pm, "rotor_planner_connector_errors_total", &[]),
        0.0,
        "{pm}"
    );
    // The local connector started two workers and stopped one, which drained and exited cleanly.
    assert_eq!(
        metric_from(&pm, "rotor_planner_local_workers_started_total", &[]),
        2.0,
        "{pm}"
    );
    assert_eq!(
        metric_from(&pm, "rotor_planner_local_workers_stopped_total", &[]),
        1.0,
        "{pm}"
    );
    wait_until(
        "the removed worker exits cleanly",
        Duration::from_secs(30),
        || {
            p.0.metric("rotor_planner_local_worker_exits_total", &["status=\"ok\""]) >= 1.0
        },
    );
    assert_eq!(
        p.0.metric(
            "rotor_planner_local_worker_exits_total",
            &["status=\"error\""]
        ),
        0.0
    );

    // The figures of the step up (benchmark 3 in docs/BENCHMARKS.md).
    let serving = serving_at.unwrap_or_default();
    let transition: Vec<f64> = ttfts
        .iter()
        .filter(|(t, _)| *t <= serving + 5.0)
        .map(|(_, ttft)| *ttft)
        .collect();
    let n_transition = transition.len();
    eprintln!(
        "STEP-UP: scale-up decided {:.2} s after the step, new worker registered at {:.2} s, \
         first request on it at {:.2} s ({:.2} s after the decision); TTFT p50 {:.3} s, p99 {:.3} s \
         over the {n_transition} requests up to 5 s after that; all {ok} requests ok, {failed} failed; \
         back to 1 worker {back_to_min_s:.1} s after the load stopped",
        scale_up_at.unwrap_or(f64::NAN),
        registered_at.unwrap_or(f64::NAN),
        serving,
        serving - scale_up_at.unwrap_or(f64::NAN),
        percentile(transition.clone(), 0.5),
        percentile(transition, 0.99),
    );
}

/// The peer of the step-up figures: the same four clients for the same 6.5 s against one
/// static native worker (no planner). `cargo test … -- --ignored --nocapture`.
#[test]
#[ignore = "benchmark peer (scripts/bench/planner-step-up)"]
fn step_up_peer_one_static_worker() {
    let dir = tempfile::tempdir().unwrap();
    let discovery = format!("file:{}", dir.path().join("discovery").display());
    let f = frontend(&discovery, "mem", &["--router-mode", "round-robin"]);
    let _w = cluster::native_worker("static", &discovery, "mem");
    wait_until("the worker registers", Duration::from_secs(60), || {
        f.metric("rotor_frontend_routable_workers", &[]) == 1.0
    });
    // Registered is not yet served: the model is added just after the worker joins.
    f.wait_models(Duration::from_secs(30), "the model", |ids| ids == [MODEL]);
    let load = Load::start(f.addr, 4, 200, Duration::from_secs(90));
    std::thread::sleep(Duration::from_millis(6500));
    let (ok, failed, ttfts) = load.finish();
    let all: Vec<f64> = ttfts.iter().map(|(_, t)| *t).collect();
    eprintln!(
        "STATIC-1: TTFT p50 {:.3} s, p99 {:.3} s over {} requests in 6.5 s; {ok} ok, {failed} failed",
        percentile(all.clone(), 0.5),
        percentile(all.clone(), 0.99),
        all.len()
    );
    assert_eq!(failed, 0);
}

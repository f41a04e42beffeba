//! `rotor worker --engine llama.cpp` and `--engine openai` in front of real llama.cpp
//! `llama-server`s (started here on free ports with the default model), behind `rotor frontend`:
//! chat and completions stream through the official `openai` client, greedy output equals
//! llama-server's own, killing an engine mid-stream migrates its requests to the other worker,
//! the dead engine's worker leaves discovery (health probes) and comes back with the engine.
//!
//! Needs llama-server (ROTOR_TEST_LLAMA_SERVER, else /work/llama-build/build/bin/llama-server;
//! scripts/test builds it) and `python3` with the `openai` package (ROTOR_TEST_PYTHON).

mod cluster;

use std::process::Command;
use std::time::{Duration, Instant};

use cluster::{frontend, post_json, stream_completion, worker, Frontend};
use serde_json::{json, Value};

const MODEL: &str = "smollm2-135m-instruct";

use rotor_testing::LlamaServerGuard as LlamaServer;

fn wait_routable(f: &Frontend, n: usize) {
    let start = Instant::now();
    while f.metric("rotor_frontend_routable_workers", &[]) != n as f64 {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the frontend never saw {n} routable workers"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn python() -> String {
    std::env::var("ROTOR_TEST_PYTHON").unwrap_or_else(|_| "python3".into())
}

/// Runs the openai-client script against `f`; returns its JSON line.
fn openai_client(f: &Frontend) -> Value {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/python/openai_external_check.py"
    );
    let out = Command::new(python())
        .arg(script)
        .arg(f.url("/v1"))
        .arg(MODEL)
        .output()
        .expect("python runs");
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "the openai client check failed");
    serde_json::from_slice(&out.stdout).expect("one JSON line")
}

fn direct_completion(url: &str, prompt: &str, max_tokens: u32) -> String {
    let (status, v) = post_json(
        &format!("{url}/v1/completions"),
        &json!({"prompt": prompt, "max_tokens": max_tokens, "temperature": 0}),
    );
    assert_eq!(status, 200, "{v}");
    v["choices"][0]["text"].as_str().unwrap().to_string()
}

#[test]
fn llama_cpp_workers_serve_through_the_frontend_and_migrate() {
    let mut a = LlamaServer::start(&rotor_testing::model_path());
    let b = LlamaServer::start(&rotor_testing::model_path());
    let dir = tempfile::tempdir().expect("tempdir");
    let discovery = format!("file:{}", dir.path().display());
    let metrics_ports = [rotor_testing::free_port(), rotor_testing::free_port()];
    let _wa = worker(
        "llama-a",
        &discovery,
        "mem",
        &[
            "--engine",
            "llama.cpp",
            "--engine-url",
            &a.url,
            "--metrics-port",
            &metrics_ports[0].to_string(),
        ],
    );
    let _wb = worker(
        "llama-b",
        &discovery,
        "mem",
        &[
            "--engine",
            "llama.cpp",
            "--engine-url",
            &b.url,
            "--metrics-port",
            &metrics_ports[1].to_string(),
        ],
    );
    let f = frontend(&discovery, "mem", &["--router-mode", "round-robin"]);
    f.wait_models(Duration::from_secs(30), "the model", |ids| {
        ids.iter().any(|m| m == MODEL)
    });
    wait_routable(&f, 2);

    // The official client, streaming and not; greedy text equals llama-server's own.
    let got = openai_client(&f);
    let direct = direct_completion(&a.url, "The capital of France is", 16);
    assert_eq!(got["completion"].as_str().unwrap(), direct);

    // Kill one engine while 4 streams run (2 on each worker): every stream still ends with all
    // its tokens, the broken ones migrated to the other worker.
    const MAX_TOKENS: u64 = 400;
    let url = f.url("/v1/completions");
    let streams: Vec<_> = (0..4)
        .map(|i| {
            let url = url.clone();
            std::thread::spawn(move || {
                stream_completion(
                    &url,
                    &json!({"model": MODEL, "prompt": format!("Story {i}: once upon a time"),
                            "max_tokens": MAX_TOKENS, "ignore_eos": true, "temperature": 0}),
                )
            })
        })
        .collect();
    // 400 tokens take several seconds on this model with one thread and two slots per engine.
    std::thread::sleep(Duration::from_millis(1000));
    a.kill();
    for (i, s) in streams.into_iter().enumerate() {
        let r = s.join().expect("stream thread");
        assert!(r.error.is_none(), "stream {i}: {r:?}");
        assert_eq!(r.completion_tokens, Some(MAX_TOKENS), "stream {i}: {r:?}");
        assert!(r.saw_done, "stream {i}");
    }
    let migrations = f.metric("rotor_frontend_migrations_total", &[]);
    assert!(
        migrations >= 1.0,
        "expected a migration after the engine died; /metrics says {migrations}"
    );
    // Each worker's own /metrics counts what it relayed: both relayed requests, and the one
    // whose engine died counted the broken streams as upstream errors.
    let relay = |port: u16, name: &str| -> f64 {
        let addr = format!("127.0.0.1:{port}").parse().expect("address");
        let text = rotor_testing::process::http_get(addr, "/metrics").expect("worker /metrics");
        let prefix = format!("{name}{{model=\"{MODEL}\",engine=\"llama.cpp\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(prefix.as_str()))
            .unwrap_or_else(|| panic!("{name} missing:\n{text}"))
            .parse()
            .expect("a number")
    };
    for port in metrics_ports {
        assert!(
            relay(port, "rotor_external_relayed_total") >= 2.0,
            "port {port}"
        );
    }
    assert!(relay(metrics_ports[1], "rotor_external_completed_total") >= 2.0);
    assert!(relay(metrics_ports[0], "rotor_external_upstream_errors_total") >= 1.0);

    // The dead engine's worker fails its health probes and leaves discovery: the frontend
    // routes to one worker, and requests keep succeeding without touching the dead one.
    wait_routable(&f, 1);
    assert_eq!(
        relay(metrics_ports[0], "rotor_external_withdrawals_total"),
        1.0
    );
    assert!(relay(metrics_ports[0], "rotor_external_health_failures_total") >= 3.0);
    let errors_before = relay(metrics_ports[0], "rotor_external_upstream_errors_total");
    let migrations_before = f.metric("rotor_frontend_migrations_total", &[]);
    for i in 0..4 {
        let (status, v) = post_json(
            &url,
            &json!({"model": MODEL, "prompt": format!("Fact {i}:"), "max_tokens": 4}),
        );
        assert_eq!(status, 200, "{v}");
    }
    assert_eq!(
        relay(metrics_ports[0], "rotor_external_upstream_errors_total"),
        errors_before,
        "nothing was sent to the withdrawn worker"
    );
    assert_eq!(
        f.metric("rotor_frontend_migrations_total", &[]),
        migrations_before
    );
    // The engine comes back at its address: the worker registers again and serves.
    let port: u16 = a.url.rsplit(':').next().unwrap().parse().unwrap();
    let _a2 = LlamaServer::start_on(&rotor_testing::model_path(), port);
    wait_routable(&f, 2);
    assert_eq!(
        relay(metrics_ports[0], "rotor_external_reregistrations_total"),
        1.0
    );
    let relayed_before = relay(metrics_ports[0], "rotor_external_relayed_total");
    for i in 0..4 {
        let (status, v) = post_json(
            &url,
            &json!({"model": MODEL, "prompt": format!("Again {i}:"), "max_tokens": 4}),
        );
        assert_eq!(status, 200, "{v}");
    }
    assert!(
        relay(metrics_ports[0], "rotor_external_relayed_total") >= relayed_before + 2.0,
        "round-robin sends the returned worker its share"
    );
}

#[test]
fn openai_engine_relays_text_through_llama_servers_v1_api() {
    let server = LlamaServer::start(&rotor_testing::model_path());
    let dir = tempfile::tempdir().expect("tempdir");
    let discovery = format!("file:{}", dir.path().display());
    let _w = worker(
        "openai",
        &discovery,
        "mem",
        &["--engine", "openai", "--engine-url", &server.url],
    );
    let f = frontend(&discovery, "mem", &[]);
    f.wait_models(Duration::from_secs(30), "the model", |ids| {
        ids.iter().any(|m| m == MODEL)
    });
    let got = openai_client(&f);
    let direct = direct_completion(&server.url, "The capital of France is", 16);
    assert_eq!(got["completion"].as_str().unwrap(), direct);
}

#[test]
fn external_engine_flags_are_checked() {
    let out = Command::new(env!("CARGO_BIN_EXE_rotor"))
        .args(["worker", "--engine", "llama.cpp"])
        .output()
        .expect("rotor runs");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--engine-url"), "{err}");
    let out = Command::new(env!("CARGO_BIN_EXE_rotor"))
        .args([
            "worker",
            "--engine",
            "native",
            "--engine-url",
            "http://127.0.0.1:1",
        ])
        .output()
        .expect("rotor runs");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("need --engine llama.cpp"));
}

//! Disaggregated serving across processes with file discovery: `rotor worker --role prefill`,
//! `rotor worker --role decode` and `rotor frontend` on the real model. The frontend
//! disaggregates once both roles are discovered; a prefill worker killed with -9 costs no
//! request (local prefill on the decode worker, counted); a restarted prefill worker (a new
//! instance id) is used again without restarting anything else. The same over etcd and NATS
//! (real etcd-server and nats-server), through `rotor router`.

mod cluster;

use std::time::{Duration, Instant};

use cluster::{frontend, post_json, worker, Frontend, Proc};
use serde_json::json;

const MODEL: &str = "smollm2-135m-instruct";

fn role_worker(tag: &str, discovery: &str, role: &str) -> Proc {
    role_worker_on(tag, discovery, "mem", role)
}

fn role_worker_on(tag: &str, discovery: &str, events: &str, role: &str) -> Proc {
    worker(
        tag,
        discovery,
        events,
        &[
            "--engine",
            "native",
            "--threads",
            "1",
            "--kv-cache-memory",
            "256MiB",
            "--role",
            role,
        ],
    )
}

fn complete(f: &Frontend, prompt: &str) -> String {
    let (status, body) = post_json(
        &f.url("/v1/completions"),
        &json!({"model": MODEL, "prompt": prompt, "max_tokens": 8, "temperature": 0}),
    );
    assert_eq!(status, 200, "{body}");
    body["choices"][0]["text"]
        .as_str()
        .expect("text")
        .to_string()
}

fn story(topic: &str) -> String {
    format!(
        "Here is a short story about {topic}. Once upon a time, in a small village at the edge \
         of a great forest, there lived a curious child who wanted to learn everything about \
         {topic}. Every morning the child asked the"
    )
}

#[test]
fn prefill_and_decode_workers_behind_a_frontend() {
    let dir = tempfile::tempdir().expect("tempdir");
    let discovery = format!("file:{}", dir.path().display());
    let mut prefill = role_worker("prefill", &discovery, "prefill");
    let decode = role_worker("decode", &discovery, "decode");
    let f = frontend(&discovery, "mem", &["--disagg-min-prefill-tokens", "0"]);
    f.wait_models(Duration::from_secs(30), "the model", |ids| {
        ids == [MODEL.to_string()]
    });
    f.wait_for("both roles", |f| {
        f.metric("rotor_frontend_disagg_active", &[]) == 1.0
    });

    let first = complete(&f, &story("lighthouses"));
    assert!(!first.is_empty());
    assert_eq!(
        f.metric("rotor_frontend_remote_prefill_total", &[]),
        1.0,
        "the prefill worker was not used:\n{}",
        f.metrics_text()
    );
    assert!(f.metric("rotor_kv_transfer_blocks_total", &[]) >= 3.0);
    assert!(f.metric("rotor_kv_transfer_bytes_total", &[]) > 0.0);
    // The decode worker never served as a prefill worker and vice versa.
    let label = format!("worker=\"{}\"", decode.instance());
    assert_eq!(
        f.metric("rotor_frontend_router_decisions_total", &[&label]),
        1.0
    );

    // The prefill worker dies: the next request is still served, prefilled on the decode worker.
    prefill.kill9();
    let text = complete(&f, &story("volcanoes"));
    assert!(!text.is_empty());
    let fallbacks = f.metric(
        "rotor_frontend_local_prefill_total",
        &["reason=\"prefill_failed\""],
    ) + f.metric(
        "rotor_frontend_local_prefill_total",
        &["reason=\"no_prefill_worker\""],
    );
    assert!(fallbacks >= 1.0, "{}", f.metrics_text());
    assert_eq!(f.metric("rotor_frontend_remote_prefill_total", &[]), 1.0);

    // A new prefill worker (new instance id) is used again; nothing else restarts.
    let _prefill2 = role_worker("prefill-2", &discovery, "prefill");
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut topic = 0;
    while f.metric("rotor_frontend_remote_prefill_total", &[]) < 2.0 {
        assert!(
            Instant::now() < deadline,
            "the restarted prefill worker was never used:\n{}",
            f.metrics_text()
        );
        topic += 1;
        complete(&f, &story(&format!("comets number {topic}")));
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// Across machines: etcd discovery and NATS events (real servers on free ports), the workers
/// routed by a standalone `rotor router` that a frontend sends its requests through. The router
/// disaggregates (its /metrics count the remote prefill and the moved blocks), and greedy text
/// equals what the decode worker gives when it prefills itself.
#[test]
fn disaggregation_over_etcd_and_nats_through_the_router() {
    let etcd = rotor_testing::EtcdGuard::start().expect("etcd-server starts");
    let nats = rotor_testing::NatsGuard::start().expect("nats-server starts");
    let discovery = format!("etcd://{}", etcd.client_addr());
    let events = format!("nats://{}", nats.addr());
    let _prefill = role_worker_on("prefill", &discovery, &events, "prefill");
    let _decode = role_worker_on("decode", &discovery, &events, "decode");
    let router = cluster::router(&discovery, &events, &["--disagg-min-prefill-tokens", "0"]);
    let f = frontend(&discovery, &events, &["--component", "router"]);
    f.wait_models(Duration::from_secs(30), "the model", |ids| {
        ids == [MODEL.to_string()]
    });
    router.wait_for("both roles at the router", |r| {
        r.metric("rotor_frontend_disagg_active", &[]) == 1.0
    });
    let prompt = story("glaciers");
    let disaggregated = complete(&f, &prompt);
    assert!(!disaggregated.is_empty());
    assert_eq!(
        router.metric("rotor_frontend_remote_prefill_total", &[]),
        1.0,
        "the prefill worker was not used:\n{}",
        router.metrics_text()
    );
    let moved = router.metric("rotor_kv_transfer_blocks_total", &[]);
    assert!(
        moved >= 2.0,
        "{moved} blocks moved:\n{}",
        router.metrics_text()
    );
    // The same prompt again: the decode worker now caches it all, so nothing is prefilled
    // remotely, and the greedy text is the same.
    assert_eq!(complete(&f, &prompt), disaggregated);
    assert_eq!(
        router.metric("rotor_frontend_remote_prefill_total", &[]),
        1.0
    );
}

//! Rotor as several processes: `rotor frontend` + `rotor worker`s over file, etcd and NATS,
//! with real etcd-server and nats-server started on free ports. Native workers get one thread each
//! (two workers and a frontend share this machine's cores).

mod cluster;

use std::time::{Duration, Instant};

use cluster::{frontend, native_worker, post_json, router, stream_completion, worker, Frontend};
use rotor_testing::{EtcdGuard, NatsGuard};
use serde_json::{json, Value};

const MODEL: &str = "smollm2-135m-instruct";

fn greedy_chat(f: &Frontend) -> (u16, Value) {
    post_json(
        &f.url("/v1/chat/completions"),
        &json!({
            "model": MODEL,
            "messages": [{"role": "user", "content": "What color is the sky on a clear day?"}],
            "max_tokens": 24,
            "temperature": 0,
        }),
    )
}

fn answer(v: &Value) -> String {
    v["choices"][0]["message"]["content"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// Two native workers behind one frontend serve the real model; round-robin spreads requests,
/// and both workers give the same greedy answer.
fn two_workers_serve(discovery: &str, events: &str) {
    // Worker 1 also serves its own /metrics.
    let metrics_port = rotor_testing::free_port().to_string();
    let w1 = worker(
        "worker-1",
        discovery,
        events,
        &[
            "--engine",
            "native",
            "--threads",
            "1",
            "--kv-cache-memory",
            "256MiB",
            "--metrics-port",
            &metrics_port,
        ],
    );
    let w2 = native_worker("worker-2", discovery, events);
    let f = frontend(discovery, events, &["--router-mode", "round-robin"]);
    f.wait_models(Duration::from_secs(30), "the model", |ids| {
        ids == [MODEL.to_string()]
    });
    wait_routable(&f, 2);
    let mut answers = Vec::new();
    for _ in 0..4 {
        let (status, body) = greedy_chat(&f);
        assert_eq!(status, 200, "{body}");
        answers.push(answer(&body));
    }
    assert!(
        answers[0].to_lowercase().contains("blue"),
        "unexpected answer {:?}",
        answers[0]
    );
    assert!(
        answers.iter().all(|a| a == &answers[0]),
        "workers disagree on a greedy answer: {answers:?}"
    );
    // Round-robin over two workers: two requests each.
    for w in [&w1, &w2] {
        let label = format!("worker=\"{}\"", w.instance());
        assert_eq!(
            f.metric("rotor_frontend_router_decisions_total", &[&label]),
            2.0,
            "decisions for {}",
            w.tag
        );
    }
    // Logprobs cross the request plane: the greedy tokens spell the same answer and each is the
    // best of its alternatives.
    let (status, body) = post_json(
        &f.url("/v1/chat/completions"),
        &json!({
            "model": MODEL,
            "messages": [{"role": "user", "content": "What color is the sky on a clear day?"}],
            "max_tokens": 24,
            "temperature": 0,
            "logprobs": true,
            "top_logprobs": 2,
        }),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(answer(&body), answers[0]);
    let entries = body["choices"][0]["logprobs"]["content"]
        .as_array()
        .expect("logprobs.content");
    let spelled: String = entries
        .iter()
        .map(|e| e["token"].as_str().expect("token"))
        .collect();
    assert_eq!(spelled, answers[0]);
    for e in entries {
        assert_eq!(e["top_logprobs"][0]["token"], e["token"], "{e}");
        assert_eq!(e["top_logprobs"].as_array().map(Vec::len), Some(2), "{e}");
    }
    // Worker 1's own /metrics: its engine generated the tokens of its (at least two) requests.
    let addr = format!("127.0.0.1:{metrics_port}")
        .parse()
        .expect("address");
    let text = rotor_testing::process::http_get(addr, "/metrics").expect("worker /metrics");
    let generated: f64 = text
        .lines()
        .find_map(|l| {
            l.strip_prefix(&format!(
                "rotor_engine_generated_tokens_total{{model=\"{MODEL}\"}} "
            ))
        })
        .unwrap_or_else(|| panic!("no generated-token counter:\n{text}"))
        .parse()
        .expect("a number");
    assert!(generated >= 2.0, "worker 1 generated {generated} tokens");
}

/// Polls the unlabelled metric `name` of `f` until `ready` holds for its value; panics with `what`
/// and the metrics after `timeout`.
fn wait_metric(
    f: &Frontend,
    name: &str,
    timeout: Duration,
    what: &str,
    ready: impl Fn(f64) -> bool,
) {
    let deadline = Instant::now() + timeout;
    while !ready(f.metric(name, &[])) {
        assert!(Instant::now() < deadline, "{what}:\n{}", f.metrics_text());
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits until the frontend routes to `n` workers of the model.
fn wait_routable(f: &Frontend, n: usize) {
    wait_metric(
        f,
        "rotor_frontend_routable_workers",
        Duration::from_secs(30),
        &format!("the frontend never saw {n} routable workers"),
        |v| v == n as f64,
    );
}

#[test]
fn etcd_and_nats_cluster_serves_the_real_model() {
    let etcd = EtcdGuard::start().expect("etcd-server starts");
    let nats = NatsGuard::start().expect("nats-server starts");
    two_workers_serve(
        &format!("etcd://{}", etcd.client_addr()),
        &format!("nats://{}", nats.addr()),
    );
}

#[test]
fn file_discovery_cluster_serves_the_real_model() {
    let dir = tempfile::tempdir().expect("tempdir");
    two_workers_serve(&format!("file:{}", dir.path().display()), "mem");
}

/// kill -9 of one of two workers while 20 streams run: every stream still ends with all its
/// tokens, through migration to the surviving worker.
#[test]
fn kill9_during_20_streams_every_stream_completes_by_migration() {
    let dir = tempfile::tempdir().expect("tempdir");
    let discovery = format!("file:{}", dir.path().display());
    let mut victim = native_worker("victim", &discovery, "mem");
    let survivor = native_worker("survivor", &discovery, "mem");
    let f = frontend(&discovery, "mem", &["--router-mode", "round-robin"]);
    f.wait_models(Duration::from_secs(30), "the model", |ids| !ids.is_empty());
    // Both workers must be routable before the streams start, or round-robin has one choice.
    wait_routable(&f, 2);
    let victim_label = format!("worker=\"{}\"", victim.instance());
    let survivor_label = format!("worker=\"{}\"", survivor.instance());

    const MAX_TOKENS: u64 = 48;
    let url = f.url("/v1/completions");
    let streams: Vec<_> = (0..20)
        .map(|i| {
            let url = url.clone();
            std::thread::spawn(move || {
                stream_completion(
                    &url,
                    &json!({
                        "model": MODEL,
                        "prompt": format!("Story number {i}: once upon a time"),
                        "max_tokens": MAX_TOKENS,
                        "ignore_eos": true,
                        "temperature": 0,
                    }),
                )
            })
        })
        .collect();
    // Let every stream get going, then kill one worker mid-generation.
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        f.metric("rotor_frontend_router_decisions_total", &[&victim_label]),
        10.0,
        "round-robin gave the victim half of the 20 streams"
    );
    victim.kill9();
    let results: Vec<_> = streams
        .into_iter()
        .map(|h| h.join().expect("stream thread"))
        .collect();
    for (i, r) in results.iter().enumerate() {
        assert!(r.error.is_none(), "stream {i} got an error: {:?}", r.error);
        assert_eq!(
            r.finish_reason.as_deref(),
            Some("length"),
            "stream {i}: {r:?}"
        );
        assert_eq!(r.completion_tokens, Some(MAX_TOKENS), "stream {i}: {r:?}");
        assert!(r.saw_done, "stream {i} did not end with [DONE]");
    }
    let migrations = f.metric("rotor_frontend_migrations_total", &[]);
    assert!(
        migrations >= 1.0,
        "expected at least one migration after kill -9, /metrics says {migrations}"
    );
    // The dead worker leaves routing within its lease TTL (6 s) ...
    wait_routable(&f, 1);
    // ... and no new request goes to it.
    let survivor_before = f.metric("rotor_frontend_router_decisions_total", &[&survivor_label]);
    for _ in 0..3 {
        let (status, body) = greedy_chat(&f);
        assert_eq!(status, 200, "{body}");
    }
    // (A removed worker's series may be gone from /metrics; it must not have grown.)
    assert!(f.metric("rotor_frontend_router_decisions_total", &[&victim_label]) <= 10.0);
    assert_eq!(
        f.metric("rotor_frontend_router_decisions_total", &[&survivor_label]),
        survivor_before + 3.0
    );
}

/// A worker killed with -9 leaves its `file:` entry behind; the entry expires with its lease and
/// the model leaves /v1/models.
#[test]
fn stale_file_entry_expires() {
    let dir = tempfile::tempdir().expect("tempdir");
    let discovery = format!("file:{}", dir.path().display());
    let mut w = worker("echo", &discovery, "mem", &["--engine", "echo"]);
    let f = frontend(&discovery, "mem", &[]);
    f.wait_models(Duration::from_secs(30), "the model", |ids| !ids.is_empty());
    let files_before = count_files(dir.path());
    assert!(files_before > 0, "the worker wrote no discovery entry");
    w.kill9();
    // The entry outlives the process for a while...
    assert!(count_files(dir.path()) > 0);
    // ...and expires within the lease TTL (6 s) plus polling slack.
    let t0 = Instant::now();
    f.wait_models(Duration::from_secs(20), "the model to disappear", |ids| {
        ids.is_empty()
    });
    assert!(t0.elapsed() < Duration::from_secs(20));
    let (status, body) = greedy_chat(&f);
    assert_eq!(status, 404, "{body}");
}

fn count_files(dir: &std::path::Path) -> usize {
    walk(dir)
}

fn walk(dir: &std::path::Path) -> usize {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return 0;
    };
    rd.filter_map(Result::ok)
        .map(|e| {
            let p = e.path();
            if p.is_dir() {
                walk(&p)
            } else {
                1
            }
        })
        .sum()
}

/// etcd restarts under a running cluster: the worker re-registers on its own, the frontend's
/// watch resumes, and a worker started after the restart is found too.
#[test]
fn etcd_restart_recovers_without_restarting_rotor() {
    let mut etcd = EtcdGuard::start().expect("etcd-server starts");
    let discovery = format!("etcd://{}", etcd.client_addr());
    let mut first = worker("echo-1", &discovery, "mem", &["--engine", "echo"]);
    let f = frontend(&discovery, "mem", &[]);
    f.wait_models(Duration::from_secs(30), "the model", |ids| !ids.is_empty());

    etcd.restart().expect("etcd restarts");
    // Requests keep working (routing does not need etcd on the request path)...
    let (status, body) = greedy_chat(&f);
    assert_eq!(status, 200, "{body}");
    // ...and a worker that registers after the restart is discovered: once it is up, the first
    // one can go and the model stays served.
    let _second = worker("echo-2", &discovery, "mem", &["--engine", "echo"]);
    std::thread::sleep(Duration::from_secs(2));
    first.terminate(Duration::from_secs(30));
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, body) = greedy_chat(&f);
        if status == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no worker serves after etcd restart: {status} {body}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    f.wait_models(Duration::from_secs(10), "the model", |ids| !ids.is_empty());
}

/// Sends one completion and returns the prompt tokens the server reports as cached.
fn complete(f: &Frontend, prompt: &str) -> u64 {
    let (status, body) = post_json(
        &f.url("/v1/completions"),
        &json!({"model": MODEL, "prompt": prompt, "max_tokens": 4, "ignore_eos": true}),
    );
    assert_eq!(status, 200, "{body}");
    body["usage"]["prompt_tokens_details"]["cached_tokens"]
        .as_u64()
        .unwrap_or(0)
}

fn long_prefix(topic: &str) -> String {
    (0..40)
        .map(|i| format!("Fact {i} about {topic} is worth remembering. "))
        .collect()
}

/// The worker (of `workers`) whose decision count grew between two /metrics readings.
fn decisions(f: &Frontend, workers: &[&cluster::Proc]) -> Vec<f64> {
    workers
        .iter()
        .map(|w| {
            let label = format!("worker=\"{}\"", w.instance());
            f.metric("rotor_frontend_router_decisions_total", &[&label])
        })
        .collect()
}

/// Sends a prompt with a fresh prefix, then four that share it: all four must land on the worker
/// that served (and now caches) the first, and be served from its prefix cache.
fn shared_prefix_lands_on_its_worker(f: &Frontend, workers: &[&cluster::Proc], topic: &str) {
    let prefix = long_prefix(topic);
    let events_before = f.metric("rotor_frontend_kv_router_events_applied_total", &[]);
    let before = decisions(f, workers);
    complete(f, &format!("{prefix}Question zero?"));
    let after_first = decisions(f, workers);
    let owner = (0..workers.len())
        .find(|&i| after_first[i] > before[i])
        .expect("the first request was routed somewhere");
    // Wait until the owner's KV events for that prompt reached the frontend over NATS.
    wait_metric(
        f,
        "rotor_frontend_kv_router_events_applied_total",
        Duration::from_secs(20),
        "no KV event reached the frontend",
        |v| v > events_before,
    );
    for q in 1..=4 {
        let cached = complete(f, &format!("{prefix}Question {q}?"));
        assert!(
            cached >= 256,
            "request {q} reused only {cached} cached tokens"
        );
    }
    let after = decisions(f, workers);
    for i in 0..workers.len() {
        let expected = if i == owner {
            after_first[i] + 4.0
        } else {
            after_first[i]
        };
        assert_eq!(
            after[i], expected,
            "worker {} decisions (owner is {})",
            workers[i].tag, workers[owner].tag
        );
    }
}

/// KV-aware routing end to end over NATS with mocker workers; then NATS restarts under the
/// running cluster and routing by KV events resumes without restarting Rotor's processes.
#[test]
fn kv_routing_over_nats_follows_the_prefix_and_survives_a_nats_restart() {
    let mut nats = NatsGuard::start().expect("nats-server starts");
    let events = format!("nats://{}", nats.addr());
    let dir = tempfile::tempdir().expect("tempdir");
    let discovery = format!("file:{}", dir.path().display());
    let mocker = ["--engine", "mocker", "--mocker-speedup", "10"];
    let a = worker("mocker-a", &discovery, &events, &mocker);
    let b = worker("mocker-b", &discovery, &events, &mocker);
    let f = frontend(&discovery, &events, &["--router-mode", "kv"]);
    f.wait_models(Duration::from_secs(30), "the model", |ids| !ids.is_empty());
    wait_routable(&f, 2);
    shared_prefix_lands_on_its_worker(&f, &[&a, &b], "rivers");

    nats.restart().expect("nats-server restarts");
    // Clients reconnect on their own; give them a moment, then the same must hold for a new prefix.
    std::thread::sleep(Duration::from_secs(3));
    shared_prefix_lands_on_its_worker(&f, &[&a, &b], "mountains");
    assert!(f.metric("rotor_frontend_kv_router_hit_rate", &[]) > 0.0);
}

/// Decisions per worker summed over several routers' /metrics.
fn decisions_over(routers: &[&Frontend], workers: &[&cluster::Proc]) -> Vec<f64> {
    let per_router: Vec<Vec<f64>> = routers.iter().map(|r| decisions(r, workers)).collect();
    (0..workers.len())
        .map(|i| per_router.iter().map(|d| d[i]).sum())
        .collect()
}

/// Two `rotor router` replicas (kv, replica sync over NATS) between a frontend and two mocker
/// workers: the frontend reaches the model through them, requests sharing a prefix land on the
/// worker that holds it whichever router takes them, each router applies the other's decisions,
/// and when one router stops the other carries on.
#[test]
fn standalone_routers_share_decisions_and_follow_the_prefix() {
    let nats = NatsGuard::start().expect("nats-server starts");
    let events = format!("nats://{}", nats.addr());
    let dir = tempfile::tempdir().expect("tempdir");
    let discovery = format!("file:{}", dir.path().display());
    let mocker = ["--engine", "mocker", "--mocker-speedup", "10"];
    let a = worker("mocker-a", &discovery, &events, &mocker);
    let b = worker("mocker-b", &discovery, &events, &mocker);
    let mut r1 = router(&discovery, &events, &["--router-replica-sync"]);
    let r2 = router(&discovery, &events, &["--router-replica-sync"]);
    let f = frontend(&discovery, &events, &["--component", "router"]);
    f.wait_models(
        Duration::from_secs(30),
        "the model through the routers",
        |ids| ids.iter().any(|id| id == MODEL),
    );
    wait_routable(&f, 2);
    for r in [&r1, &r2] {
        wait_routable(r, 2);
    }
    let workers = [&a, &b];
    let prefix = long_prefix("glaciers");
    complete(&f, &format!("{prefix}Question zero?"));
    let after_first = decisions_over(&[&r1, &r2], &workers);
    let owner = (0..2)
        .find(|&i| after_first[i] == 1.0)
        .expect("one decision");
    // Both routers must have the owner's KV events before the rest.
    for r in [&r1, &r2] {
        wait_metric(
            r,
            "rotor_frontend_kv_router_events_applied_total",
            Duration::from_secs(20),
            "no KV event reached a router",
            |v| v > 0.0,
        );
    }
    for q in 1..=4 {
        let cached = complete(&f, &format!("{prefix}Question {q}?"));
        assert!(
            cached >= 256,
            "request {q} reused only {cached} cached tokens"
        );
    }
    let after = decisions_over(&[&r1, &r2], &workers);
    assert_eq!(after[owner], 5.0, "every request on the owner: {after:?}");
    assert_eq!(after[1 - owner], 0.0, "{after:?}");
    // The frontend alternates routers, and each applied the other's decisions.
    let routed_by = |r: &Frontend| decisions(r, &workers).iter().sum::<f64>();
    let (by1, by2) = (routed_by(&r1), routed_by(&r2));
    assert!(by1 >= 2.0 && by2 >= 2.0, "routers took {by1} and {by2}");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (seen1, seen2) = (
            r1.metric("rotor_frontend_kv_router_remote_decisions_total", &[]),
            r2.metric("rotor_frontend_kv_router_remote_decisions_total", &[]),
        );
        if seen1 == by2 && seen2 == by1 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "replica sync: router 1 saw {seen1} of {by2}, router 2 saw {seen2} of {by1}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Stopping one router deregisters its endpoint; the other serves everything.
    let status = r1.proc.terminate(Duration::from_secs(20));
    assert!(
        status.is_some_and(|s| s.success()),
        "router 1 stops cleanly: {status:?}"
    );
    wait_routable(&f, 1);
    for q in 5..=6 {
        let cached = complete(&f, &format!("{prefix}Question {q}?"));
        assert!(
            cached >= 256,
            "after the stop, request {q} reused only {cached} tokens"
        );
    }
    assert_eq!(decisions(&r2, &workers)[owner], by2 + 2.0);
}

//! Direct KV transfer between `rotor worker --role prefill` and `--role decode` processes on
//! the real model: the prefill worker sends the blocks to the decode worker itself, over shared
//! memory when both cards name one host (`--kv-transport auto`) or TCP when a router forces it
//! (`--kv-transport tcp`). Greedy text equals aggregated serving; the per-transport counters
//! move at the router and on both workers, and nothing goes through the router (its `relay`
//! bytes stay 0); no shared-memory file is left after a transfer, a client that cancels
//! mid-transfer, or an import the decode worker refuses; both workers' KV pools end empty.

mod cluster;
#[allow(dead_code)]
mod support;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use cluster::{frontend, metric_from, post_json, worker_with_env, Proc};
use serde_json::json;
use support::RotorServer;

const MODEL: &str = "smollm2-135m-instruct";

fn have_model() -> bool {
    if std::env::var_os("ROTOR_TEST_MODEL").is_none() {
        eprintln!("skipped: ROTOR_TEST_MODEL is not set (source /tmp/testenv.sh or scripts/test)");
        return false;
    }
    true
}

/// A role worker with its own /metrics, on host `host_id`, using `shm_dir`.
struct RoleWorker {
    proc: Proc,
    metrics_url: String,
}

impl RoleWorker {
    fn start(tag: &str, discovery: &str, role: &str, host_id: &str, shm_dir: &Path) -> Self {
        Self::start_with(tag, discovery, role, host_id, shm_dir, &[])
    }

    fn start_with(
        tag: &str,
        discovery: &str,
        role: &str,
        host_id: &str,
        shm_dir: &Path,
        extra: &[&str],
    ) -> Self {
        let port = rotor_testing::free_port().to_string();
        let dir = shm_dir.display().to_string();
        let mut args = vec![
            "--engine",
            "native",
            "--threads",
            "1",
            "--kv-cache-memory",
            "256MiB",
            "--role",
            role,
            "--kv-shm-dir",
            &dir,
            "--metrics-port",
            &port,
        ];
        args.extend_from_slice(extra);
        let proc = worker_with_env(tag, discovery, "mem", &args, &[("ROTOR_HOST_ID", host_id)]);
        Self {
            proc,
            metrics_url: format!("http://127.0.0.1:{port}/metrics"),
        }
    }

    fn metric(&self, name: &str, labels: &[&str]) -> f64 {
        let out = Command::new("curl")
            .args(["-sS", "--max-time", "10", &self.metrics_url])
            .output()
            .expect("curl");
        metric_from(&String::from_utf8_lossy(&out.stdout), name, labels)
    }

    /// Waits (bounded) until no KV block is held by a request here.
    fn wait_pool_idle(&self, what: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let used = self.metric("rotor_kv_cache_blocks_used", &[]);
            if used == 0.0 {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{}: {used} KV blocks still held {what}",
                self.proc.tag
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

fn complete_at(url: &str, prompt: &str) -> String {
    let (status, body) = post_json(
        url,
        &json!({"model": MODEL, "prompt": prompt, "max_tokens": 10, "temperature": 0}),
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
         {topic}. Every morning the child asked the old keeper a new question, and every \
         evening the keeper told a new story about ships, storms and the sea. One day the \
         child asked the"
    )
}

/// The KV transfer files left in `dir`.
fn files_in(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .expect("read the shm dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect()
}

/// Waits (bounded) until `dir` is empty; a file may outlive its request by the moment it takes
/// the worker to notice a cancel.
fn wait_no_files(dir: &Path, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let left = files_in(dir);
        if left.is_empty() {
            return;
        }
        assert!(Instant::now() < deadline, "files left {what}: {left:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn shm_dir() -> Option<tempfile::TempDir> {
    match tempfile::tempdir_in("/dev/shm") {
        Ok(dir) => Some(dir),
        Err(error) => {
            eprintln!("skipped: no usable /dev/shm ({error})");
            None
        }
    }
}

#[test]
fn blocks_go_worker_to_worker_over_shared_memory_and_tcp_with_aggregated_output() {
    if !have_model() {
        return;
    }
    let Some(shm) = shm_dir() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let discovery = format!("file:{}", dir.path().display());
    let prefill = RoleWorker::start("prefill", &discovery, "prefill", "host-a", shm.path());
    let decode = RoleWorker::start("decode", &discovery, "decode", "host-a", shm.path());
    let auto = frontend(&discovery, "mem", &["--disagg-min-prefill-tokens", "0"]);
    let tcp = frontend(
        &discovery,
        "mem",
        &["--disagg-min-prefill-tokens", "0", "--kv-transport", "tcp"],
    );
    let aggregated = RotorServer::start(&[]);
    for f in [&auto, &tcp] {
        f.wait_models(Duration::from_secs(30), "the model", |ids| {
            ids == [MODEL.to_string()]
        });
        f.wait_for("both roles", |f| {
            f.metric("rotor_frontend_disagg_active", &[]) == 1.0
        });
    }

    // Same host id, auto: shared memory.
    let prompt = story("lighthouses");
    let want = complete_at(&aggregated.url("/v1/completions"), &prompt);
    let got = complete_at(&auto.url("/v1/completions"), &prompt);
    assert_eq!(
        got, want,
        "shared-memory disaggregation differs from aggregated"
    );
    assert_eq!(
        auto.metric("rotor_frontend_remote_prefill_total", &[]),
        1.0,
        "the prefill worker was not used:\n{}",
        auto.metrics_text()
    );
    let shm_bytes = auto.metric("rotor_kv_transfer_bytes_total", &["transport=\"shm\""]);
    assert!(shm_bytes > 0.0, "{}", auto.metrics_text());
    assert_eq!(
        auto.metric("rotor_kv_transfer_bytes_total", &["transport=\"tcp\""]),
        0.0
    );
    assert_eq!(
        auto.metric("rotor_kv_transfer_bytes_total", &["transport=\"relay\""]),
        0.0,
        "blocks passed through the router"
    );
    assert!(auto.metric("rotor_kv_transfer_blocks_total", &[]) >= 3.0);
    assert_eq!(
        prefill.metric("rotor_kv_push_sent_bytes_total", &["transport=\"shm\""]),
        shm_bytes
    );
    assert!(decode.metric("rotor_kv_push_shm_received_batches_total", &[]) >= 1.0);
    assert_eq!(
        auto.metric("rotor_kv_transfer_shm_fallbacks_total", &[]),
        0.0
    );
    assert!(files_in(shm.path()).is_empty(), "a transfer left its file");

    // The same host, a router forcing TCP.
    let prompt = story("volcanoes");
    let want = complete_at(&aggregated.url("/v1/completions"), &prompt);
    let got = complete_at(&tcp.url("/v1/completions"), &prompt);
    assert_eq!(got, want, "TCP disaggregation differs from aggregated");
    assert_eq!(tcp.metric("rotor_frontend_remote_prefill_total", &[]), 1.0);
    let tcp_bytes = tcp.metric("rotor_kv_transfer_bytes_total", &["transport=\"tcp\""]);
    assert!(tcp_bytes > 0.0, "{}", tcp.metrics_text());
    assert_eq!(
        tcp.metric("rotor_kv_transfer_bytes_total", &["transport=\"shm\""]),
        0.0
    );
    assert_eq!(
        tcp.metric("rotor_kv_transfer_bytes_total", &["transport=\"relay\""]),
        0.0,
        "blocks passed through the router"
    );
    assert_eq!(
        prefill.metric("rotor_kv_push_sent_bytes_total", &["transport=\"tcp\""]),
        tcp_bytes
    );

    // A client that gives up mid-transfer: a long prompt, dropped once its first batch moved.
    let long = story("comets ").repeat(30);
    let body = json!({"model": MODEL, "prompt": long, "max_tokens": 4, "stream": true});
    let batches = |w: &RoleWorker| w.metric("rotor_kv_push_sent_batches_total", &[]);
    let before = batches(&prefill);
    let remote_before = auto.metric("rotor_frontend_remote_prefill_total", &[]);
    let mut client = Command::new("curl")
        .args([
            "-sS",
            "-N",
            "--max-time",
            "60",
            "-H",
            "content-type: application/json",
        ])
        .args(["-d", &body.to_string(), &auto.url("/v1/completions")])
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("curl");
    let deadline = Instant::now() + Duration::from_secs(30);
    while batches(&prefill) == before {
        assert!(
            Instant::now() < deadline,
            "no batch of the long prompt moved"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = client.kill();
    let _ = client.wait();
    assert_eq!(
        auto.metric("rotor_frontend_remote_prefill_total", &[]),
        remote_before,
        "the transfer ended before the client left: make the prompt longer"
    );
    auto.wait_for("the cancelled transfer to end", |f| {
        f.metric("rotor_kv_transfers_in_flight", &[]) == 0.0
    });
    wait_no_files(shm.path(), "after a cancelled transfer");
    prefill.wait_pool_idle("after a cancelled transfer");
    decode.wait_pool_idle("after a cancelled transfer");
    // Both workers still serve.
    let prompt = story("glaciers");
    assert_eq!(
        complete_at(&auto.url("/v1/completions"), &prompt),
        complete_at(&aggregated.url("/v1/completions"), &prompt)
    );
    wait_no_files(shm.path(), "after the last transfer");
    prefill.wait_pool_idle("at the end");
    decode.wait_pool_idle("at the end");
}

/// A decode worker that refuses the blocks (another KV layout: f32 against the prefill
/// worker's f16) has read and removed the file; the request is prefilled locally.
#[test]
fn a_refused_shared_memory_import_leaves_no_file_and_falls_back_to_local_prefill() {
    if !have_model() {
        return;
    }
    let Some(shm) = shm_dir() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let discovery = format!("file:{}", dir.path().display());
    let prefill = RoleWorker::start_with(
        "prefill-f16",
        &discovery,
        "prefill",
        "host-b",
        shm.path(),
        &["--kv-dtype", "f16"],
    );
    let decode = RoleWorker::start("decode-f32", &discovery, "decode", "host-b", shm.path());
    let f = frontend(&discovery, "mem", &["--disagg-min-prefill-tokens", "0"]);
    f.wait_models(Duration::from_secs(30), "the model", |ids| {
        ids == [MODEL.to_string()]
    });
    f.wait_for("both roles", |f| {
        f.metric("rotor_frontend_disagg_active", &[]) == 1.0
    });
    let text = complete_at(&f.url("/v1/completions"), &story("harbours"));
    assert!(!text.is_empty());
    assert_eq!(
        f.metric(
            "rotor_frontend_local_prefill_total",
            &["reason=\"import_rejected\""]
        ),
        1.0,
        "{}",
        f.metrics_text()
    );
    assert!(
        decode.metric(
            "rotor_engine_kv_import_rejections_total",
            &["reason=\"layout\""]
        ) >= 1.0
    );
    assert!(decode.metric("rotor_kv_push_shm_received_batches_total", &[]) >= 1.0);
    assert!(
        files_in(shm.path()).is_empty(),
        "a refused import left its file"
    );
    prefill.wait_pool_idle("after a refused import");
    decode.wait_pool_idle("after a refused import");
}

/// A prefill worker that cannot write its shared-memory directory sends the batches over TCP
/// instead, counted as fallbacks; the request is still disaggregated.
#[test]
fn an_unwritable_shared_memory_directory_falls_back_to_tcp_and_is_counted() {
    if !have_model() {
        return;
    }
    let Some(shm) = shm_dir() else { return };
    let missing = shm.path().join("missing");
    let dir = tempfile::tempdir().expect("tempdir");
    let discovery = format!("file:{}", dir.path().display());
    let prefill = RoleWorker::start("prefill-noshm", &discovery, "prefill", "host-c", &missing);
    let decode = RoleWorker::start("decode-c", &discovery, "decode", "host-c", shm.path());
    let f = frontend(&discovery, "mem", &["--disagg-min-prefill-tokens", "0"]);
    f.wait_models(Duration::from_secs(30), "the model", |ids| {
        ids == [MODEL.to_string()]
    });
    f.wait_for("both roles", |f| {
        f.metric("rotor_frontend_disagg_active", &[]) == 1.0
    });
    let text = complete_at(&f.url("/v1/completions"), &story("bridges"));
    assert!(!text.is_empty());
    assert_eq!(
        f.metric("rotor_frontend_remote_prefill_total", &[]),
        1.0,
        "{}",
        f.metrics_text()
    );
    assert!(f.metric("rotor_kv_transfer_shm_fallbacks_total", &[]) >= 1.0);
    assert!(prefill.metric("rotor_kv_push_shm_fallbacks_total", &[]) >= 1.0);
    assert!(f.metric("rotor_kv_transfer_bytes_total", &["transport=\"tcp\""]) > 0.0);
    assert_eq!(
        f.metric("rotor_kv_transfer_bytes_total", &["transport=\"shm\""]),
        0.0
    );
    assert!(files_in(shm.path()).is_empty());
    prefill.wait_pool_idle("after a fallback");
    decode.wait_pool_idle("after a fallback");
}

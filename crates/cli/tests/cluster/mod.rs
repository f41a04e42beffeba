//! Test support for multi-process clusters: `rotor worker` and `rotor frontend` child processes,
//! SSE streams read with curl, /metrics and /v1/models polled until a condition holds.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

pub use rotor_testing::model_path;

/// A rotor child process; killed on drop. Its stderr is echoed with a tag.
pub struct Proc {
    pub child: Child,
    pub tag: String,
    /// The address announced in the ready line.
    pub addr: String,
    /// The whole ready line.
    pub ready_line: String,
}

impl Proc {
    /// Spawns `rotor ARGS` and waits (bounded) for a stderr line containing `ready_marker`;
    /// the address is the word after `addr_marker` on that line.
    fn spawn(tag: &str, args: &[String], ready_marker: &str, addr_marker: &str) -> Proc {
        Self::spawn_with_env(tag, args, &[], ready_marker, addr_marker)
    }

    /// [`spawn`](Self::spawn) with extra environment variables.
    fn spawn_with_env(
        tag: &str,
        args: &[String],
        env: &[(&str, &str)],
        ready_marker: &str,
        addr_marker: &str,
    ) -> Proc {
        let mut child = Command::new(env!("CARGO_BIN_EXE_rotor"))
            .args(args)
            .envs(env.iter().copied())
            .env("ROTOR_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn rotor");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = mpsc::channel();
        let (tag2, ready, addr_m) = (
            tag.to_string(),
            ready_marker.to_string(),
            addr_marker.to_string(),
        );
        std::thread::spawn(move || {
            let mut sent = false;
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("[{tag2}] {line}");
                if !sent && line.contains(&ready) {
                    if let Some(rest) = line.split(&addr_m).nth(1) {
                        let addr = rest
                            .split_whitespace()
                            .next()
                            .unwrap_or_default()
                            .trim_end_matches([',', ')', ';'])
                            .to_string();
                        let _ = tx.send((addr, line.clone()));
                        sent = true;
                    }
                }
            }
        });
        match rx.recv_timeout(Duration::from_secs(180)) {
            Ok((addr, ready_line)) => Proc {
                child,
                tag: tag.to_string(),
                addr,
                ready_line,
            },
            Err(_) => {
                let _ = child.kill();
                panic!("{tag} did not become ready within 180 s");
            }
        }
    }

    /// A worker's instance id (16 hex digits), as its ready line and /metrics labels show it.
    pub fn instance(&self) -> String {
        self.ready_line
            .split("instance ")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_else(|| panic!("no instance id in {:?}", self.ready_line))
            .to_string()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// kill -9.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then waits (bounded) for the exit status.
    pub fn terminate(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `rotor worker` with `--discovery`/`--events` and extra flags.
pub fn worker(tag: &str, discovery: &str, events: &str, extra: &[&str]) -> Proc {
    worker_with_env(tag, discovery, events, extra, &[])
}

/// [`worker`] with extra environment variables (e.g. `ROTOR_HOST_ID`).
pub fn worker_with_env(
    tag: &str,
    discovery: &str,
    events: &str,
    extra: &[&str],
    env: &[(&str, &str)],
) -> Proc {
    let mut args: Vec<String> = vec![
        "worker".into(),
        "--discovery".into(),
        discovery.into(),
        "--events".into(),
        events.into(),
        "--model".into(),
        model_path().display().to_string(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    Proc::spawn_with_env(tag, &args, env, "worker ready", " on ")
}

/// A native worker sized for tests on 2 cores: one thread, a small KV cache.
pub fn native_worker(tag: &str, discovery: &str, events: &str) -> Proc {
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
        ],
    )
}

/// `rotor frontend` on a free port.
pub fn frontend(discovery: &str, events: &str, extra: &[&str]) -> Frontend {
    http_process("frontend", discovery, events, extra)
}

/// `rotor router` (the standalone router) with its HTTP port (/metrics, /health) on a free port.
pub fn router(discovery: &str, events: &str, extra: &[&str]) -> Frontend {
    http_process("router", discovery, events, extra)
}

/// `rotor planner ARGS`, ready once it prints the address of its /metrics.
pub fn planner(args: &[String]) -> Frontend {
    let mut all: Vec<String> = vec!["planner".into()];
    all.extend(args.iter().cloned());
    let proc = Proc::spawn("planner", &all, "/metrics on http://", "on http://");
    let addr: SocketAddr = proc.addr.parse().expect("HTTP address");
    Frontend { proc, addr }
}

/// `rotor SUBCOMMAND --port 0 …`, ready once it prints its `http://` address.
fn http_process(subcommand: &str, discovery: &str, events: &str, extra: &[&str]) -> Frontend {
    let mut args: Vec<String> = vec![
        subcommand.into(),
        "--port".into(),
        "0".into(),
        "--discovery".into(),
        discovery.into(),
        "--events".into(),
        events.into(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    let proc = Proc::spawn(subcommand, &args, "on http://", "on http://");
    let addr: SocketAddr = proc.addr.parse().expect("HTTP address");
    Frontend { proc, addr }
}

/// A Rotor process with an HTTP port: a frontend, or a router (which has only /metrics and
/// /health).
pub struct Frontend {
    pub proc: Proc,
    pub addr: SocketAddr,
}

impl Frontend {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn model_ids(&self) -> Vec<String> {
        let out = Command::new("curl")
            .args(["-sS", "--max-time", "5"])
            .arg(self.url("/v1/models"))
            .output()
            .expect("curl");
        let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        v["data"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|m| m["id"].as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Polls /v1/models until `pred` holds; panics after `within`.
    pub fn wait_models(&self, within: Duration, what: &str, pred: impl Fn(&[String]) -> bool) {
        let deadline = Instant::now() + within;
        loop {
            let ids = self.model_ids();
            if pred(&ids) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "timed out after {within:?} waiting for {what}; /v1/models = {ids:?}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Polls until `ready` holds; panics after 60 s with the /metrics text.
    pub fn wait_for(&self, what: &str, ready: impl Fn(&Frontend) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !ready(self) {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}:\n{}",
                self.metrics_text()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    pub fn metrics_text(&self) -> String {
        let out = Command::new("curl")
            .args(["-sS", "--max-time", "10"])
            .arg(self.url("/metrics"))
            .output()
            .expect("curl");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Sum of a metric's samples whose label set contains every `labels` fragment (0 if absent).
    pub fn metric(&self, name: &str, labels: &[&str]) -> f64 {
        metric_from(&self.metrics_text(), name, labels)
    }
}

pub fn metric_from(text: &str, name: &str, labels: &[&str]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.split([' ', '{']).next() == Some(name))
        .filter(|l| labels.iter().all(|f| l.contains(f)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// The outcome of one streamed completion read with curl.
#[derive(Debug, Clone)]
pub struct StreamResult {
    pub text: String,
    /// Content chunks received (one per token for Rotor).
    pub chunks: usize,
    pub finish_reason: Option<String>,
    pub completion_tokens: Option<u64>,
    pub saw_done: bool,
    pub error: Option<Value>,
}

/// Streams a /v1/completions request (with usage) and parses every SSE event.
pub fn stream_completion(url: &str, body: &Value) -> StreamResult {
    let mut body = body.clone();
    body["stream"] = Value::Bool(true);
    body["stream_options"] = serde_json::json!({"include_usage": true});
    let out = Command::new("curl")
        .args([
            "-sS",
            "-N",
            "--max-time",
            "300",
            "-H",
            "Content-Type: application/json",
            "-d",
        ])
        .arg(body.to_string())
        .arg(url)
        .output()
        .expect("curl runs");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut r = StreamResult {
        text: String::new(),
        chunks: 0,
        finish_reason: None,
        completion_tokens: None,
        saw_done: false,
        error: None,
    };
    for line in text.lines() {
        let Some(data) = line.strip_prefix("data: ") else {
            continue;
        };
        if data.trim() == "[DONE]" {
            r.saw_done = true;
            continue;
        }
        let v: Value = match serde_json::from_str(data) {
            Ok(v) => v,
            Err(_) => continue,
        };
        if v.get("error").is_some() {
            r.error = Some(v["error"].clone());
            continue;
        }
        if let Some(choice) = v["choices"].get(0) {
            if let Some(t) = choice["text"].as_str() {
                if !t.is_empty() {
                    r.chunks += 1;
                    r.text.push_str(t);
                }
            }
            if let Some(f) = choice["finish_reason"].as_str() {
                r.finish_reason = Some(f.to_string());
            }
        }
        if let Some(n) = v["usage"]["completion_tokens"].as_u64() {
            r.completion_tokens = Some(n);
        }
    }
    r
}

/// POSTs JSON with curl; returns status and body.
pub fn post_json(url: &str, body: &Value) -> (u16, Value) {
    let out = Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "300",
            "-w",
            "\n%{http_code}",
            "-H",
            "Content-Type: application/json",
            "-d",
        ])
        .arg(body.to_string())
        .arg(url)
        .output()
        .expect("curl runs");
    let text = String::from_utf8_lossy(&out.stdout);
    let (json, code) = text.rsplit_once('\n').unwrap_or(("", &text));
    let status: u16 = code.trim().parse().unwrap_or(0);
    (status, serde_json::from_str(json).unwrap_or(Value::Null))
}

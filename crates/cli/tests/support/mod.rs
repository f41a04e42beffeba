//! Test support: start the real binary on a free port, call it with curl, read /metrics.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;

pub use rotor_testing::model_path;

/// A `rotor serve` child process, killed on drop.
pub struct RotorServer {
    child: Child,
    pub addr: SocketAddr,
}

impl RotorServer {
    pub fn start(extra: &[&str]) -> RotorServer {
        Self::start_model(&model_path(), extra)
    }

    /// `rotor serve` on another GGUF file.
    pub fn start_model(model: &std::path::Path, extra: &[&str]) -> RotorServer {
        let mut child = Command::new(env!("CARGO_BIN_EXE_rotor"))
            .args(["serve", "--port", "0", "--threads", "1"])
            // A test may size the KV cache itself.
            .args(if extra.contains(&"--kv-cache-memory") {
                &[][..]
            } else {
                &["--kv-cache-memory", "512MiB"][..]
            })
            .arg("--model")
            .arg(model)
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn rotor");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("[rotor] {line}");
                if let Some(rest) = line.split("on http://").nth(1) {
                    let addr = rest
                        .split_whitespace()
                        .next()
                        .unwrap_or_default()
                        .to_string();
                    let _ = tx.send(addr);
                }
            }
        });
        let addr = match rx.recv_timeout(Duration::from_secs(120)) {
            Ok(a) => a.parse().expect("address"),
            Err(_) => {
                let _ = child.kill();
                panic!("rotor serve did not report its address within 120 s");
            }
        };
        RotorServer { child, addr }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// The value of an unlabelled metric (sum over label sets) from /metrics.
    pub fn metric(&self, name: &str) -> f64 {
        let out = Command::new("curl")
            .args(["-sS", "--max-time", "10"])
            .arg(self.url("/metrics"))
            .output()
            .expect("curl");
        let text = String::from_utf8_lossy(&out.stdout);
        let values: Vec<f64> = text
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter(|l| l.split([' ', '{']).next() == Some(name))
            .filter_map(|l| l.rsplit(' ').next()?.parse().ok())
            .collect();
        assert!(!values.is_empty(), "metric {name} not in /metrics:\n{text}");
        values.iter().sum()
    }
}

impl Drop for RotorServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// POSTs a raw body with curl; returns the status and the parsed JSON body.
pub fn curl_raw(url: &str, body: &str) -> (u16, Value) {
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
        .arg(body)
        .arg(url)
        .output()
        .expect("curl runs");
    let text = String::from_utf8_lossy(&out.stdout);
    let (json, code) = text.rsplit_once('\n').unwrap_or(("", &text));
    let status: u16 = code
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("no status from curl: {text:?}"));
    let value = serde_json::from_str(json).unwrap_or_else(|e| panic!("not JSON ({e}): {json:?}"));
    (status, value)
}

pub fn curl_json(url: &str, body: &Value) -> (u16, Value) {
    curl_raw(url, &body.to_string())
}

/// Runs `crates/cli/tests/python/SCRIPT` with the test Python (`ROTOR_TEST_PYTHON`, else
/// `python3`; scripts/test makes a venv with the official clients) and `args`. Panics with the
/// script's output unless it exits 0 and prints `passed`; returns its stdout.
pub fn run_python_check<S: AsRef<std::ffi::OsStr>>(
    script: &str,
    args: &[S],
    passed: &str,
) -> String {
    let python = std::env::var("ROTOR_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let path = format!("{}/tests/python/{script}", env!("CARGO_MANIFEST_DIR"));
    let out = Command::new(&python)
        .arg(&path)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {python}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains(passed),
        "{script} failed (are its Python packages installed? scripts/test installs them)\n\
         {stdout}\n{stderr}"
    );
    stdout
}

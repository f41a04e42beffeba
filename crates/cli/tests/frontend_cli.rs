//! `rotor frontend` as a process: it starts on an empty discovery directory, answers /v1/models
//! and /health, and exits 0 on SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

/// A `rotor frontend` child and the address it printed; killed on drop if still running.
struct FrontendProcess {
    child: Option<Child>,
    addr: String,
    lines: mpsc::Receiver<String>,
}

impl FrontendProcess {
    fn start(args: &[&str]) -> FrontendProcess {
        let mut child = Command::new(env!("CARGO_BIN_EXE_rotor"))
            .arg("frontend")
            .args(args)
            .env_remove("ROTOR_PORT")
            .env_remove("ROTOR_HOST")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn rotor frontend");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("[rotor frontend] {line}");
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        let addr = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match lines.recv_timeout(left) {
                Ok(line) => {
                    if let Some(rest) = line.split("on http://").nth(1) {
                        break rest
                            .split_whitespace()
                            .next()
                            .unwrap_or_default()
                            .to_string();
                    }
                }
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("rotor frontend did not print its address within 60 s");
                }
            }
        };
        FrontendProcess {
            child: Some(child),
            addr,
            lines,
        }
    }

    /// GETs `path` with curl: the status and the JSON body.
    fn get(&self, path: &str) -> (u16, Value) {
        let out = Command::new("curl")
            .args(["-sS", "--max-time", "10", "-w", "\n%{http_code}"])
            .arg(format!("http://{}{path}", self.addr))
            .output()
            .expect("curl");
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let (body, status) = text.rsplit_once('\n').expect("status line");
        let json = serde_json::from_str(body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"));
        (status.trim().parse().expect("status"), json)
    }

    /// Sends SIGTERM and waits (bounded) for the exit status.
    fn terminate(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success(), "kill -TERM failed");
        let (tx, rx) = mpsc::channel();
        let pid = child.id();
        std::thread::spawn(move || {
            let _ = tx.send(child.wait());
        });
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(status) => status.expect("wait"),
            Err(_) => {
                let _ = Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .status();
                panic!("rotor frontend did not exit within 30 s of SIGTERM");
            }
        }
    }
}

impl Drop for FrontendProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[test]
fn frontend_starts_empty_answers_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().expect("tempdir");
    let discovery = format!("file:{}", dir.path().display());
    let mut frontend = FrontendProcess::start(&["--discovery", &discovery, "--port", "0"]);

    let (status, models) = frontend.get("/v1/models");
    assert_eq!(status, 200);
    assert_eq!(models["object"], "list");
    assert_eq!(models["data"], serde_json::json!([]), "{models}");

    let (status, health) = frontend.get("/health");
    assert_eq!(status, 503, "no model yet: {health}");
    assert_eq!(health["status"], "unavailable");
    assert_eq!(health["models"], serde_json::json!([]));

    let (status, live) = frontend.get("/live");
    assert_eq!((status, live["status"].as_str()), (200, Some("live")));

    let (status, missing) = frontend.get("/v1/models/none");
    assert_eq!(status, 404, "{missing}");

    let exit = frontend.terminate();
    assert!(exit.success(), "exit status {exit:?}");
    let said: Vec<String> = frontend.lines.try_iter().collect();
    assert!(
        said.iter().any(|line| line.contains("rotor: stopped")),
        "{said:?}"
    );
}

#[test]
fn frontend_rejects_an_unknown_router_mode() {
    let out = Command::new(env!("CARGO_BIN_EXE_rotor"))
        .args(["frontend", "--router-mode", "fastest", "--port", "0"])
        .output()
        .expect("run rotor");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("round-robin, random, least-loaded or kv"),
        "{stderr}"
    );
}

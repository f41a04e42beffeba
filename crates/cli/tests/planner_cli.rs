//! `rotor planner` flag handling that needs no frontend or worker, and (with the `kubernetes`
//! feature) the live loop on the Kubernetes connector with an API server that does not answer.

use std::process::Command;

fn planner(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_rotor"))
        .arg("planner")
        .args(["--profile", "/nonexistent/profile.json"])
        .args(args)
        .output()
        .expect("run rotor planner");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[cfg(not(feature = "kubernetes"))]
#[test]
fn the_kubernetes_connector_without_the_feature_says_how_to_get_it() {
    let (ok, stderr) = planner(&["--connector", "kubernetes"]);
    assert!(!ok);
    assert!(
        stderr.contains("--connector kubernetes is not built into this rotor")
            && stderr.contains("--features kubernetes"),
        "{stderr}"
    );
}

#[cfg(feature = "kubernetes")]
#[test]
fn a_bad_kubernetes_deployment_flag_is_a_config_error() {
    let (ok, stderr) = planner(&[
        "--connector",
        "kubernetes",
        "--k8s-api",
        "http://127.0.0.1:9",
        "--k8s-deployment",
        "decoder=rotor-decode",
    ]);
    assert!(!ok);
    assert!(stderr.contains("k8s-deployment"), "{stderr}");
    let (ok, stderr) = planner(&[
        "--connector",
        "kubernetes",
        "--k8s-token-file",
        "/nonexistent/token",
    ]);
    assert!(!ok);
    assert!(
        stderr.contains("--k8s-token-file is for --k8s-api"),
        "{stderr}"
    );
    let (ok, stderr) = planner(&[
        "--connector",
        "kubernetes",
        "--k8s-api",
        "http://127.0.0.1:9",
        "--k8s-token-file",
        "/nonexistent/token",
    ]);
    assert!(!ok);
    assert!(stderr.contains("token file /nonexistent/token"), "{stderr}");
}

#[test]
fn unknown_connector_and_topology_are_named() {
    let (ok, stderr) = planner(&["--connector", "nomad"]);
    assert!(!ok);
    assert!(stderr.contains("unknown --connector \"nomad\""), "{stderr}");
    let (ok, stderr) = planner(&["--topology", "disaggregated"]);
    assert!(!ok);
    assert!(
        stderr.contains("--topology disaggregated needs"),
        "{stderr}"
    );
}

/// The planner's loop runs on the Kubernetes connector (calls made off the async workers) and an
/// unreachable API server is counted in /metrics, not fatal.
#[cfg(feature = "kubernetes")]
#[test]
fn an_unreachable_kubernetes_api_is_counted_not_fatal() {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::time::{Duration, Instant};

    let dir = tempfile::tempdir().unwrap();
    let profile = dir.path().join("profile.json");
    std::fs::write(
        &profile,
        r#"{"engine":"test","max_batch":16,
            "prefill":[{"isl":100,"ttft_ms":100.0},{"isl":1000,"ttft_ms":1000.0}],
            "decode":[{"batch":1,"context":1000,"itl_ms":10.0},{"batch":9,"context":1000,"itl_ms":50.0}]}"#,
    )
    .unwrap();
    let closed = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    };
    let (api, frontend) = (closed(), closed());
    let mut child = Command::new(env!("CARGO_BIN_EXE_rotor"))
        .arg("planner")
        .arg("--profile")
        .arg(&profile)
        .args(["--connector", "kubernetes", "--interval", "0.2"])
        .arg(format!("--k8s-api=http://127.0.0.1:{api}"))
        .arg(format!("--frontend=http://127.0.0.1:{frontend}"))
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    let addr = loop {
        line.clear();
        if stderr.read_line(&mut line).unwrap() == 0 {
            let _ = child.kill();
            panic!("the planner exited before serving /metrics");
        }
        if let Some(a) = line
            .trim()
            .strip_prefix("rotor planner: /metrics on http://")
        {
            break a.to_string();
        }
    };
    std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
    let series = r#"rotor_planner_connector_requests_total{connector="kubernetes",op="read",outcome="error"}"#;
    let deadline = Instant::now() + Duration::from_secs(30);
    let errors = loop {
        let mut s = std::net::TcpStream::connect(&addr).unwrap();
        write!(
            s,
            "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut text = String::new();
        s.read_to_string(&mut text).unwrap();
        let n: u64 = text
            .lines()
            .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
            .unwrap_or(0);
        if n >= 2 || Instant::now() > deadline {
            break n;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let still_running = child.try_wait().unwrap().is_none();
    let _ = child.kill();
    let _ = child.wait();
    assert!(errors >= 2, "failed reads counted: {errors}");
    assert!(still_running, "the planner carries on");
}

//! `rotor planner` flag handling that needs no frontend or worker.

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

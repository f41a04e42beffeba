//! The layering of docs/ARCHITECTURE.md, checked on `cargo metadata`: a crate's normal (non-dev)
//! dependencies must not include what its layer forbids.

use std::process::Command;

use serde_json::Value;

/// (crate, forbidden normal dependencies)
const RULES: &[(&str, &[&str])] = &[
    (
        "rotor-protocol",
        &[
            "rotor-tokens",
            "rotor-model",
            "rotor-engine",
            "rotor-text",
            "rotor-frontend",
            "tokio",
        ],
    ),
    (
        "rotor-tokens",
        &[
            "rotor-protocol",
            "rotor-model",
            "rotor-engine",
            "rotor-text",
            "rotor-frontend",
            "tokio",
        ],
    ),
    (
        "rotor-model",
        &[
            "rotor-engine",
            "rotor-text",
            "rotor-frontend",
            "tokio",
            "axum",
            "hyper",
            "reqwest",
        ],
    ),
    (
        "rotor-engine",
        &["rotor-text", "rotor-frontend", "axum", "hyper", "reqwest"],
    ),
    (
        "rotor-text",
        &[
            "rotor-engine",
            "rotor-model",
            "rotor-frontend",
            "tokio",
            "axum",
        ],
    ),
    ("rotor-frontend", &["rotor-engine", "rotor-model"]),
    (
        "rotor-planner",
        &[
            "rotor-engine",
            "rotor-model",
            "tokio",
            "axum",
            "hyper",
            "reqwest",
        ],
    ),
    (
        "rotor-replay",
        &[
            "rotor-model",
            "rotor-frontend",
            "rotor-worker",
            "axum",
            "reqwest",
        ],
    ),
    (
        "rotor-router",
        &["rotor-engine", "rotor-model", "rotor-worker"],
    ),
    (
        "rotor-kv-cache",
        &[
            "rotor-engine",
            "rotor-model",
            "tokio",
            "axum",
            "hyper",
            "reqwest",
        ],
    ),
    (
        "rotor-kv-router",
        &[
            "rotor-engine",
            "rotor-model",
            "tokio",
            "axum",
            "hyper",
            "reqwest",
        ],
    ),
    (
        "rotor-runtime",
        &["rotor-engine", "rotor-model", "rotor-frontend"],
    ),
    (
        "rotor-bench",
        &["rotor-engine", "rotor-model", "rotor-kv-cache"],
    ),
    (
        "rotor-worker",
        &["rotor-frontend", "axum", "hyper", "reqwest"],
    ),
];

/// (crate, dependency, feature): a forbidden dependency allowed only as an optional one that
/// this feature alone turns on. The planner's `kubernetes` connector drives the async kube
/// client from a runtime of its own; the plan and the other connectors stay free of tokio.
const OPTIONAL_EXCEPTIONS: &[(&str, &str, &str)] = &[("rotor-planner", "tokio", "kubernetes")];

#[test]
fn crates_respect_the_layering() {
    let out = Command::new(env!("CARGO"))
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo metadata runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: Value = serde_json::from_slice(&out.stdout).expect("metadata JSON");
    let packages = meta["packages"].as_array().expect("packages");
    let mut violations = Vec::new();
    for (krate, forbidden) in RULES {
        let pkg = packages
            .iter()
            .find(|p| p["name"] == *krate)
            .unwrap_or_else(|| panic!("{krate} not in workspace"));
        for dep in pkg["dependencies"].as_array().expect("dependencies") {
            let normal = dep["kind"].is_null();
            let name = dep["name"].as_str().unwrap_or_default();
            if normal && forbidden.contains(&name) {
                let excepted = OPTIONAL_EXCEPTIONS.iter().any(|(k, d, feature)| {
                    *k == *krate
                        && *d == name
                        && dep["optional"] == true
                        && pkg["features"][*feature]
                            .as_array()
                            .is_some_and(|f| f.iter().any(|x| *x == format!("dep:{name}")))
                        && pkg["features"]["default"]
                            .as_array()
                            .is_none_or(|f| !f.iter().any(|x| *x == *feature))
                });
                if !excepted {
                    violations.push(format!("{krate} depends on {name}"));
                }
            }
        }
    }
    assert!(
        violations.is_empty(),
        "forbidden dependency edges: {violations:?}"
    );
}

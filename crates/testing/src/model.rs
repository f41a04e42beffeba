//! Where tests find the real default model.

use std::path::PathBuf;

/// The test model: `ROTOR_TEST_MODEL` if set, else the default model in Rotor's cache
/// (`~/.cache/rotor/models/SmolLM2-135M-Instruct.Q4_1.gguf`, where `.ci/run` puts it). Panics with
/// what to do if the file is missing: tests that need the model fail rather than skip.
pub fn model_path() -> PathBuf {
    let path = std::env::var_os("ROTOR_TEST_MODEL")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let home = std::env::var_os("HOME").expect("HOME is set");
            PathBuf::from(home).join(".cache/rotor/models/SmolLM2-135M-Instruct.Q4_1.gguf")
        });
    assert!(
        path.is_file(),
        "test model missing at {} (run .ci/run or set ROTOR_TEST_MODEL)",
        path.display()
    );
    path
}

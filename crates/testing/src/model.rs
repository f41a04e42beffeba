//! Where tests find the real default model.

use std::path::PathBuf;

/// File name of the default model in Rotor's model cache.
pub const DEFAULT_MODEL_FILE: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";

/// Rotor's model cache as `rotor fetch-model` resolves it: `$ROTOR_CACHE_DIR/models`, else
/// `$XDG_CACHE_HOME/rotor/models`, else `~/.cache/rotor/models`.
pub fn models_dir() -> PathBuf {
    let env = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    if let Some(dir) = env("ROTOR_CACHE_DIR") {
        return dir.join("models");
    }
    if let Some(dir) = env("XDG_CACHE_HOME") {
        return dir.join("rotor/models");
    }
    env("HOME")
        .unwrap_or_else(|| PathBuf::from("/root"))
        .join(".cache/rotor/models")
}

/// The test model: `ROTOR_TEST_MODEL` if set, else the default model in Rotor's cache (where
/// `scripts/test` has `rotor fetch-model` put it). Panics with what to do if the file is missing:
/// tests that need the model fail rather than skip.
pub fn model_path() -> PathBuf {
    let path = std::env::var_os("ROTOR_TEST_MODEL")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| models_dir().join(DEFAULT_MODEL_FILE));
    assert!(
        path.is_file(),
        "test model missing at {} (run scripts/test, or `rotor fetch-model` and set \
         ROTOR_TEST_MODEL to the path it prints)",
        path.display()
    );
    path
}

/// File name of Gemma 3 270M Q4_K_M in Rotor's model cache (`rotor fetch-model gemma3-270m`).
pub const GEMMA3_270M_FILE: &str = "gemma-3-270m-q4_k_m.gguf";

/// Gemma 3 270M Q4_K_M: `ROTOR_TEST_GEMMA` if set, else the file in Rotor's model cache (where
/// `scripts/test` has `rotor fetch-model gemma3-270m` put it). Panics with what to do if missing.
pub fn gemma3_path() -> PathBuf {
    let path = std::env::var_os("ROTOR_TEST_GEMMA")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| models_dir().join(GEMMA3_270M_FILE));
    assert!(
        path.is_file(),
        "Gemma 3 270M missing at {} (run scripts/test, or `rotor fetch-model gemma3-270m` and set \
         ROTOR_TEST_GEMMA to the path it prints)",
        path.display()
    );
    path
}

/// The default model requantized by llama.cpp's `llama-quantize` to `quant` (`Q4_K_M`, `Q5_K_M`,
/// `Q6_K`, `Q8_0`): `$ROTOR_TEST_REQUANT_DIR/SmolLM2-135M-Instruct.<quant>.gguf`, else that file
/// under `requant/` in Rotor's model cache, where `scripts/requantize-default-model` writes them.
/// Panics with what to do if missing.
pub fn requantized_path(quant: &str) -> PathBuf {
    let dir = std::env::var_os("ROTOR_TEST_REQUANT_DIR")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| models_dir().join("requant"));
    let path = dir.join(format!("SmolLM2-135M-Instruct.{quant}.gguf"));
    assert!(
        path.is_file(),
        "requantized test model missing at {} (run scripts/test, or \
         scripts/requantize-default-model and set ROTOR_TEST_REQUANT_DIR to the directory it \
         prints)",
        path.display()
    );
    path
}

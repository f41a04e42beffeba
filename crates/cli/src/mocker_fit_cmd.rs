//! `rotor mocker-fit`: time the native engine on this machine and fit the mocker's `Fitted`
//! timing model (`rotor_engine::mocker`), writing the profile JSON that `--mocker-timing FILE`
//! reads. The repository's default fit was written by this command.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use rotor_engine::mocker::{
    fit_coefficients, max_relative_error, profile_native, FittedProfile, ProfileGrid,
};
use rotor_model::{GgufFile, LlamaModel, LoadOptions};

use crate::model_cache;
use crate::serve::default_models_dir;

/// `rotor mocker-fit` flags.
#[derive(Debug, clap::Args)]
pub struct MockerFitArgs {
    /// GGUF model to profile (default: the default model, fetched into the cache if missing).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Threads of the model's pool.
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    /// Where to write the profile and fitted coefficients (JSON).
    #[arg(long)]
    pub output: PathBuf,
    /// Times each grid point is run (the fastest is kept).
    #[arg(long, default_value_t = 3)]
    pub repetitions: usize,
}

pub async fn run(args: MockerFitArgs) -> Result<()> {
    let path = match &args.model {
        Some(p) => p.clone(),
        None => {
            let dir = default_models_dir()?;
            tokio::task::spawn_blocking(move || model_cache::ensure_default_model(&dir)).await??
        }
    };
    let command = format!(
        "rotor mocker-fit --model {} --threads {} --output {} --repetitions {}",
        path.display(),
        args.threads,
        args.output.display(),
        args.repetitions
    );
    let threads = args.threads;
    let repetitions = args.repetitions;
    let model_path = path.clone();
    let (grid, samples) = tokio::task::spawn_blocking(move || -> Result<_> {
        let gguf = GgufFile::open(&model_path)
            .with_context(|| format!("cannot open {}", model_path.display()))?;
        let model = Arc::new(LlamaModel::load(&gguf, LoadOptions { threads })?);
        let grid = ProfileGrid {
            repetitions,
            ..ProfileGrid::default()
        };
        let samples = profile_native(model, &grid, |s| {
            eprintln!(
                "{:<34} {:>9.2} ms ({} tokens, {} rows, {} attention pairs)",
                s.label, s.measured_ms, s.total_tokens, s.logit_rows, s.attention_pairs
            );
        })?;
        Ok((grid, samples))
    })
    .await??;
    let coefficients = fit_coefficients(&samples)?;
    let profile = FittedProfile {
        model: path.file_name().map_or_else(
            || path.display().to_string(),
            |n| n.to_string_lossy().into(),
        ),
        threads,
        block_size_tokens: grid.block_size_tokens,
        measured_at: utc_now(),
        machine: machine_description(),
        command,
        max_relative_error: max_relative_error(&coefficients, &samples),
        coefficients,
        samples,
    };
    let json = serde_json::to_string_pretty(&profile)?;
    std::fs::write(&args.output, json + "\n")
        .with_context(|| format!("cannot write {}", args.output.display()))?;
    println!(
        "fitted: {:.4} ms + {:.4} ms/token + {:.4} ms/logit row + {:.5} ms/1000 attention pairs \
         (max relative error {:.1} %) -> {}",
        coefficients.base_ms,
        coefficients.per_token_ms,
        coefficients.per_logit_row_ms,
        coefficients.per_kilo_attention_pair_ms,
        profile.max_relative_error * 100.0,
        args.output.display()
    );
    Ok(())
}

/// CPU model, core count and the load average at the time of measurement.
fn machine_description() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let load = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "unknown".into());
    format!("{cpu}, {cores} cores, 1-minute load average {load} when measured")
}

/// The current UTC time as `YYYY-MM-DDTHH:MM:SSZ`.
fn utc_now() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Gregorian (year, month, day) of a day count since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::civil_from_days;

    #[test]
    fn civil_dates_of_known_days() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(19_723), (2024, 1, 1));
    }
}

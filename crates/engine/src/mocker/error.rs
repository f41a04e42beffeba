//! The mocker's error type: configuration, timing files, profiling and fitting.

use std::path::PathBuf;

use crate::error::{Error as EngineError, RunnerError};

/// Why a mocker could not be configured, a timing file not be read, or a profile not be fitted.
#[derive(Debug, thiserror::Error)]
pub enum MockerError {
    /// A `MockerConfig` field is unusable.
    #[error("invalid mocker config: {field} ({reason})")]
    InvalidConfig { field: &'static str, reason: String },
    /// A `--mocker-timing` value that is neither a preset nor a readable file.
    #[error(
        "cannot read mocker timing {spec:?} (expected \"dynamo-vllm\", \"fitted\" or a JSON file): {source}"
    )]
    ReadTiming {
        spec: String,
        #[source]
        source: std::io::Error,
    },
    /// A timing or profile file that is not the expected JSON.
    #[error("cannot parse mocker timing file {path}: {source}")]
    ParseTiming {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    /// The least-squares fit has no unique solution.
    #[error("cannot fit the timing model to {samples} samples: {reason}")]
    Fit {
        samples: usize,
        reason: &'static str,
    },
    /// The profiler could not set up the native runner.
    #[error("cannot set up the profiling runner: {0}")]
    ProfileSetup(#[source] EngineError),
    /// A profiled step failed in the native runner.
    #[error("profiling step {label} failed: {source}")]
    ProfileStep {
        label: String,
        #[source]
        source: RunnerError,
    },
}

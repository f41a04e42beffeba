//! The file format of a fitted profile (`rotor mocker-fit --output FILE`, and the default kept in
//! the repository): where and how it was measured, the samples and the fitted coefficients.

use serde::{Deserialize, Serialize};

use super::timing::FittedCoefficients;

/// One timed step of the native runner.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProfileSample {
    /// What was run, e.g. "prefill start=0 len=128" or "decode batch=16 context=512".
    pub label: String,
    pub total_tokens: usize,
    pub logit_rows: usize,
    pub attention_pairs: u64,
    /// The fastest of the repetitions, in ms.
    pub measured_ms: f64,
}

/// A measured profile and the coefficients fitted to it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FittedProfile {
    /// The model file profiled.
    pub model: String,
    /// Threads of the model's pool.
    pub threads: usize,
    pub block_size_tokens: usize,
    /// When it was measured (UTC date and time).
    pub measured_at: String,
    /// The machine (CPU model, cores) and anything notable about its load.
    pub machine: String,
    /// The command that re-measures and refits.
    pub command: String,
    pub coefficients: FittedCoefficients,
    /// Largest |predicted − measured| / measured over the samples.
    pub max_relative_error: f64,
    pub samples: Vec<ProfileSample>,
}

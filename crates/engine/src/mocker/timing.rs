//! Step-time models: how long the simulated runner takes for a step of a given `StepShape`.
//!
//! - **`DynamoVllm`** reproduces the polynomials Dynamo's mocker publishes for vLLM, in ms:
//!   `prefill(T) = 4.209989e-7·T² + 1.518344e-2·T + 16.50142` with T the step's uncached prompt
//!   tokens (`StepShape::prefill_tokens`), and `decode(u) = −25.74·u² + 54.01·u + 5.74` with u
//!   the KV usage fraction (`StepShape::kv_usage`). A mixed step (prefill chunks and decodes
//!   together) costs `prefill(T) + decode(u)`, as if the prefill ran and then one decode pass;
//!   a step without prefill chunks costs `decode(u)`, one without decodes `prefill(T)`.
//! - **`Fitted`** is a linear model of the native engine measured on this machine (see
//!   `FittedCoefficients`): it prices every token, every LM-head row and every attention pair,
//!   so it covers prefill, decode and mixed steps with one formula.
//!
//! The step's wall time is the model's time divided by `speedup` (`speedup` > 0; 10 runs the
//! simulation ten times faster than the modelled hardware).

use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::error::MockerError;
use super::profile_file::FittedProfile;
use super::shape::StepShape;

/// Dynamo's prefill polynomial, constant first: ms = c0 + c1·T + c2·T².
pub const DYNAMO_VLLM_PREFILL_MS: [f64; 3] = [16.50142, 1.518344e-2, 4.209989e-7];
/// Dynamo's decode polynomial, constant first: ms = c0 + c1·u + c2·u².
pub const DYNAMO_VLLM_DECODE_MS: [f64; 3] = [5.74, 54.01, -25.74];

/// The fitted profile of the default model (SmolLM2-135M-Instruct Q4_1, 2 threads) kept in the
/// repository; `rotor mocker-fit` writes files of the same format.
pub const DEFAULT_FITTED_PROFILE_JSON: &str = include_str!("fitted_smollm2_135m_q4_1.json");

/// Dynamo's vLLM prefill time in ms for `uncached_tokens` (0 tokens cost nothing).
pub fn dynamo_vllm_prefill_ms(uncached_tokens: usize) -> f64 {
    if uncached_tokens == 0 {
        return 0.0;
    }
    let t = uncached_tokens as f64;
    let [c0, c1, c2] = DYNAMO_VLLM_PREFILL_MS;
    c2 * t * t + c1 * t + c0
}

/// Dynamo's vLLM decode time in ms at KV usage fraction `kv_usage`.
pub fn dynamo_vllm_decode_ms(kv_usage: f64) -> f64 {
    let [c0, c1, c2] = DYNAMO_VLLM_DECODE_MS;
    c2 * kv_usage * kv_usage + c1 * kv_usage + c0
}

/// A linear step-time model: `ms = base_ms + per_token_ms·tokens + per_logit_row_ms·rows +
/// per_kilo_attention_pair_ms·pairs/1000` (tokens = `total_tokens`, rows = `logit_rows`,
/// pairs = `attention_pairs`). On a CPU the base is the per-step weight reading and thread
/// synchronisation, the per-token term the matrix products, the per-row term the LM head, and
/// the attention term the dot products over the context.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct FittedCoefficients {
    pub base_ms: f64,
    pub per_token_ms: f64,
    pub per_logit_row_ms: f64,
    pub per_kilo_attention_pair_ms: f64,
}

impl FittedCoefficients {
    /// The coefficients in feature order (base, token, row, kilo-pair).
    pub fn to_array(self) -> [f64; 4] {
        [
            self.base_ms,
            self.per_token_ms,
            self.per_logit_row_ms,
            self.per_kilo_attention_pair_ms,
        ]
    }

    pub fn from_array(c: [f64; 4]) -> Self {
        Self {
            base_ms: c[0],
            per_token_ms: c[1],
            per_logit_row_ms: c[2],
            per_kilo_attention_pair_ms: c[3],
        }
    }

    /// The model's features of a step, in coefficient order.
    pub fn features(total_tokens: usize, logit_rows: usize, attention_pairs: u64) -> [f64; 4] {
        [
            1.0,
            total_tokens as f64,
            logit_rows as f64,
            attention_pairs as f64 / 1000.0,
        ]
    }

    /// Modelled time of a step with these features, in ms.
    pub fn predict_ms(&self, total_tokens: usize, logit_rows: usize, attention_pairs: u64) -> f64 {
        let x = Self::features(total_tokens, logit_rows, attention_pairs);
        self.to_array().iter().zip(x).map(|(c, x)| c * x).sum()
    }
}

/// Which step-time model a mocker uses.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MockerTiming {
    /// Dynamo's published vLLM polynomials (see the module docs).
    DynamoVllm,
    /// A linear model fitted to the native engine's measured profile.
    Fitted(FittedCoefficients),
}

impl MockerTiming {
    /// `"dynamo-vllm"`, `"fitted"` (the repository's fit of the default model) or the path of a
    /// JSON file written by `rotor mocker-fit`.
    pub fn parse(spec: &str) -> Result<Self, MockerError> {
        match spec {
            "dynamo-vllm" => Ok(Self::DynamoVllm),
            "fitted" => Ok(Self::default_fitted()),
            path => Self::from_file(Path::new(path)).map_err(|e| match e {
                MockerError::ReadTiming { source, .. } => MockerError::ReadTiming {
                    spec: spec.to_owned(),
                    source,
                },
                other => other,
            }),
        }
    }

    /// The fitted model of the default model, as kept in the repository.
    pub fn default_fitted() -> Self {
        let profile: FittedProfile = serde_json::from_str(DEFAULT_FITTED_PROFILE_JSON)
            .expect("invariant: the embedded fitted profile is valid JSON (checked by a test)");
        Self::Fitted(profile.coefficients)
    }

    /// The fitted model stored in a `rotor mocker-fit` output file.
    pub fn from_file(path: &Path) -> Result<Self, MockerError> {
        let text = std::fs::read_to_string(path).map_err(|source| MockerError::ReadTiming {
            spec: path.display().to_string(),
            source,
        })?;
        let profile: FittedProfile =
            serde_json::from_str(&text).map_err(|source| MockerError::ParseTiming {
                path: path.to_owned(),
                source,
            })?;
        Ok(Self::Fitted(profile.coefficients))
    }

    /// Modelled time of a step in ms (never negative; an empty step costs nothing).
    pub fn step_ms(&self, shape: &StepShape) -> f64 {
        if shape.total_tokens == 0 {
            return 0.0;
        }
        let ms = match self {
            Self::DynamoVllm => {
                let prefill = dynamo_vllm_prefill_ms(shape.prefill_tokens);
                let decode = if shape.decode_seqs > 0 {
                    dynamo_vllm_decode_ms(shape.kv_usage())
                } else {
                    0.0
                };
                prefill + decode
            }
            Self::Fitted(c) => {
                c.predict_ms(shape.total_tokens, shape.logit_rows, shape.attention_pairs)
            }
        };
        ms.max(0.0)
    }

    /// Wall time of a step: `step_ms / speedup`.
    pub fn step_duration(&self, shape: &StepShape, speedup: f64) -> Duration {
        Duration::from_secs_f64(self.step_ms(shape) / 1000.0 / speedup)
    }
}

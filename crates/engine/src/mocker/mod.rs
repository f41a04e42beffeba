//! The mocker: the native engine's scheduler, KV cache and KV events over a simulated runner.
//!
//! `Engine::start(Box::new(MockerRunner::new(cfg)?), engine_cfg)` is a complete engine whose
//! steps take the time a [`MockerTiming`] model gives for their [`StepShape`] (divided by
//! `speedup`) instead of running a model, so many simulated workers fit in one process.
//!
//! - [`MockerTiming`]: `DynamoVllm` (Dynamo's published vLLM polynomials) or `Fitted`
//!   ([`FittedCoefficients`] of the native engine measured on this machine; the repository keeps
//!   the default model's fit, [`DEFAULT_FITTED_PROFILE_JSON`]).
//! - [`profile_native`] times the real `NativeRunner` over a [`ProfileGrid`];
//!   [`fit_coefficients`] fits the linear model to the samples (`rotor mocker-fit`).
//! - [`MockerClock`]: sleep out each step (live) or add it to a [`SimulatedClock`] that an
//!   offline simulator reads (`rotor replay` steps engine cores itself and never sleeps).
//! - [`ordinary_token_ids`] picks the tokens the mocker generates from the model's tokenizer.
//!
//! docs/MOCKER.md describes the models, the fit and the limits.

mod error;
mod fit;
mod output_tokens;
mod profile;
mod profile_file;
mod runner;
mod shape;
mod sim_clock;
mod timing;

#[cfg(test)]
mod tests;

pub use error::MockerError;
pub use fit::{fit_coefficients, max_relative_error, nonneg_relative_least_squares};
pub use output_tokens::{default_output_token_ids, ordinary_token_ids};
pub use profile::{profile_native, ProfileGrid};
pub use profile_file::{FittedProfile, ProfileSample};
pub use runner::{MockerConfig, MockerKvShape, MockerRunner};
pub use shape::{chunk_attention_pairs, ShapeCounter, StepShape};
pub use sim_clock::{MockerClock, SimulatedClock};
pub use timing::{
    dynamo_vllm_decode_ms, dynamo_vllm_prefill_ms, FittedCoefficients, MockerTiming,
    DEFAULT_FITTED_PROFILE_JSON, DYNAMO_VLLM_DECODE_MS, DYNAMO_VLLM_PREFILL_MS,
};

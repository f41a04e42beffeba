//! The planner's errors.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid planner config: {field} = {value}: {reason}")]
    InvalidConfig {
        field: &'static str,
        value: String,
        reason: &'static str,
    },
    #[error("invalid profile: {reason}")]
    InvalidProfile { reason: String },
    #[error("cannot read profile {path}: {source}")]
    ReadProfile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot parse profile {path}: {source}")]
    ParseProfile {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("unknown predictor {name:?} (expected constant, moving-average, holt or kalman)")]
    UnknownPredictor { name: String },
    #[error("connector {connector}: {message}")]
    Connector {
        connector: &'static str,
        message: String,
    },
}

//! Errors that cross process and crate boundaries.

use serde::{Deserialize, Serialize};

/// What went wrong, coarse enough to decide retry, migration and the HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ErrorKind {
    /// The request itself is wrong (HTTP 400). Never retried.
    InvalidRequest,
    /// The named model is not served (HTTP 404).
    ModelNotFound,
    /// The worker cannot take more work now (HTTP 503); retry elsewhere.
    Overloaded,
    /// The peer went away mid-request; the request may be migrated.
    Disconnected,
    /// The engine has stopped (shutdown or crash); the request may be migrated.
    EngineStopped,
    /// A bug or an unexpected failure (HTTP 500).
    Internal,
}

/// An error with its kind and a human-readable message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{kind:?}: {message}")]
pub struct WireError {
    pub kind: ErrorKind,
    pub message: String,
}

impl WireError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }
}

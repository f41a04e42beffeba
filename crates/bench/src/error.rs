//! The crate's error type: everything that can go wrong before or around a run (bad flags, an
//! unreadable or malformed trace). Failures of single requests are not errors here: they are
//! recorded per request and counted in the report.

use std::path::PathBuf;

/// Errors of argument validation and trace loading.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A flag's value is out of range or contradicts another flag.
    #[error("invalid --{flag}: {reason}")]
    InvalidArg { flag: &'static str, reason: String },
    /// A length distribution such as `128`, `100:20` or `10..50` did not parse.
    #[error("invalid length spec {spec:?}: expected N, MEAN:STDDEV or A..B")]
    LengthSpec { spec: String },
    /// A duration such as `90s`, `10m` or `1500ms` did not parse.
    #[error("invalid duration {spec:?}: expected a number with an optional ms/s/m/h suffix")]
    DurationSpec { spec: String },
    /// The trace file could not be read.
    #[error("cannot read trace {path}: {source}")]
    TraceIo {
        path: PathBuf,
        source: std::io::Error,
    },
    /// One line (or, for JSON arrays, one entry) of a trace is malformed.
    #[error("{format} trace, line {line}: {reason}")]
    TraceRow {
        format: &'static str,
        line: usize,
        reason: String,
    },
    /// The trace's format could not be guessed from its name and header.
    #[error("cannot tell the format of trace {path}: pass --trace-format")]
    UnknownTraceFormat { path: PathBuf },
    /// The trace holds no usable request.
    #[error("trace {path} holds no usable request")]
    EmptyTrace { path: PathBuf },
}

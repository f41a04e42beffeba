//! The crate's one error enum. Variants carry the facts needed to act on them.

use std::path::PathBuf;

/// Errors of the distributed runtime.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A namespace, component or endpoint name is empty or has characters outside `[A-Za-z0-9_.-]`.
    #[error("invalid {what} name {name:?}: use 1-64 characters of [A-Za-z0-9_.-]")]
    InvalidName { what: &'static str, name: String },

    /// A `--discovery` value that is not `mem`, `file:DIR` or `etcd://HOST:PORT`.
    #[error("invalid discovery spec {spec:?}: {reason}")]
    InvalidDiscoverySpec { spec: String, reason: String },

    /// A file-discovery operation on `path` failed.
    #[error("discovery file {path}: {source}")]
    File {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// An etcd call failed (connection refused, timeout, server error).
    #[error("etcd {op} at {endpoint}: {message}")]
    Etcd {
        op: &'static str,
        endpoint: String,
        message: String,
    },

    /// A stored entry could not be decoded (written by another version, or corrupted).
    #[error("corrupt discovery entry {key:?}: {reason}")]
    CorruptEntry { key: String, reason: String },

    /// The lease `lease_id` no longer exists in the store (it expired or was revoked).
    #[error("lease {lease_id:#x} is gone from the discovery store")]
    LeaseGone { lease_id: u64 },

    /// The lease keeper task has stopped (the runtime is shutting down, or it was abandoned).
    #[error("the lease keeper has stopped")]
    KeeperStopped,

    // ----- request plane -----
    /// Binding the request-plane listener failed.
    #[error("request plane: cannot bind {addr}: {source}")]
    Bind {
        addr: String,
        #[source]
        source: std::io::Error,
    },

    /// Connecting to a request-plane peer failed.
    #[error("request plane: cannot connect to {addr}: {source}")]
    Connect {
        addr: String,
        #[source]
        source: std::io::Error,
    },

    /// The connection to `addr` closed before the request could be sent.
    #[error("request plane: connection to {addr} closed")]
    ConnectionLost { addr: String },

    /// A frame would exceed the negotiated maximum frame size.
    #[error("request plane: frame of {size_bytes} bytes exceeds the {max_bytes}-byte limit")]
    FrameTooLarge { size_bytes: usize, max_bytes: usize },

    /// A received frame could not be decoded.
    #[error("request plane: malformed frame (tag {tag}): {reason}")]
    MalformedFrame { tag: u8, reason: &'static str },

    // ----- event plane -----
    /// An `--events` value that is not `mem` or `nats://HOST[:PORT]`.
    #[error("invalid events spec {spec:?}: {reason}")]
    InvalidEventsSpec { spec: String, reason: String },

    /// An event subject segment that NATS cannot carry verbatim (e.g. contains `.`).
    #[error("invalid event subject segment {segment:?}: {reason}")]
    InvalidSubject {
        segment: String,
        reason: &'static str,
    },

    /// A NATS operation failed.
    #[error("nats {op} at {url}: {message}")]
    Nats {
        op: &'static str,
        url: String,
        message: String,
    },

    /// A value could not be encoded as an event payload.
    #[error("event for {subject} does not encode: {reason}")]
    EventEncode { subject: String, reason: String },

    /// An event payload did not decode as the expected type.
    #[error("event on {subject} does not decode: {reason}")]
    EventDecode { subject: String, reason: String },
}

/// Result with the runtime [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

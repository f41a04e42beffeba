//! Dev-only helpers for Rotor's tests (use only as a dev-dependency).
//!
//! - [`free_port`]: a loopback TCP port nobody listens on right now.
//! - [`EtcdGuard`]: a real `etcd` server on free ports with a temporary data dir, stopped by PID
//!   when the guard drops; `restart()` stops it and starts a new one on the same port and data.
//! - [`NatsGuard`]: a real `nats-server` (core NATS) on a free port, killed on drop; `restart()`
//!   brings up a new one on the same port.
//!
//! - [`LlamaServerGuard`]: a real llama.cpp `llama-server` on a free port, killed on drop.
//! - [`model_path`]: the real default model (`ROTOR_TEST_MODEL` or the cache), failing if absent.
//!
//! Readiness is always a poll with a deadline, never a fixed sleep. This crate depends on nothing
//! of Rotor's and on no async runtime, so any test can use it.

pub mod etcd;
pub mod llama_server;
pub mod model;
pub mod nats;
pub mod port;
pub mod process;

pub use etcd::EtcdGuard;
pub use llama_server::{llama_server_bin, LlamaServerGuard};
pub use model::{gemma3_path, model_path, models_dir, requantized_path};
pub use nats::NatsGuard;
pub use port::free_port;
pub use process::{wait_for_tcp, ServerProcessError};

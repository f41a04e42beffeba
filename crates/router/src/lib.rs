//! rotor-router: the standalone router service (`rotor router`).
//!
//! A frontend can route by itself (its embedded router). Run routing as its own service instead
//! when several frontends should share one view of the workers, or to scale routing apart from
//! HTTP. A [`RouterService`]:
//! - watches a component's workers in discovery, with their KV events and load reports on the
//!   event plane, exactly as a frontend's embedded router does (`rotor_frontend::ModelWatcher`
//!   and `RoutedBackend`: kv, round-robin, random or least-loaded routing, and migration when a
//!   worker dies);
//! - serves every model it routes as an instance of its own component (default `router`) on the
//!   request plane, with the workers' model card, so a frontend started with `--component router`
//!   sends its requests here; a model's instance leaves discovery with the model's last worker;
//! - shares its kv decisions with other router replicas when `replica_sync` is on;
//! - answers `/metrics` (the routing figures) and `/health` over HTTP.
//!
//! Key types: [`RouterService`], [`RouterServiceConfig`], [`Error`].
//!
//! Must not depend on the engine or the model crates: it never runs a model.

mod endpoint;
mod error;
mod http;
mod service;

pub use error::Error;
pub use http::serve_http;
pub use service::{RouterService, RouterServiceConfig, DEFAULT_ROUTER_COMPONENT};

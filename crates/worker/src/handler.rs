//! The worker's generate endpoint: the runtime's [`GenerateHandler`] over one engine.
//!
//! [`GenerateHandler`]: rotor_runtime::request_plane::GenerateHandler

use std::sync::Arc;

use rotor_runtime::StreamHandler;

use crate::engine::WorkerEngine;

/// The handler of [`GENERATE_ENDPOINT`](rotor_protocol::worker::GENERATE_ENDPOINT) for `engine`.
pub fn generate_handler(engine: Arc<dyn WorkerEngine>) -> Arc<dyn StreamHandler> {
    Arc::new(rotor_runtime::request_plane::GenerateHandler::new(
        move |req| engine.generate(req),
    ))
}

//! [`GenerateHandler`]: the request-plane handler of [`GENERATE_ENDPOINT`]: one JSON
//! `GenerateRequest` in, one JSON `EngineOutput` per chunk out.
//!
//! [`GENERATE_ENDPOINT`]: rotor_protocol::worker::GENERATE_ENDPOINT

use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use rotor_protocol::worker::{decode_request, encode_output};
use rotor_protocol::{ErrorKind, WireError};
use rotor_runtime::request_plane::ResponseChunks;
use rotor_runtime::{RequestContext, StreamHandler};

use crate::engine::WorkerEngine;

/// Runs generate calls on one engine.
pub struct GenerateHandler {
    engine: Arc<dyn WorkerEngine>,
}

impl GenerateHandler {
    pub fn new(engine: Arc<dyn WorkerEngine>) -> Self {
        Self { engine }
    }
}

fn fail(error: WireError) -> ResponseChunks {
    futures::stream::once(async move { Err(error) }).boxed()
}

impl StreamHandler for GenerateHandler {
    fn handle(&self, request: Bytes, ctx: RequestContext) -> ResponseChunks {
        let req = match decode_request(&request) {
            Ok(req) => req,
            Err(error) => {
                return fail(WireError::new(
                    ErrorKind::InvalidRequest,
                    format!("the generate payload is not a GenerateRequest: {error}"),
                ))
            }
        };
        tracing::debug!(request = %req.id, rp_request = ctx.request_id, peer = %ctx.peer,
            prompt_tokens = req.token_ids.len(), "generate");
        let outputs = match self.engine.generate(req) {
            Ok(outputs) => outputs,
            Err(error) => return fail(error),
        };
        // The server drops this stream when the request is cancelled, which cancels the engine
        // work; stopping at the token as well covers a stream the server is not polling.
        outputs
            .take_until(ctx.cancel.cancelled_owned())
            .map(|item| item.map(|out| Bytes::from(encode_output(&out))))
            .boxed()
    }
}

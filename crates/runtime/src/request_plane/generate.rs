//! [`GenerateHandler`]: the request-plane side of the generate call
//! (`rotor_protocol::worker`): one JSON `GenerateRequest` in, one JSON `EngineOutput` per chunk
//! out. Whatever starts the request (a worker's engine, a router's routed backend) is a closure.

use bytes::Bytes;
use futures::stream::BoxStream;
use futures::StreamExt;
use rotor_protocol::worker::{decode_request, encode_output};
use rotor_protocol::{EngineOutput, ErrorKind, GenerateRequest, WireError};

use super::handler::{RequestContext, ResponseChunks, StreamHandler};

/// The outputs of one started request: token batches, the last with a finish reason, or one
/// error that ends the stream. Dropping it must cancel the request's work.
pub type GenerateOutputs = BoxStream<'static, Result<EngineOutput, WireError>>;

/// Serves the generate endpoint by handing each decoded request to `start`.
pub struct GenerateHandler<F> {
    start: F,
}

impl<F> GenerateHandler<F>
where
    F: Fn(GenerateRequest) -> Result<GenerateOutputs, WireError> + Send + Sync,
{
    /// `start` must return quickly (no compute on the caller's thread); it refuses invalid
    /// requests with an error, which the caller receives as the response's only item.
    pub fn new(start: F) -> Self {
        Self { start }
    }
}

fn fail(error: WireError) -> ResponseChunks {
    futures::stream::once(async move { Err(error) }).boxed()
}

impl<F> StreamHandler for GenerateHandler<F>
where
    F: Fn(GenerateRequest) -> Result<GenerateOutputs, WireError> + Send + Sync,
{
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
        let outputs = match (self.start)(req) {
            Ok(outputs) => outputs,
            Err(error) => return fail(error),
        };
        // The server drops this stream when the request is cancelled, which cancels the work;
        // stopping at the token as well covers a stream the server is not polling.
        outputs
            .take_until(ctx.cancel.cancelled_owned())
            .map(|item| item.map(|out| Bytes::from(encode_output(&out))))
            .boxed()
    }
}

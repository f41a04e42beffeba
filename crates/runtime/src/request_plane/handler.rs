//! What a server runs for each request: a [`StreamHandler`] turning one payload into a stream of
//! response chunks, given a [`RequestContext`] whose token fires when the work must stop.

use std::net::SocketAddr;

use bytes::Bytes;
use futures::stream::BoxStream;
use rotor_protocol::WireError;
use tokio_util::sync::CancellationToken;

/// The stream of response chunks a handler produces. An `Err` item ends the response.
pub type ResponseChunks = BoxStream<'static, Result<Bytes, WireError>>;

/// Facts about one request, handed to its handler.
#[derive(Debug, Clone)]
pub struct RequestContext {
    /// Unique among all requests this server has accepted since it started.
    pub request_id: u64,
    /// The endpoint name the client asked for.
    pub endpoint: String,
    /// The client's address.
    pub peer: SocketAddr,
    /// Fires when the client cancels, the connection dies, or the server's drain grace runs
    /// out. The server also stops polling (and drops) the handler's stream then; the token is
    /// for work the handler runs elsewhere (an engine thread, a spawned task).
    pub cancel: CancellationToken,
}

/// Serves one endpoint. Called once per request, on the server's async runtime: return quickly
/// and do the work inside the returned stream (or elsewhere, feeding it). The server polls the
/// stream only while the client has flow-control credit, so a slow client pauses the stream.
pub trait StreamHandler: Send + Sync {
    fn handle(&self, request: Bytes, ctx: RequestContext) -> ResponseChunks;
}

impl<F> StreamHandler for F
where
    F: Fn(Bytes, RequestContext) -> ResponseChunks + Send + Sync,
{
    fn handle(&self, request: Bytes, ctx: RequestContext) -> ResponseChunks {
        self(request, ctx)
    }
}

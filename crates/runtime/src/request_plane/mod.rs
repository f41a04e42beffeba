//! The request plane: streamed request/response over TCP between a frontend (or router) and
//! workers.
//!
//! - [`RequestPlaneServer`] binds a listener and runs registered [`StreamHandler`]s, one per
//!   endpoint name; [`RequestPlaneServer::shutdown`] drains in-flight requests within a grace
//!   period, then cancels the rest.
//! - [`GenerateHandler`] serves the generate call (JSON `GenerateRequest` in, JSON outputs out)
//!   over whatever starts a request: a worker's engine, a router's routed backend.
//! - [`RequestPlaneClient`] keeps one multiplexed connection per peer (re-opened on the next
//!   call after it dies); [`RequestPlaneClient::call`] returns a [`ResponseStream`]. Dropping the
//!   stream cancels the remote work. If the peer dies mid-stream, every open stream yields a
//!   `WireError` of kind `Disconnected`, which the frontend uses to migrate the request.
//!
//! Wire format: length-prefixed [`Frame`]s (see [`frame`]). Many streams share a connection.
//! Flow control is per stream and counted in `Data` frames: the client grants a window with the
//! request and tops it up as its consumer reads, and the server polls a handler's stream only
//! while it holds credit. A slow consumer therefore pauses only its own handler, and the client
//! never blocks its socket reader on one stream.
//!
//! Shutdown on SIGINT/SIGTERM (driven by the binary): deregister the instance from discovery,
//! then [`RequestPlaneServer::shutdown`] with a bounded grace, then drop leases, event-plane
//! handles and clients. A request still running when the grace ends is cancelled and its client
//! receives `EngineStopped`, which the frontend may migrate like `Disconnected`.

pub mod frame;

mod client;
mod client_conn;
mod generate;
mod handler;
mod response;
mod server;
mod server_conn;

pub use client::RequestPlaneClient;
pub use frame::{Frame, StreamId};
pub use generate::{GenerateHandler, GenerateOutputs};
pub use handler::{RequestContext, ResponseChunks, StreamHandler};
pub use response::ResponseStream;
pub use server::{DrainReport, RequestPlaneServer};

/// Limits shared by server and client. Both ends of a connection should use the same values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestPlaneConfig {
    /// Largest frame (without its 4-byte length prefix) either side sends or accepts. A request
    /// or response chunk that does not fit is refused with an error; a peer that sends a bigger
    /// frame loses its connection.
    pub max_frame_bytes: usize,
    /// `Data` frames a server may send on one stream before the client grants more. Bounds the
    /// client's buffer per stream to `stream_window_frames × max_frame_bytes`.
    pub stream_window_frames: u32,
}

impl Default for RequestPlaneConfig {
    fn default() -> Self {
        Self {
            max_frame_bytes: 16 * 1024 * 1024,
            stream_window_frames: 64,
        }
    }
}

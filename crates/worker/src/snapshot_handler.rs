//! [`KvSnapshotHandler`]: the request-plane handler of [`KV_SNAPSHOT_ENDPOINT`]: any payload
//! (ignored) in, one JSON `KvSnapshot` chunk out, or an error if the engine has none.
//!
//! [`KV_SNAPSHOT_ENDPOINT`]: rotor_protocol::worker::KV_SNAPSHOT_ENDPOINT

use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use rotor_protocol::worker::encode_snapshot;
use rotor_protocol::{ErrorKind, WireError};
use rotor_runtime::request_plane::ResponseChunks;
use rotor_runtime::{RequestContext, StreamHandler};

use crate::engine::WorkerEngine;

/// Answers snapshot calls from one engine.
pub struct KvSnapshotHandler {
    engine: Arc<dyn WorkerEngine>,
}

impl KvSnapshotHandler {
    pub fn new(engine: Arc<dyn WorkerEngine>) -> Self {
        Self { engine }
    }
}

impl StreamHandler for KvSnapshotHandler {
    fn handle(&self, _request: Bytes, ctx: RequestContext) -> ResponseChunks {
        tracing::debug!(rp_request = ctx.request_id, peer = %ctx.peer, "kv_snapshot");
        let Some(snapshot) = self.engine.kv_snapshot() else {
            let error = WireError::new(
                ErrorKind::InvalidRequest,
                format!(
                    "model {:?}: this worker's engine keeps no KV cache index, so it has no KV \
                     snapshot",
                    self.engine.card().name
                ),
            );
            return futures::stream::iter([Err(error)]).boxed();
        };
        futures::stream::once(snapshot)
            .map(|result| result.map(|snap| Bytes::from(encode_snapshot(&snap))))
            .boxed()
    }
}

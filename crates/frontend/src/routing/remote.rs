//! [`RemoteWorker`]: a [`Backend`] that runs requests on one worker instance over the request
//! plane (`rotor_protocol::worker`'s generate call, and its KV snapshot call).

use std::sync::{Arc, Mutex, PoisonError};

use futures::future::BoxFuture;
use futures::stream::BoxStream;
use futures::{FutureExt, StreamExt};
use rotor_protocol::kv_push::KV_PREFILL_PUSH_ENDPOINT;
use rotor_protocol::worker::{
    decode_output, decode_snapshot, encode_block_batch, encode_request, GENERATE_ENDPOINT,
    KV_IMPORT_ENDPOINT, KV_PREFILL_ENDPOINT, KV_SNAPSHOT_ENDPOINT,
};
use rotor_protocol::{
    ErrorKind, GenerateRequest, KvImportOutcome, KvPushEvent, KvSnapshot, PrefillPushRequest,
    PrefillRequest, WireError,
};
use rotor_runtime::{RequestPlaneClient, RequestPlaneConfig};

use crate::backend::{Backend, KvPeer, OutputStream};

/// One worker instance at a request-plane address. The connection is opened on the first call
/// and re-opened by the client after it dies; a peer that cannot be reached, or that dies
/// mid-stream, yields `Disconnected` (which the router migrates). Dropping a stream cancels the
/// request on the worker.
#[derive(Clone)]
pub struct RemoteWorker {
    inner: Arc<RemoteInner>,
}

struct RemoteInner {
    addr: String,
    /// The worker's card's `host_id`, for choosing the KV transport.
    host_id: Option<String>,
    config: RequestPlaneConfig,
    client: Mutex<Option<RequestPlaneClient>>,
}

impl RemoteWorker {
    pub fn new(addr: impl Into<String>, config: RequestPlaneConfig) -> Self {
        Self::on_host(addr, None, config)
    }

    /// A worker whose model card names its host (`host_id`).
    pub fn on_host(
        addr: impl Into<String>,
        host_id: Option<String>,
        config: RequestPlaneConfig,
    ) -> Self {
        Self {
            inner: Arc::new(RemoteInner {
                addr: addr.into(),
                host_id,
                config,
                client: Mutex::new(None),
            }),
        }
    }

    pub fn addr(&self) -> &str {
        &self.inner.addr
    }
}

impl RemoteInner {
    /// The shared client, connecting it first if this worker was never reached.
    async fn client(&self) -> Result<RequestPlaneClient, WireError> {
        if let Some(client) = self.lock_client().clone() {
            return Ok(client);
        }
        let client = RequestPlaneClient::connect(self.addr.clone(), self.config)
            .await
            .map_err(|error| call_error(&self.addr, error))?;
        // Two racing first calls may both connect; the first stored client wins.
        Ok(self.lock_client().get_or_insert(client).clone())
    }

    fn lock_client(&self) -> std::sync::MutexGuard<'_, Option<RequestPlaneClient>> {
        self.client.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A failed call: unreachable peers and lost connections may migrate, the rest may not.
fn call_error(addr: &str, error: rotor_runtime::Error) -> WireError {
    let kind = match error {
        rotor_runtime::Error::Connect { .. } | rotor_runtime::Error::ConnectionLost { .. } => {
            ErrorKind::Disconnected
        }
        _ => ErrorKind::Internal,
    };
    WireError::new(kind, format!("worker at {addr}: {error}"))
}

impl Backend for RemoteWorker {
    fn generate(&self, req: GenerateRequest) -> Result<OutputStream, WireError> {
        let payload = encode_request(&req);
        let inner = Arc::clone(&self.inner);
        let call = async move {
            let client = inner.client().await?;
            client
                .call(GENERATE_ENDPOINT, payload.into())
                .await
                .map_err(|error| call_error(&inner.addr, error))
        };
        let outputs = futures::stream::once(call)
            .map(|called| match called {
                Ok(chunks) => chunks
                    .map(|chunk| {
                        let chunk = chunk?;
                        decode_output(&chunk).map_err(|error| {
                            WireError::new(
                                ErrorKind::Internal,
                                format!("a worker sent an undecodable output: {error}"),
                            )
                        })
                    })
                    .left_stream(),
                Err(error) => futures::stream::iter([Err(error)]).right_stream(),
            })
            .flatten();
        Ok(outputs.boxed())
    }

    fn kv_snapshot(&self) -> Option<BoxFuture<'static, Result<KvSnapshot, WireError>>> {
        let inner = Arc::clone(&self.inner);
        let fetch = async move {
            let client = inner.client().await?;
            let mut chunks = client
                .call(KV_SNAPSHOT_ENDPOINT, Default::default())
                .await
                .map_err(|error| call_error(&inner.addr, error))?;
            let chunk = chunks.next().await.ok_or_else(|| {
                WireError::new(
                    ErrorKind::Internal,
                    format!(
                        "worker at {}: the KV snapshot call returned nothing",
                        inner.addr
                    ),
                )
            })??;
            decode_snapshot(&chunk).map_err(|error| {
                WireError::new(
                    ErrorKind::Internal,
                    format!(
                        "worker at {}: an undecodable KV snapshot: {error}",
                        inner.addr
                    ),
                )
            })
        };
        Some(fetch.boxed())
    }

    /// The worker's `kv_prefill` call: one encoded block per chunk.
    fn prefill_export(
        &self,
        req: PrefillRequest,
    ) -> Option<BoxStream<'static, Result<Vec<u8>, WireError>>> {
        let payload = serde_json::to_vec(&req).expect("invariant: a PrefillRequest serializes");
        let inner = Arc::clone(&self.inner);
        let call = async move {
            let client = inner.client().await?;
            client
                .call(KV_PREFILL_ENDPOINT, payload.into())
                .await
                .map_err(|error| call_error(&inner.addr, error))
        };
        let blocks = futures::stream::once(call)
            .map(|called| match called {
                Ok(chunks) => chunks.map(|chunk| chunk.map(|b| b.to_vec())).left_stream(),
                Err(error) => futures::stream::iter([Err(error)]).right_stream(),
            })
            .flatten();
        Some(blocks.boxed())
    }

    fn kv_peer(&self) -> Option<KvPeer> {
        Some(KvPeer {
            address: self.inner.addr.clone(),
            host_id: self.inner.host_id.clone(),
        })
    }

    /// The worker's `kv_prefill_push` call: one event per batch it sent.
    fn prefill_push(
        &self,
        req: PrefillPushRequest,
    ) -> Option<BoxStream<'static, Result<KvPushEvent, WireError>>> {
        let payload = serde_json::to_vec(&req).expect("invariant: a PrefillPushRequest serializes");
        let inner = Arc::clone(&self.inner);
        let call = async move {
            let client = inner.client().await?;
            client
                .call(KV_PREFILL_PUSH_ENDPOINT, payload.into())
                .await
                .map_err(|error| call_error(&inner.addr, error))
        };
        let events = futures::stream::once(call)
            .map(|called| match called {
                Ok(chunks) => chunks
                    .map(|chunk| {
                        serde_json::from_slice::<KvPushEvent>(&chunk?).map_err(|error| {
                            WireError::new(
                                ErrorKind::Internal,
                                format!("a worker sent an undecodable push event: {error}"),
                            )
                        })
                    })
                    .left_stream(),
                Err(error) => futures::stream::iter([Err(error)]).right_stream(),
            })
            .flatten();
        Some(events.boxed())
    }

    /// The worker's `kv_import` call.
    fn import_kv(
        &self,
        blocks: Vec<Vec<u8>>,
    ) -> Option<BoxFuture<'static, Result<KvImportOutcome, WireError>>> {
        let inner = Arc::clone(&self.inner);
        let payload = encode_block_batch(&blocks);
        let call = async move {
            let client = inner.client().await?;
            let mut chunks = client
                .call(KV_IMPORT_ENDPOINT, payload.into())
                .await
                .map_err(|error| call_error(&inner.addr, error))?;
            let chunk = chunks.next().await.ok_or_else(|| {
                WireError::new(
                    ErrorKind::Internal,
                    format!(
                        "worker at {}: the KV import call returned nothing",
                        inner.addr
                    ),
                )
            })??;
            serde_json::from_slice(&chunk).map_err(|error| {
                WireError::new(
                    ErrorKind::Internal,
                    format!(
                        "worker at {}: an undecodable KV import outcome: {error}",
                        inner.addr
                    ),
                )
            })
        };
        Some(call.boxed())
    }
}

//! [`RequestPlaneClient`]: calls endpoints on one peer over a shared, self-healing connection.

use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;

use super::client_conn::ClientConnection;
use super::response::ResponseStream;
use super::RequestPlaneConfig;
use crate::error::Result;

/// A client of one request-plane server. Cheap to clone; clones share the connection. All calls
/// are multiplexed over one TCP connection; when it dies, open streams end with `Disconnected`
/// and the next call opens a new connection.
#[derive(Clone)]
pub struct RequestPlaneClient {
    inner: Arc<ClientInner>,
}

struct ClientInner {
    addr: String,
    config: RequestPlaneConfig,
    current: Mutex<Option<Arc<ClientConnection>>>,
}

impl RequestPlaneClient {
    /// Connects to `addr` (`host:port`). Fails if the peer cannot be reached now.
    pub async fn connect(addr: impl Into<String>, config: RequestPlaneConfig) -> Result<Self> {
        let client = Self {
            inner: Arc::new(ClientInner {
                addr: addr.into(),
                config,
                current: Mutex::new(None),
            }),
        };
        client.connection().await?;
        Ok(client)
    }

    /// The peer's address as given to [`connect`](Self::connect).
    pub fn addr(&self) -> &str {
        &self.inner.addr
    }

    /// Whether a live connection is open right now (a dead one is replaced on the next call).
    pub fn is_connected(&self) -> bool {
        self.current_live().is_some()
    }

    /// Calls `endpoint` with `payload`. Errors here mean the request was not sent (peer
    /// unreachable, payload above the frame limit); errors after that arrive in the stream.
    pub async fn call(&self, endpoint: &str, payload: Bytes) -> Result<ResponseStream> {
        let connection = self.connection().await?;
        connection.open_stream(endpoint, payload).await
    }

    fn current_live(&self) -> Option<Arc<ClientConnection>> {
        let current = self
            .inner
            .current
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        current.as_ref().filter(|c| !c.is_closed()).cloned()
    }

    /// The live connection, opening a new one if there is none. Two racing callers may both
    /// connect; the first to finish is kept and the other connection is dropped unused.
    async fn connection(&self) -> Result<Arc<ClientConnection>> {
        if let Some(live) = self.current_live() {
            return Ok(live);
        }
        let fresh = ClientConnection::open(&self.inner.addr, self.inner.config).await?;
        let mut current = self
            .inner
            .current
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match current.as_ref().filter(|c| !c.is_closed()) {
            Some(winner) => Ok(Arc::clone(winner)),
            None => {
                *current = Some(Arc::clone(&fresh));
                Ok(fresh)
            }
        }
    }
}

impl std::fmt::Debug for RequestPlaneClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestPlaneClient")
            .field("addr", &self.inner.addr)
            .field("connected", &self.is_connected())
            .finish()
    }
}

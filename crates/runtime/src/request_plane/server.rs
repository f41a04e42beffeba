//! The request-plane server: accepts connections, routes requests to handlers by endpoint name,
//! and drains in-flight work on shutdown.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use tokio::net::{TcpListener, ToSocketAddrs};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::handler::StreamHandler;
use super::server_conn::serve_connection;
use super::RequestPlaneConfig;
use crate::error::{Error, Result};

/// How long shutdown waits for connection writers to flush the last frames (final errors) to
/// peers that stopped reading, before closing their sockets anyway.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(1);

/// Pause after a failed `accept` (e.g. out of file descriptors) so the loop does not spin.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(50);

/// State shared by the accept loop, every connection and every in-flight request.
pub(super) struct ServerShared {
    pub config: RequestPlaneConfig,
    handlers: RwLock<HashMap<String, Arc<dyn StreamHandler>>>,
    next_request_id: AtomicU64,
    /// Fired when shutdown begins: stop accepting connections, refuse new requests.
    pub draining: CancellationToken,
    /// Fired when the drain grace ran out: every in-flight request is cancelled.
    pub hard_stop: CancellationToken,
    /// Fired after the flush timeout: connection writers close their sockets.
    pub close_sockets: CancellationToken,
    /// In-flight requests (one task each).
    pub requests: TaskTracker,
    /// Connection readers and writers.
    pub connections: TaskTracker,
}

impl ServerShared {
    pub fn handler(&self, endpoint: &str) -> Option<Arc<dyn StreamHandler>> {
        self.handlers
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(endpoint)
            .cloned()
    }

    pub fn next_request_id(&self) -> u64 {
        self.next_request_id.fetch_add(1, Ordering::Relaxed)
    }
}

/// What [`RequestPlaneServer::shutdown`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DrainReport {
    /// Requests that were still running when the grace period ran out and were cancelled.
    pub cancelled_requests: usize,
}

/// A running request-plane server. Dropping it without [`shutdown`](Self::shutdown) cancels
/// every in-flight request at once.
pub struct RequestPlaneServer {
    shared: Arc<ServerShared>,
    local_addr: SocketAddr,
}

impl RequestPlaneServer {
    /// Binds `addr` (use port 0 for a free port) and starts accepting. Returns the server and
    /// the address it listens on. Must be called within a tokio runtime.
    pub async fn bind(
        addr: impl ToSocketAddrs + std::fmt::Debug,
        config: RequestPlaneConfig,
    ) -> Result<(Self, SocketAddr)> {
        let shown = format!("{addr:?}");
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| Error::Bind {
                addr: shown.clone(),
                source,
            })?;
        Self::from_listener(listener, config)
    }

    /// Serves on an already bound listener.
    pub fn from_listener(
        listener: TcpListener,
        config: RequestPlaneConfig,
    ) -> Result<(Self, SocketAddr)> {
        let local_addr = listener.local_addr().map_err(|source| Error::Bind {
            addr: "listener".to_string(),
            source,
        })?;
        let shared = Arc::new(ServerShared {
            config,
            handlers: RwLock::new(HashMap::new()),
            next_request_id: AtomicU64::new(1),
            draining: CancellationToken::new(),
            hard_stop: CancellationToken::new(),
            close_sockets: CancellationToken::new(),
            requests: TaskTracker::new(),
            connections: TaskTracker::new(),
        });
        shared
            .connections
            .spawn(accept_loop(listener, Arc::clone(&shared)));
        Ok((Self { shared, local_addr }, local_addr))
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Serves `endpoint` with `handler`, replacing any previous handler for that name. Requests
    /// already running keep their old handler.
    pub fn register(&self, endpoint: impl Into<String>, handler: Arc<dyn StreamHandler>) {
        self.shared
            .handlers
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(endpoint.into(), handler);
    }

    /// Stops serving `endpoint` for new requests; returns whether it was registered.
    pub fn deregister(&self, endpoint: &str) -> bool {
        self.shared
            .handlers
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(endpoint)
            .is_some()
    }

    /// Requests currently running.
    pub fn in_flight(&self) -> usize {
        self.shared.requests.len()
    }

    /// Graceful stop: refuse new connections and requests (`EngineStopped`), let running
    /// requests finish for up to `grace`, then cancel the rest (their clients receive
    /// `EngineStopped`), flush and close every connection. Deregister from discovery before
    /// calling this so no new traffic is routed here.
    pub async fn shutdown(&self, grace: Duration) -> DrainReport {
        let shared = &self.shared;
        shared.draining.cancel();
        shared.requests.close();
        let cancelled_requests = match tokio::time::timeout(grace, shared.requests.wait()).await {
            Ok(()) => 0,
            Err(_) => shared.requests.len(),
        };
        shared.hard_stop.cancel();
        // Request tasks stop polling their handlers as soon as the token fires.
        shared.requests.wait().await;
        shared.connections.close();
        if tokio::time::timeout(FLUSH_TIMEOUT, shared.connections.wait())
            .await
            .is_err()
        {
            shared.close_sockets.cancel();
            shared.connections.wait().await;
        }
        DrainReport { cancelled_requests }
    }
}

impl Drop for RequestPlaneServer {
    fn drop(&mut self) {
        self.shared.draining.cancel();
        self.shared.hard_stop.cancel();
        self.shared.close_sockets.cancel();
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<ServerShared>) {
    loop {
        let accepted = tokio::select! {
            _ = shared.draining.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((socket, peer)) => {
                if let Err(error) = socket.set_nodelay(true) {
                    tracing::debug!(%peer, %error, "request plane: set_nodelay failed");
                }
                shared
                    .connections
                    .spawn(serve_connection(Arc::clone(&shared), socket, peer));
            }
            Err(error) => {
                tracing::warn!(%error, "request plane: accept failed");
                tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
            }
        }
    }
}

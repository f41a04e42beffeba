//! `RemoteWorker::kv_snapshot` over a real request-plane server on loopback TCP: the snapshot a
//! worker's handler answers, its errors passed through, and an unreachable worker as
//! `Disconnected`.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::{stream, StreamExt};
use rotor_frontend::{Backend, RemoteWorker};
use rotor_protocol::worker::{encode_snapshot, KV_SNAPSHOT_ENDPOINT};
use rotor_protocol::{ErrorKind, KvSnapshot, WireError};
use rotor_runtime::request_plane::ResponseChunks;
use rotor_runtime::{RequestContext, RequestPlaneConfig, RequestPlaneServer, StreamHandler};

const DEADLINE: Duration = Duration::from_secs(20);

/// Answers every call with one fixed chunk (or error).
struct Fixed(Result<Bytes, WireError>);

impl StreamHandler for Fixed {
    fn handle(&self, _payload: Bytes, _ctx: RequestContext) -> ResponseChunks {
        stream::iter([self.0.clone()]).boxed()
    }
}

async fn server(answer: Option<Result<Bytes, WireError>>) -> (RequestPlaneServer, String) {
    let (server, addr) = RequestPlaneServer::bind("127.0.0.1:0", RequestPlaneConfig::default())
        .await
        .expect("bind request plane");
    if let Some(answer) = answer {
        server.register(KV_SNAPSHOT_ENDPOINT, Arc::new(Fixed(answer)));
    }
    (server, addr.to_string())
}

async fn fetch(addr: &str) -> Result<KvSnapshot, WireError> {
    let worker = RemoteWorker::new(addr, RequestPlaneConfig::default());
    let call = worker
        .kv_snapshot()
        .expect("a remote worker offers snapshots");
    tokio::time::timeout(DEADLINE, call)
        .await
        .expect("snapshot call stalled")
}

#[tokio::test]
async fn remote_worker_returns_the_workers_snapshot() {
    let snapshot = KvSnapshot {
        block_hashes: vec![7, 1 << 40, u64::MAX],
        next_event_id: 12,
    };
    let (_server, addr) = server(Some(Ok(Bytes::from(encode_snapshot(&snapshot))))).await;
    assert_eq!(fetch(&addr).await, Ok(snapshot));
}

#[tokio::test]
async fn worker_errors_pass_through_and_garbage_is_internal() {
    let refused = WireError::new(ErrorKind::InvalidRequest, "no KV snapshot here");
    let (_server, addr) = server(Some(Err(refused.clone()))).await;
    assert_eq!(fetch(&addr).await, Err(refused));

    let (_server, addr) = server(Some(Ok(Bytes::from_static(b"{\"block_hashes\":")))).await;
    let error = fetch(&addr).await.expect_err("undecodable");
    assert_eq!(error.kind, ErrorKind::Internal);
    assert!(
        error.message.contains("undecodable KV snapshot"),
        "{}",
        error.message
    );

    // A worker that predates the endpoint.
    let (_server, addr) = server(None).await;
    let error = fetch(&addr).await.expect_err("no handler");
    assert_eq!(error.kind, ErrorKind::InvalidRequest);
    assert!(
        error.message.contains(KV_SNAPSHOT_ENDPOINT),
        "{}",
        error.message
    );
}

#[tokio::test]
async fn an_unreachable_worker_is_disconnected() {
    // A port that was just free and that nobody listens on any more.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    drop(listener);
    let error = fetch(&addr).await.expect_err("nobody listens");
    assert_eq!(error.kind, ErrorKind::Disconnected, "{}", error.message);
}

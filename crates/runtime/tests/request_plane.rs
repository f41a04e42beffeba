//! Request plane scenarios over real loopback TCP: multiplexing, cancel, backpressure, peer
//! death, frame limits and graceful drain.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use futures::stream::{self, StreamExt};
use rotor_protocol::{ErrorKind, WireError};
use rotor_runtime::request_plane::{ResponseChunks, StreamHandler};
use rotor_runtime::{
    Error, RequestContext, RequestPlaneClient, RequestPlaneConfig, RequestPlaneServer,
    ResponseStream,
};
use tokio::sync::{mpsc, Semaphore};

/// Generous bound for things that must happen "soon"; only a hang makes a test hit it.
const DEADLINE: Duration = Duration::from_secs(20);

fn handler<F>(f: F) -> Arc<dyn StreamHandler>
where
    F: Fn(Bytes, RequestContext) -> ResponseChunks + Send + Sync + 'static,
{
    Arc::new(f)
}

fn text(bytes: &Bytes) -> String {
    String::from_utf8(bytes.to_vec()).expect("utf-8 test payload")
}

/// `"{tag}:{count}"` → chunks `"{tag}-0" .. "{tag}-{count-1}"`, yielding to the scheduler
/// between chunks so concurrent streams interleave on the connection.
fn counting_handler() -> Arc<dyn StreamHandler> {
    handler(|payload, _ctx| {
        let request = text(&payload);
        let (tag, count) = request.split_once(':').expect("tag:count");
        let tag = tag.to_string();
        let count: usize = count.parse().expect("count");
        stream::iter(0..count)
            .then(move |i| {
                let chunk = Bytes::from(format!("{tag}-{i}"));
                async move {
                    tokio::task::yield_now().await;
                    Ok(chunk)
                }
            })
            .boxed()
    })
}

async fn start_server(config: RequestPlaneConfig) -> Result<(RequestPlaneServer, SocketAddr)> {
    Ok(RequestPlaneServer::bind("127.0.0.1:0", config).await?)
}

async fn next_within(stream: &mut ResponseStream) -> Result<Option<Result<Bytes, WireError>>> {
    tokio::time::timeout(DEADLINE, stream.next())
        .await
        .context("response stream stalled")
}

/// Reads a stream to its end: the data chunks as text, and the terminal error if any.
async fn collect(mut stream: ResponseStream) -> Result<(Vec<String>, Option<WireError>)> {
    let mut chunks = Vec::new();
    while let Some(item) = next_within(&mut stream).await? {
        match item {
            Ok(chunk) => chunks.push(text(&chunk)),
            Err(error) => {
                if next_within(&mut stream).await?.is_some() {
                    bail!("stream went on after an error");
                }
                return Ok((chunks, Some(error)));
            }
        }
    }
    Ok((chunks, None))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_streams_share_one_connection_with_correct_payloads() -> Result<()> {
    let (server, addr) = start_server(RequestPlaneConfig::default()).await?;
    server.register("count", counting_handler());
    let peers = Arc::new(Mutex::new(HashSet::new()));
    let seen = Arc::clone(&peers);
    server.register(
        "peer",
        handler(move |_payload, ctx| {
            seen.lock().expect("test lock").insert(ctx.peer);
            stream::empty().boxed()
        }),
    );
    let client =
        RequestPlaneClient::connect(addr.to_string(), RequestPlaneConfig::default()).await?;

    let calls = (0..50).map(|i| {
        let client = client.clone();
        async move {
            let stream = client
                .call("count", Bytes::from(format!("s{i}:20")))
                .await?;
            let (chunks, error) = collect(stream).await?;
            anyhow::ensure!(error.is_none(), "stream {i} failed: {error:?}");
            let want: Vec<String> = (0..20).map(|k| format!("s{i}-{k}")).collect();
            anyhow::ensure!(chunks == want, "stream {i} got {chunks:?}");
            collect(client.call("peer", Bytes::new()).await?).await?;
            Ok::<_, anyhow::Error>(())
        }
    });
    for result in futures::future::join_all(calls).await {
        result?;
    }
    assert_eq!(
        peers.lock().expect("test lock").len(),
        1,
        "one TCP connection for all calls"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handler_errors_and_unknown_endpoints_end_the_stream_with_their_kind() -> Result<()> {
    let (server, addr) = start_server(RequestPlaneConfig::default()).await?;
    server.register(
        "fails",
        handler(|_payload, _ctx| {
            stream::iter([
                Ok(Bytes::from_static(b"partial")),
                Err(WireError::new(ErrorKind::Overloaded, "queue full")),
                Ok(Bytes::from_static(b"never sent")),
            ])
            .boxed()
        }),
    );
    let client =
        RequestPlaneClient::connect(addr.to_string(), RequestPlaneConfig::default()).await?;

    let (chunks, error) = collect(client.call("fails", Bytes::new()).await?).await?;
    assert_eq!(chunks, vec!["partial".to_string()]);
    assert_eq!(
        error,
        Some(WireError::new(ErrorKind::Overloaded, "queue full"))
    );

    let (chunks, error) = collect(client.call("missing", Bytes::new()).await?).await?;
    assert!(chunks.is_empty());
    let error = error.context("unknown endpoint must fail")?;
    assert_eq!(error.kind, ErrorKind::InvalidRequest);
    assert!(error.message.contains("missing"), "{}", error.message);
    Ok(())
}

/// Signals when dropped; put inside a handler's stream to observe that the server dropped it.
struct DropSignal(Option<tokio::sync::oneshot::Sender<()>>);

impl Drop for DropSignal {
    fn drop(&mut self) {
        if let Some(tx) = self.0.take() {
            let _ = tx.send(());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_response_stream_cancels_the_remote_handler() -> Result<()> {
    let (server, addr) = start_server(RequestPlaneConfig::default()).await?;
    let (token_fired_tx, mut token_fired) = mpsc::channel::<u64>(4);
    let (dropped_tx, dropped) = tokio::sync::oneshot::channel();
    let dropped_tx = Mutex::new(Some(dropped_tx));
    server.register(
        "endless",
        handler(move |_payload, ctx| {
            // Work running outside the stream learns about the cancel through the token.
            let fired = token_fired_tx.clone();
            let token = ctx.cancel.clone();
            tokio::spawn(async move {
                token.cancelled().await;
                let _ = fired.send(ctx.request_id).await;
            });
            let guard = DropSignal(dropped_tx.lock().expect("test lock").take());
            stream::unfold((0u64, guard), |(i, guard)| async move {
                tokio::time::sleep(Duration::from_millis(1)).await;
                Some((Ok(Bytes::from(i.to_string())), (i + 1, guard)))
            })
            .boxed()
        }),
    );
    let client =
        RequestPlaneClient::connect(addr.to_string(), RequestPlaneConfig::default()).await?;
    let mut stream = client.call("endless", Bytes::new()).await?;
    for want in 0..3 {
        let chunk = next_within(&mut stream).await?.context("ended early")??;
        assert_eq!(text(&chunk), want.to_string());
    }
    assert_eq!(server.in_flight(), 1);
    drop(stream);

    let request_id = tokio::time::timeout(DEADLINE, token_fired.recv())
        .await
        .context("handler token did not fire after the client dropped its stream")?;
    assert_eq!(request_id, Some(1), "the first request's token fired");
    tokio::time::timeout(DEADLINE, dropped)
        .await
        .context("server kept polling the cancelled stream")??;
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while server.in_flight() != 0 {
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "request task still running"
        );
        tokio::task::yield_now().await;
    }
    // The connection stays usable after a cancel.
    server.register("count", counting_handler());
    let (chunks, _) = collect(client.call("count", Bytes::from_static(b"x:2")).await?).await?;
    assert_eq!(chunks, vec!["x-0".to_string(), "x-1".to_string()]);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_consumer_pauses_only_its_own_handler() -> Result<()> {
    const WINDOW: u32 = 8;
    let config = RequestPlaneConfig {
        stream_window_frames: WINDOW,
        ..RequestPlaneConfig::default()
    };
    let (server, addr) = start_server(config).await?;
    let produced = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&produced);
    server.register(
        "firehose",
        handler(move |_payload, _ctx| {
            let counter = Arc::clone(&counter);
            stream::iter(0..100_000u32)
                .map(move |i| {
                    counter.fetch_add(1, Ordering::SeqCst);
                    Ok(Bytes::from(vec![(i % 251) as u8; 1024]))
                })
                .boxed()
        }),
    );
    server.register("count", counting_handler());
    let client = RequestPlaneClient::connect(addr.to_string(), config).await?;

    // The slow consumer reads one chunk and then stops reading.
    let mut slow = client.call("firehose", Bytes::new()).await?;
    next_within(&mut slow).await?.context("first chunk")??;
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while produced.load(Ordering::SeqCst) < WINDOW as usize {
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "window never filled"
        );
        tokio::task::yield_now().await;
    }

    // Another stream on the same connection runs to completion meanwhile.
    let (chunks, error) = collect(
        client
            .call("count", Bytes::from_static(b"fast:500"))
            .await?,
    )
    .await?;
    assert_eq!(error, None);
    assert_eq!(chunks.len(), 500);
    assert_eq!(chunks[499], "fast-499");

    // The firehose handler was polled exactly one window's worth: the one chunk read (4 < half
    // a window, so no credit was granted back) and the seven still buffered at the client.
    assert_eq!(produced.load(Ordering::SeqCst), WINDOW as usize);

    // Reading on resumes the firehose where it paused.
    for _ in 1..(4 * WINDOW) {
        next_within(&mut slow).await?.context("more chunks")??;
    }
    assert!(produced.load(Ordering::SeqCst) > WINDOW as usize);
    Ok(())
}

/// Runs a server on its own runtime and thread, so the test can kill it like a crashed process:
/// dropping the runtime drops every task and socket at once, with no goodbye frames.
struct DoomedServer {
    runtime: Option<tokio::runtime::Runtime>,
    server: Option<RequestPlaneServer>,
}

impl DoomedServer {
    /// Builds the runtime on a plain thread: a runtime cannot be started (or dropped) from
    /// inside the test's own async context.
    fn start(addr: &str) -> Result<(Self, SocketAddr)> {
        let addr = addr.to_string();
        let (runtime, server, local) = std::thread::spawn(move || -> Result<_> {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()?;
            let (server, local) = runtime.block_on(async move {
                let (server, local) =
                    RequestPlaneServer::bind(addr, RequestPlaneConfig::default()).await?;
                server.register(
                    "ticks",
                    handler(|_payload, _ctx| {
                        stream::unfold(0u64, |i| async move {
                            tokio::time::sleep(Duration::from_millis(5)).await;
                            Some((Ok(Bytes::from(i.to_string())), i + 1))
                        })
                        .boxed()
                    }),
                );
                Ok::<_, Error>((server, local))
            })?;
            Ok((runtime, server, local))
        })
        .join()
        .map_err(|_| anyhow::anyhow!("server thread panicked"))??;
        Ok((
            Self {
                runtime: Some(runtime),
                server: Some(server),
            },
            local,
        ))
    }

    fn kill(self) {
        drop(self);
    }
}

impl Drop for DoomedServer {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
        // The server's tasks died with the runtime; dropping it now only fires dead tokens.
        self.server.take();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_death_yields_disconnected_on_every_open_stream_then_reconnects() -> Result<()> {
    let (doomed, addr) = DoomedServer::start("127.0.0.1:0")?;
    let client =
        RequestPlaneClient::connect(addr.to_string(), RequestPlaneConfig::default()).await?;
    let mut streams = Vec::new();
    for _ in 0..5 {
        let mut stream = client.call("ticks", Bytes::new()).await?;
        next_within(&mut stream).await?.context("first tick")??;
        streams.push(stream);
    }
    doomed.kill();

    for (i, mut stream) in streams.into_iter().enumerate() {
        let error = loop {
            match next_within(&mut stream).await? {
                Some(Ok(_buffered_tick)) => continue,
                Some(Err(error)) => break error,
                None => bail!("stream {i} ended without an error"),
            }
        };
        assert_eq!(error.kind, ErrorKind::Disconnected, "stream {i}: {error}");
        assert!(
            next_within(&mut stream).await?.is_none(),
            "stream {i} ends after the error"
        );
    }

    // A new server on the same address: the same client reconnects on its next call.
    let (revived, revived_addr) = DoomedServer::start(&addr.to_string())?;
    assert_eq!(revived_addr, addr);
    let mut stream = client.call("ticks", Bytes::new()).await?;
    let tick = next_within(&mut stream)
        .await?
        .context("tick after reconnect")??;
    assert_eq!(text(&tick), "0");
    drop(stream);
    revived.kill();
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_above_the_limit_are_errors_not_panics() -> Result<()> {
    let config = RequestPlaneConfig {
        max_frame_bytes: 1024,
        ..RequestPlaneConfig::default()
    };
    let (server, addr) = start_server(config).await?;
    server.register(
        "big",
        handler(|_payload, _ctx| {
            stream::iter([
                Ok(Bytes::from_static(b"small")),
                Ok(Bytes::from(vec![7u8; 2000])),
            ])
            .boxed()
        }),
    );
    server.register("count", counting_handler());
    let client = RequestPlaneClient::connect(addr.to_string(), config).await?;

    // A request that does not fit is refused before it is sent.
    match client.call("count", Bytes::from(vec![b'x'; 2000])).await {
        Err(Error::FrameTooLarge {
            size_bytes,
            max_bytes,
        }) => assert_eq!((size_bytes, max_bytes), (1 + 8 + 4 + 2 + 5 + 2000, 1024)),
        other => bail!("expected FrameTooLarge, got {other:?}"),
    }

    // A response chunk that does not fit ends its stream with an Internal error.
    let (chunks, error) = collect(client.call("big", Bytes::new()).await?).await?;
    assert_eq!(chunks, vec!["small".to_string()]);
    let error = error.context("oversize chunk must fail the stream")?;
    assert_eq!(error.kind, ErrorKind::Internal);
    assert!(error.message.contains("2000 bytes"), "{}", error.message);

    // A raw peer announcing a 1 MB frame loses its connection; the server lives on.
    let raw_result = tokio::time::timeout(DEADLINE, async {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut raw = tokio::net::TcpStream::connect(addr).await?;
        raw.write_all(&1_000_000u32.to_be_bytes()).await?;
        raw.write_all(&[0u8; 64]).await?;
        let mut buf = [0u8; 16];
        raw.read(&mut buf).await
    })
    .await
    .context("server did not close the offending connection")?;
    match raw_result {
        Ok(0) => {}
        Err(error) if error.kind() == std::io::ErrorKind::ConnectionReset => {}
        other => bail!("expected the server to close the connection, got {other:?}"),
    }
    let (chunks, error) = collect(client.call("count", Bytes::from_static(b"ok:3")).await?).await?;
    assert_eq!((chunks.len(), error), (3, None));
    Ok(())
}

/// A handler whose chunks are released one by one by the test through a semaphore.
fn gated_handler(
    gate: Arc<Semaphore>,
    chunks: usize,
    cancelled: mpsc::Sender<()>,
) -> Arc<dyn StreamHandler> {
    handler(move |_payload, ctx| {
        let cancelled = cancelled.clone();
        let token = ctx.cancel.clone();
        tokio::spawn(async move {
            token.cancelled().await;
            let _ = cancelled.send(()).await;
        });
        let gate = Arc::clone(&gate);
        stream::iter(0..chunks)
            .then(move |i| {
                let gate = Arc::clone(&gate);
                async move {
                    gate.acquire().await.expect("gate open").forget();
                    Ok(Bytes::from(format!("g{i}")))
                }
            })
            .boxed()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_lets_in_flight_requests_finish_and_refuses_new_ones() -> Result<()> {
    let (server, addr) = start_server(RequestPlaneConfig::default()).await?;
    let gate = Arc::new(Semaphore::new(0));
    let (cancelled_tx, mut cancelled) = mpsc::channel(4);
    server.register("gated", gated_handler(Arc::clone(&gate), 3, cancelled_tx));
    server.register("count", counting_handler());
    let server = Arc::new(server);
    let client =
        RequestPlaneClient::connect(addr.to_string(), RequestPlaneConfig::default()).await?;
    let in_flight = client.call("gated", Bytes::new()).await?;
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while server.in_flight() != 1 {
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "request never started"
        );
        tokio::task::yield_now().await;
    }

    let stopping = Arc::clone(&server);
    let shutdown = tokio::spawn(async move { stopping.shutdown(DEADLINE).await });

    // New requests are refused with EngineStopped once draining began.
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let (_, error) =
            collect(client.call("count", Bytes::from_static(b"probe:1")).await?).await?;
        match error {
            Some(error) if error.kind == ErrorKind::EngineStopped => break,
            // Raced ahead of the drain and was admitted: let it finish and try again.
            _ => anyhow::ensure!(tokio::time::Instant::now() < deadline, "never refused"),
        }
        tokio::task::yield_now().await;
    }

    // The in-flight request still completes normally.
    gate.add_permits(3);
    let (chunks, error) = collect(in_flight).await?;
    assert_eq!(error, None);
    assert_eq!(chunks, vec!["g0", "g1", "g2"]);
    let report = tokio::time::timeout(DEADLINE, shutdown).await??;
    assert_eq!(report.cancelled_requests, 0);
    assert!(cancelled.try_recv().is_err(), "no handler was cancelled");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_cancels_requests_still_running_after_the_grace_period() -> Result<()> {
    let (server, addr) = start_server(RequestPlaneConfig::default()).await?;
    let gate = Arc::new(Semaphore::new(1));
    let (cancelled_tx, mut cancelled) = mpsc::channel(4);
    server.register("gated", gated_handler(Arc::clone(&gate), 3, cancelled_tx));
    let client =
        RequestPlaneClient::connect(addr.to_string(), RequestPlaneConfig::default()).await?;
    let mut stuck = client.call("gated", Bytes::new()).await?;
    assert_eq!(
        text(&next_within(&mut stuck).await?.context("first chunk")??),
        "g0"
    );

    let report =
        tokio::time::timeout(DEADLINE, server.shutdown(Duration::from_millis(200))).await?;
    assert_eq!(report.cancelled_requests, 1);
    tokio::time::timeout(DEADLINE, cancelled.recv())
        .await
        .context("handler token did not fire")?;
    let (chunks, error) = collect(stuck).await?;
    assert!(chunks.is_empty(), "{chunks:?}");
    assert_eq!(error.map(|e| e.kind), Some(ErrorKind::EngineStopped));

    // The listener is closed: a new client cannot connect.
    assert!(matches!(
        RequestPlaneClient::connect(addr.to_string(), RequestPlaneConfig::default()).await,
        Err(Error::Connect { .. })
    ));
    Ok(())
}

//! One accepted connection on the server: a reader that dispatches client frames, a writer that
//! owns the socket's write half, and one task per in-flight request that pumps its handler's
//! stream into `Data` frames while the client grants credit.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use rotor_protocol::{ErrorKind, WireError};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, Semaphore};
use tokio_util::codec::{FramedRead, FramedWrite, LengthDelimitedCodec};
use tokio_util::sync::CancellationToken;

use super::frame::{codec, Frame, StreamId, HEADER_BYTES};
use super::handler::{RequestContext, ResponseChunks, StreamHandler};
use super::server::ServerShared;

/// Frames queued for the connection writer. Request tasks wait when it is full, which is the
/// connection-level backpressure of a peer that stops reading its socket.
const WRITE_QUEUE_FRAMES: usize = 256;

/// Largest credit a stream may hold; more is clamped (a buggy client cannot overflow it).
const MAX_CREDIT: usize = 1 << 24;

/// The server-side handle of one running request.
struct StreamControl {
    cancel: CancellationToken,
    credit: Arc<Semaphore>,
}

type StreamTable = Arc<Mutex<HashMap<StreamId, StreamControl>>>;

/// Everything a request task needs besides its handler stream.
struct RequestTask {
    stream_id: StreamId,
    out: mpsc::Sender<Frame>,
    /// Stops the pump: client cancel, dead connection, or shutdown (a child of the connection).
    cancel: CancellationToken,
    /// The handler's token; fired only when the response is abandoned before its end, so a
    /// request that completed is never reported as cancelled, even at shutdown.
    handler_cancel: CancellationToken,
    credit: Arc<Semaphore>,
    table: StreamTable,
    shared: Arc<ServerShared>,
}

/// Why a request task stopped pumping.
enum Stopped {
    /// The response was sent to its end (last chunk or error).
    Completed,
    /// The connection's writer is gone, so the rest of the response cannot be delivered.
    WriterGone,
    /// The cancel token fired: client cancel, dead connection, or shutdown.
    Cancelled,
}

pub(super) async fn serve_connection(
    shared: Arc<ServerShared>,
    socket: TcpStream,
    peer: SocketAddr,
) {
    let (read_half, write_half) = socket.into_split();
    let codec = codec(shared.config.max_frame_bytes);
    let mut frames_in = FramedRead::new(read_half, codec.clone());
    let (out, out_rx) = mpsc::channel(WRITE_QUEUE_FRAMES);
    shared.connections.spawn(write_frames(
        FramedWrite::new(write_half, codec),
        out_rx,
        shared.close_sockets.clone(),
    ));
    let conn_token = shared.hard_stop.child_token();
    let table: StreamTable = Arc::default();
    let mut reader = ConnectionReader {
        shared: &shared,
        peer,
        out,
        conn_token: &conn_token,
        table: &table,
    };
    loop {
        let next = tokio::select! {
            _ = conn_token.cancelled() => break,
            next = frames_in.next() => next,
        };
        let body = match next {
            None => break,
            Some(Ok(body)) => body,
            Some(Err(error)) => {
                tracing::warn!(%peer, %error, "request plane: bad frame from client, closing");
                break;
            }
        };
        let frame = match Frame::decode(body.freeze()) {
            Ok(frame) => frame,
            Err(error) => {
                tracing::warn!(%peer, %error, "request plane: closing connection");
                break;
            }
        };
        if let Err(reason) = reader.on_frame(frame).await {
            tracing::warn!(%peer, reason, "request plane: protocol violation, closing");
            break;
        }
    }
    // The peer is gone (or we are stopping): stop every request it started.
    conn_token.cancel();
}

/// Dispatches client frames of one connection.
struct ConnectionReader<'a> {
    shared: &'a Arc<ServerShared>,
    peer: SocketAddr,
    out: mpsc::Sender<Frame>,
    conn_token: &'a CancellationToken,
    table: &'a StreamTable,
}

impl ConnectionReader<'_> {
    async fn on_frame(&mut self, frame: Frame) -> Result<(), &'static str> {
        match frame {
            Frame::Request {
                stream_id,
                window,
                endpoint,
                payload,
            } => {
                self.on_request(stream_id, window, endpoint, payload).await;
                Ok(())
            }
            Frame::Cancel { stream_id } => {
                if let Some(control) = lock(self.table).remove(&stream_id) {
                    control.cancel.cancel();
                }
                Ok(())
            }
            Frame::WindowUpdate { stream_id, credit } => {
                if let Some(control) = lock(self.table).get(&stream_id) {
                    let room = MAX_CREDIT.saturating_sub(control.credit.available_permits());
                    control.credit.add_permits((credit as usize).min(room));
                }
                Ok(())
            }
            Frame::Data { .. } | Frame::End { .. } | Frame::Error { .. } => {
                Err("client sent a server-only frame")
            }
        }
    }

    /// The handler for a new request, or why it is refused.
    fn admit(
        &self,
        stream_id: StreamId,
        endpoint: &str,
    ) -> Result<Arc<dyn StreamHandler>, WireError> {
        if self.shared.draining.is_cancelled() {
            return Err(WireError::new(
                ErrorKind::EngineStopped,
                "request plane server is shutting down",
            ));
        }
        if lock(self.table).contains_key(&stream_id) {
            return Err(WireError::new(
                ErrorKind::InvalidRequest,
                format!("stream id {stream_id} is already in use on this connection"),
            ));
        }
        self.shared.handler(endpoint).ok_or_else(|| {
            WireError::new(
                ErrorKind::InvalidRequest,
                format!("no handler for endpoint {endpoint:?}"),
            )
        })
    }

    async fn on_request(
        &mut self,
        stream_id: StreamId,
        window: u32,
        endpoint: String,
        payload: Bytes,
    ) {
        let handler = match self.admit(stream_id, &endpoint) {
            Ok(handler) => handler,
            Err(error) => {
                // A send error means the writer is gone; the reader notices on its next read.
                let _ = self.out.send(Frame::Error { stream_id, error }).await;
                return;
            }
        };
        let cancel = self.conn_token.child_token();
        let handler_cancel = CancellationToken::new();
        let credit = Arc::new(Semaphore::new((window as usize).min(MAX_CREDIT)));
        lock(self.table).insert(
            stream_id,
            StreamControl {
                cancel: cancel.clone(),
                credit: Arc::clone(&credit),
            },
        );
        let ctx = RequestContext {
            request_id: self.shared.next_request_id(),
            endpoint,
            peer: self.peer,
            cancel: handler_cancel.clone(),
        };
        let chunks = handler.handle(payload, ctx);
        let task = RequestTask {
            stream_id,
            out: self.out.clone(),
            cancel,
            handler_cancel,
            credit,
            table: Arc::clone(self.table),
            shared: Arc::clone(self.shared),
        };
        self.shared.requests.spawn(task.run(chunks));
    }
}

impl RequestTask {
    async fn run(self, mut chunks: ResponseChunks) {
        let stopped = self.pump(&mut chunks).await;
        drop(chunks);
        lock(&self.table).remove(&self.stream_id);
        if !matches!(stopped, Stopped::Completed) {
            self.handler_cancel.cancel();
        }
        if matches!(stopped, Stopped::Cancelled) && self.shared.hard_stop.is_cancelled() {
            let error = WireError::new(
                ErrorKind::EngineStopped,
                "request plane server shut down before the request finished",
            );
            let _ = self
                .out
                .send(Frame::Error {
                    stream_id: self.stream_id,
                    error,
                })
                .await;
        }
    }

    /// Polls the handler's stream one item per credit and forwards each item as a frame.
    async fn pump(&self, chunks: &mut ResponseChunks) -> Stopped {
        let stream_id = self.stream_id;
        let max_frame_bytes = self.shared.config.max_frame_bytes;
        loop {
            let permit = tokio::select! {
                biased;
                _ = self.cancel.cancelled() => return Stopped::Cancelled,
                permit = self.credit.acquire() => permit,
            };
            match permit {
                Ok(permit) => permit.forget(),
                Err(_closed) => return Stopped::Cancelled,
            }
            let item = tokio::select! {
                biased;
                _ = self.cancel.cancelled() => return Stopped::Cancelled,
                item = chunks.next() => item,
            };
            let (frame, last) = match item {
                Some(Ok(payload)) if HEADER_BYTES + payload.len() > max_frame_bytes => {
                    let error = WireError::new(
                        ErrorKind::Internal,
                        format!(
                            "response chunk of {} bytes exceeds the {max_frame_bytes}-byte frame limit",
                            payload.len()
                        ),
                    );
                    (Frame::Error { stream_id, error }, true)
                }
                Some(Ok(payload)) => (Frame::Data { stream_id, payload }, false),
                Some(Err(error)) => (
                    Frame::Error {
                        stream_id,
                        error: bounded(error),
                    },
                    true,
                ),
                None => (Frame::End { stream_id }, true),
            };
            let sent = tokio::select! {
                biased;
                _ = self.cancel.cancelled() => return Stopped::Cancelled,
                sent = self.out.send(frame) => sent,
            };
            if sent.is_err() {
                return Stopped::WriterGone;
            }
            if last {
                return Stopped::Completed;
            }
        }
    }
}

/// Writes queued frames until every sender is gone (the reader and all request tasks ended) or
/// `close_now` fires. Flushes whenever the queue runs empty, so frames are batched under load.
async fn write_frames(
    mut sink: FramedWrite<OwnedWriteHalf, LengthDelimitedCodec>,
    mut frames: mpsc::Receiver<Frame>,
    close_now: CancellationToken,
) {
    loop {
        let frame = tokio::select! {
            _ = close_now.cancelled() => return,
            frame = frames.recv() => frame,
        };
        let Some(frame) = frame else { break };
        if feed(&mut sink, &frame).await.is_err() {
            return;
        }
        while let Ok(frame) = frames.try_recv() {
            if feed(&mut sink, &frame).await.is_err() {
                return;
            }
        }
        let flushed = tokio::select! {
            _ = close_now.cancelled() => return,
            flushed = SinkExt::<Bytes>::flush(&mut sink) => flushed,
        };
        if let Err(error) = flushed {
            tracing::debug!(%error, "request plane: client connection write failed");
            return;
        }
    }
    let _ = SinkExt::<Bytes>::close(&mut sink).await;
}

async fn feed(
    sink: &mut FramedWrite<OwnedWriteHalf, LengthDelimitedCodec>,
    frame: &Frame,
) -> Result<(), ()> {
    let body = match frame.encode() {
        Ok(body) => body,
        Err(error) => {
            tracing::error!(%error, "request plane: cannot encode frame");
            return Ok(());
        }
    };
    sink.feed(body).await.map_err(|error| {
        tracing::debug!(%error, "request plane: client connection write failed");
    })
}

/// Longest error message sent to a client; keeps any error frame far below the frame limit.
const MAX_ERROR_MESSAGE_BYTES: usize = 4096;

/// `error` with its message cut to [`MAX_ERROR_MESSAGE_BYTES`] (at a character boundary).
fn bounded(mut error: WireError) -> WireError {
    if error.message.len() > MAX_ERROR_MESSAGE_BYTES {
        let mut cut = MAX_ERROR_MESSAGE_BYTES;
        while !error.message.is_char_boundary(cut) {
            cut -= 1;
        }
        error.message.truncate(cut);
    }
    error
}

fn lock(table: &StreamTable) -> std::sync::MutexGuard<'_, HashMap<StreamId, StreamControl>> {
    table.lock().unwrap_or_else(PoisonError::into_inner)
}

//! One client connection: a reader that routes response frames to their streams, a writer that
//! sends requests and the control frames (credit, cancel) that streams queue from sync code.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use rotor_protocol::{ErrorKind, WireError};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, Notify};
use tokio_util::codec::{FramedRead, FramedWrite, LengthDelimitedCodec};
use tokio_util::sync::CancellationToken;

use super::frame::{codec, Frame, StreamId};
use super::response::ResponseStream;
use super::RequestPlaneConfig;
use crate::error::{Error, Result};

/// Request frames queued for the writer; `call` waits when it is full.
const REQUEST_QUEUE_FRAMES: usize = 64;

/// One item delivered to a [`ResponseStream`].
pub(super) type StreamItem = std::result::Result<Bytes, WireError>;

/// Where the reader delivers one stream's frames. The channel is unbounded in type, but the
/// reader refuses a `Data` frame when `buffered` already holds a full window, so it holds at
/// most `window` data items plus one terminal item. This lets the reader hand over frames
/// without ever waiting on a slow consumer (which would stall every stream on the connection).
struct StreamSlot {
    items: mpsc::UnboundedSender<StreamItem>,
    buffered: Arc<AtomicU32>,
}

#[derive(Default)]
struct StreamTable {
    closed: bool,
    slots: HashMap<StreamId, StreamSlot>,
}

/// Control frames waiting for the writer. At most one credit entry per stream, so this stays
/// bounded by the number of open streams.
#[derive(Default)]
struct PendingControl {
    credits: HashMap<StreamId, u32>,
    cancels: Vec<StreamId>,
}

/// State shared by the connection's tasks and its response streams.
pub(super) struct ConnShared {
    pub addr: String,
    pub config: RequestPlaneConfig,
    table: Mutex<StreamTable>,
    control: Mutex<PendingControl>,
    control_ready: Notify,
    /// Fired when the connection is dead or dropped; both tasks exit.
    closed: CancellationToken,
}

impl ConnShared {
    pub fn is_closed(&self) -> bool {
        self.closed.is_cancelled()
    }

    /// The consumer of `stream_id` read `credit` more data items: let the server send more.
    pub fn grant(&self, stream_id: StreamId, credit: u32) {
        *lock(&self.control).credits.entry(stream_id).or_insert(0) += credit;
        self.control_ready.notify_one();
    }

    /// The consumer of `stream_id` went away before the end: forget it and tell the server.
    pub fn cancel(&self, stream_id: StreamId) {
        let known = lock(&self.table).slots.remove(&stream_id).is_some();
        if known {
            let mut control = lock(&self.control);
            control.credits.remove(&stream_id);
            control.cancels.push(stream_id);
            drop(control);
            self.control_ready.notify_one();
        }
    }

    /// The connection died: every open stream ends with `Disconnected`.
    fn fail_all(&self, reason: &str) {
        let slots = {
            let mut table = lock(&self.table);
            table.closed = true;
            std::mem::take(&mut table.slots)
        };
        self.closed.cancel();
        for (_, slot) in slots {
            let error = WireError::new(
                ErrorKind::Disconnected,
                format!("request plane connection to {} lost: {reason}", self.addr),
            );
            let _ = slot.items.send(Err(error));
        }
    }

    fn take_control(&self) -> PendingControl {
        std::mem::take(&mut *lock(&self.control))
    }
}

/// A live connection; dropping the last handle (client and response streams) closes it.
pub(super) struct ClientConnection {
    shared: Arc<ConnShared>,
    requests: mpsc::Sender<Frame>,
    next_stream_id: AtomicU64,
}

impl ClientConnection {
    /// Opens a TCP connection to `addr` and starts its reader and writer tasks.
    pub async fn open(addr: &str, config: RequestPlaneConfig) -> Result<Arc<Self>> {
        let socket = TcpStream::connect(addr)
            .await
            .map_err(|source| Error::Connect {
                addr: addr.to_string(),
                source,
            })?;
        if let Err(error) = socket.set_nodelay(true) {
            tracing::debug!(addr, %error, "request plane: set_nodelay failed");
        }
        let (read_half, write_half) = socket.into_split();
        let codec = codec(config.max_frame_bytes);
        let shared = Arc::new(ConnShared {
            addr: addr.to_string(),
            config,
            table: Mutex::default(),
            control: Mutex::default(),
            control_ready: Notify::new(),
            closed: CancellationToken::new(),
        });
        let (requests, request_rx) = mpsc::channel(REQUEST_QUEUE_FRAMES);
        tokio::spawn(read_frames(
            FramedRead::new(read_half, codec.clone()),
            Arc::clone(&shared),
        ));
        tokio::spawn(write_frames(
            FramedWrite::new(write_half, codec),
            request_rx,
            Arc::clone(&shared),
        ));
        Ok(Arc::new(Self {
            shared,
            requests,
            next_stream_id: AtomicU64::new(1),
        }))
    }

    pub fn is_closed(&self) -> bool {
        self.shared.is_closed()
    }

    /// Sends a request and returns the stream of its response.
    pub async fn open_stream(
        self: &Arc<Self>,
        endpoint: &str,
        payload: Bytes,
    ) -> Result<ResponseStream> {
        let config = self.shared.config;
        let stream_id = self.next_stream_id.fetch_add(1, Ordering::Relaxed);
        let frame = Frame::Request {
            stream_id,
            window: config.stream_window_frames,
            endpoint: endpoint.to_string(),
            payload,
        };
        let size_bytes = frame.encoded_len();
        if size_bytes > config.max_frame_bytes || endpoint.len() > u16::MAX as usize {
            return Err(Error::FrameTooLarge {
                size_bytes,
                max_bytes: config.max_frame_bytes,
            });
        }
        let (items, items_rx) = mpsc::unbounded_channel();
        let buffered = Arc::new(AtomicU32::new(0));
        {
            let mut table = lock(&self.shared.table);
            if table.closed {
                return Err(self.lost());
            }
            let slot = StreamSlot {
                items,
                buffered: Arc::clone(&buffered),
            };
            table.slots.insert(stream_id, slot);
        }
        // The stream exists before the request is sent, so no response frame can miss it; if
        // sending fails, dropping it below removes the slot again.
        let stream = ResponseStream::new(stream_id, items_rx, buffered, Arc::clone(self));
        if self.requests.send(frame).await.is_err() {
            return Err(self.lost());
        }
        Ok(stream)
    }

    pub(super) fn shared(&self) -> &ConnShared {
        &self.shared
    }

    fn lost(&self) -> Error {
        Error::ConnectionLost {
            addr: self.shared.addr.clone(),
        }
    }
}

impl Drop for ClientConnection {
    fn drop(&mut self) {
        self.shared.fail_all("client dropped the connection");
    }
}

async fn read_frames(
    mut frames: FramedRead<OwnedReadHalf, LengthDelimitedCodec>,
    shared: Arc<ConnShared>,
) {
    let reason = loop {
        let next = tokio::select! {
            _ = shared.closed.cancelled() => break "connection closed".to_string(),
            next = frames.next() => next,
        };
        let body = match next {
            None => break "peer closed the connection".to_string(),
            Some(Err(error)) => break format!("read failed: {error}"),
            Some(Ok(body)) => body,
        };
        match Frame::decode(body.freeze()) {
            Ok(frame) => {
                if let Err(reason) = deliver(&shared, frame) {
                    break reason.to_string();
                }
            }
            Err(error) => break error.to_string(),
        }
    };
    tracing::debug!(addr = %shared.addr, reason, "request plane: connection ended");
    shared.fail_all(&reason);
}

/// Routes one server frame to its stream. Frames for streams the consumer already dropped are
/// ignored (they were in flight when the cancel went out).
fn deliver(shared: &ConnShared, frame: Frame) -> std::result::Result<(), &'static str> {
    let window = shared.config.stream_window_frames;
    let mut table = lock(&shared.table);
    match frame {
        Frame::Data { stream_id, payload } => {
            let Some(slot) = table.slots.get(&stream_id) else {
                return Ok(());
            };
            if slot.buffered.load(Ordering::Acquire) >= window {
                let slot = table
                    .slots
                    .remove(&stream_id)
                    .expect("invariant: just found");
                drop(table);
                let error = WireError::new(
                    ErrorKind::Internal,
                    format!(
                        "peer {} sent more than the {window}-frame window",
                        shared.addr
                    ),
                );
                let _ = slot.items.send(Err(error));
                let mut control = lock(&shared.control);
                control.credits.remove(&stream_id);
                control.cancels.push(stream_id);
                drop(control);
                shared.control_ready.notify_one();
                return Ok(());
            }
            slot.buffered.fetch_add(1, Ordering::AcqRel);
            if slot.items.send(Ok(payload)).is_err() {
                table.slots.remove(&stream_id);
            }
        }
        Frame::End { stream_id } => {
            table.slots.remove(&stream_id);
        }
        Frame::Error { stream_id, error } => {
            if let Some(slot) = table.slots.remove(&stream_id) {
                let _ = slot.items.send(Err(error));
            }
        }
        Frame::Request { .. } | Frame::Cancel { .. } | Frame::WindowUpdate { .. } => {
            return Err("server sent a client-only frame");
        }
    }
    Ok(())
}

async fn write_frames(
    mut sink: FramedWrite<OwnedWriteHalf, LengthDelimitedCodec>,
    mut requests: mpsc::Receiver<Frame>,
    shared: Arc<ConnShared>,
) {
    let result = loop {
        let first = tokio::select! {
            _ = shared.closed.cancelled() => break Ok(()),
            frame = requests.recv() => match frame {
                Some(frame) => Some(frame),
                None => break Ok(()),
            },
            _ = shared.control_ready.notified() => None,
        };
        if let Err(error) = write_batch(&mut sink, first, &mut requests, &shared).await {
            break Err(error);
        }
    };
    if let Err(error) = result {
        shared.fail_all(&format!("write failed: {error}"));
    }
    let _ = SinkExt::<Bytes>::close(&mut sink).await;
}

/// Feeds `first`, any further queued requests and all pending control frames, then flushes.
async fn write_batch(
    sink: &mut FramedWrite<OwnedWriteHalf, LengthDelimitedCodec>,
    first: Option<Frame>,
    requests: &mut mpsc::Receiver<Frame>,
    shared: &ConnShared,
) -> std::result::Result<(), Box<dyn std::error::Error + Send + Sync>> {
    if let Some(frame) = first {
        sink.feed(frame.encode()?).await?;
    }
    while let Ok(frame) = requests.try_recv() {
        sink.feed(frame.encode()?).await?;
    }
    let control = shared.take_control();
    for (stream_id, credit) in control.credits {
        sink.feed(Frame::WindowUpdate { stream_id, credit }.encode()?)
            .await?;
    }
    for stream_id in control.cancels {
        sink.feed(Frame::Cancel { stream_id }.encode()?).await?;
    }
    SinkExt::<Bytes>::flush(sink).await?;
    Ok(())
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

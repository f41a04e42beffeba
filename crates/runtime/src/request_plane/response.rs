//! [`ResponseStream`]: the client's view of one streamed response.

use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::Stream;
use rotor_protocol::WireError;
use tokio::sync::mpsc;

use super::client_conn::{ClientConnection, StreamItem};
use super::frame::StreamId;

/// The response chunks of one call, in order. Ends after the last chunk, or after one `Err`
/// item: the handler's own error, `EngineStopped` when the server shut down first, or
/// `Disconnected` when the connection died mid-stream. Dropping it before the end sends a
/// cancel, which stops the handler on the server.
pub struct ResponseStream {
    stream_id: StreamId,
    items: mpsc::UnboundedReceiver<StreamItem>,
    buffered: Arc<AtomicU32>,
    /// Data items read since credit was last granted back to the server.
    consumed: u32,
    finished: bool,
    connection: Arc<ClientConnection>,
}

impl ResponseStream {
    pub(super) fn new(
        stream_id: StreamId,
        items: mpsc::UnboundedReceiver<StreamItem>,
        buffered: Arc<AtomicU32>,
        connection: Arc<ClientConnection>,
    ) -> Self {
        Self {
            stream_id,
            items,
            buffered,
            consumed: 0,
            finished: false,
            connection,
        }
    }

    /// This stream's id on its connection.
    pub fn stream_id(&self) -> StreamId {
        self.stream_id
    }

    fn on_data_read(&mut self) {
        self.buffered.fetch_sub(1, Ordering::AcqRel);
        self.consumed += 1;
        // Granting in batches of half a window keeps control traffic low while the server
        // never runs dry on a consumer that keeps up.
        let window = self.connection.shared().config.stream_window_frames;
        if self.consumed >= window.div_ceil(2) {
            self.connection
                .shared()
                .grant(self.stream_id, self.consumed);
            self.consumed = 0;
        }
    }
}

impl Stream for ResponseStream {
    type Item = Result<Bytes, WireError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.finished {
            return Poll::Ready(None);
        }
        match self.items.poll_recv(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Ok(chunk))) => {
                self.on_data_read();
                Poll::Ready(Some(Ok(chunk)))
            }
            Poll::Ready(Some(Err(error))) => {
                self.finished = true;
                Poll::Ready(Some(Err(error)))
            }
            Poll::Ready(None) => {
                self.finished = true;
                Poll::Ready(None)
            }
        }
    }
}

impl Drop for ResponseStream {
    fn drop(&mut self) {
        if !self.finished {
            self.connection.shared().cancel(self.stream_id);
        }
    }
}

impl std::fmt::Debug for ResponseStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseStream")
            .field("stream_id", &self.stream_id)
            .field("finished", &self.finished)
            .finish()
    }
}

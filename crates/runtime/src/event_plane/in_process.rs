//! [`InProcessEventPlane`]: the event plane inside one process, on tokio broadcast channels.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use tokio::sync::broadcast;

use super::{EventPlane, EventStream, EventSubject};
use crate::error::Result;

/// Events a subscriber may fall behind by before it starts losing the oldest ones.
pub const DEFAULT_SUBSCRIBER_CAPACITY: usize = 4096;

/// An in-process bus. Clones share the bus: hand the same instance (or a clone) to every
/// component of the process.
#[derive(Clone)]
pub struct InProcessEventPlane {
    subjects: Arc<Mutex<HashMap<String, broadcast::Sender<Bytes>>>>,
    subscriber_capacity: usize,
}

impl InProcessEventPlane {
    /// A bus whose subscribers may each lag `subscriber_capacity` events (at least 1).
    pub fn new(subscriber_capacity: usize) -> Self {
        Self {
            subjects: Arc::default(),
            subscriber_capacity: subscriber_capacity.max(1),
        }
    }
}

impl Default for InProcessEventPlane {
    fn default() -> Self {
        Self::new(DEFAULT_SUBSCRIBER_CAPACITY)
    }
}

#[async_trait]
impl EventPlane for InProcessEventPlane {
    async fn publish(&self, subject: &EventSubject, payload: Bytes) -> Result<()> {
        let mut subjects = self.subjects.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(sender) = subjects.get(subject.as_str()) {
            if sender.send(payload).is_err() {
                // Every subscriber is gone: forget the subject like NATS forgets interest.
                subjects.remove(subject.as_str());
            }
        }
        Ok(())
    }

    async fn subscribe(&self, subject: &EventSubject) -> Result<EventStream> {
        let receiver = self
            .subjects
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(subject.as_str().to_string())
            .or_insert_with(|| broadcast::channel(self.subscriber_capacity).0)
            .subscribe();
        let name = subject.as_str().to_string();
        let stream = futures::stream::unfold(receiver, move |mut receiver| {
            let name = name.clone();
            async move {
                loop {
                    match receiver.recv().await {
                        Ok(payload) => return Some((payload, receiver)),
                        Err(broadcast::error::RecvError::Lagged(missed)) => {
                            tracing::warn!(subject = %name, missed, "event subscriber lagged; events lost");
                        }
                        Err(broadcast::error::RecvError::Closed) => return None,
                    }
                }
            }
        });
        Ok(stream.boxed())
    }

    async fn flush(&self) -> Result<()> {
        // `publish` hands events to subscribers' queues before returning.
        Ok(())
    }
}

impl std::fmt::Debug for InProcessEventPlane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InProcessEventPlane")
            .field("subscriber_capacity", &self.subscriber_capacity)
            .finish_non_exhaustive()
    }
}

//! Typed helpers over an [`EventPlane`]: serde values as JSON payloads, and a KV-event publisher.

use std::sync::Arc;

use bytes::Bytes;
use futures::stream::BoxStream;
use futures::StreamExt;
use rotor_protocol::{KvEvent, RouterEvent, WorkerId};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::{EventPlane, EventSubject};
use crate::error::{Error, Result};

/// Publishes `value` as JSON on `subject`.
pub async fn publish_json<T: Serialize + ?Sized>(
    plane: &dyn EventPlane,
    subject: &EventSubject,
    value: &T,
) -> Result<()> {
    let payload = serde_json::to_vec(value).map_err(|error| Error::EventEncode {
        subject: subject.to_string(),
        reason: error.to_string(),
    })?;
    plane.publish(subject, Bytes::from(payload)).await
}

/// Subscribes to `subject`, decoding each payload as JSON `T`. A payload that does not decode
/// yields an `Err` item and the stream goes on.
pub async fn subscribe_json<T: DeserializeOwned + Send + 'static>(
    plane: &dyn EventPlane,
    subject: &EventSubject,
) -> Result<BoxStream<'static, Result<T>>> {
    let events = plane.subscribe(subject).await?;
    let name = subject.to_string();
    Ok(events
        .map(move |payload| {
            serde_json::from_slice(&payload).map_err(|error| Error::EventDecode {
                subject: name.clone(),
                reason: error.to_string(),
            })
        })
        .boxed())
}

/// Publishes one worker's KV events as [`RouterEvent`]s on its component's `kv_events` subject.
#[derive(Clone)]
pub struct KvEventPublisher {
    plane: Arc<dyn EventPlane>,
    subject: EventSubject,
    worker_id: WorkerId,
}

impl KvEventPublisher {
    pub fn new(plane: Arc<dyn EventPlane>, subject: EventSubject, worker_id: WorkerId) -> Self {
        Self {
            plane,
            subject,
            worker_id,
        }
    }

    /// Publishes `event` tagged with this worker's id.
    pub async fn publish(&self, event: KvEvent) -> Result<()> {
        let routed = RouterEvent {
            worker_id: self.worker_id,
            event,
        };
        publish_json(self.plane.as_ref(), &self.subject, &routed).await
    }
}

impl std::fmt::Debug for KvEventPublisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KvEventPublisher")
            .field("subject", &self.subject)
            .field("worker_id", &self.worker_id)
            .finish_non_exhaustive()
    }
}

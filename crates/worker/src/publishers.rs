//! The worker's event-plane publishers: KV events forwarded from the engine as they happen, and
//! load reports on a timer. Both run until their stop token fires; publish failures are logged
//! and skipped (the event plane is at-most-once; consumers resync on KV-event gaps).

use std::sync::Arc;
use std::time::Duration;

use rotor_engine::KvEventReader;
use rotor_protocol::{LoadReport, WorkerId, WorkerLoad};
use rotor_runtime::event_plane::{publish_json, KvEventPublisher};
use rotor_runtime::{EventPlane, EventSubject};
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use crate::engine::WorkerEngine;

/// An unchanged load is published again after this long, so a consumer that subscribed late,
/// or lost a message, still learns it.
pub const LOAD_HEARTBEAT: Duration = Duration::from_secs(2);

/// Publishes every KV event `reader` yields, in order, until `stop` fires or the engine stops.
pub(crate) async fn forward_kv_events(
    mut reader: KvEventReader,
    publisher: KvEventPublisher,
    stop: CancellationToken,
) {
    loop {
        let more = tokio::select! {
            _ = stop.cancelled() => return,
            more = reader.wait() => more,
        };
        let batch = reader.read();
        if batch.missed > 0 {
            tracing::warn!(
                missed = batch.missed,
                "KV events were dropped before they could be published; routers will resync"
            );
        }
        for event in batch.events {
            if let Err(error) = publisher.publish(event).await {
                tracing::warn!(%error, "publishing a KV event failed");
            }
        }
        if !more {
            return;
        }
    }
}

/// Publishes the KV events of an external engine (already numbered) until `stop` fires or the
/// engine's sender is gone.
pub(crate) async fn forward_external_kv_events(
    mut events: tokio::sync::mpsc::Receiver<rotor_protocol::KvEvent>,
    publisher: KvEventPublisher,
    stop: CancellationToken,
) {
    loop {
        let event = tokio::select! {
            _ = stop.cancelled() => return,
            event = events.recv() => event,
        };
        let Some(event) = event else { return };
        if let Err(error) = publisher.publish(event).await {
            tracing::warn!(%error, "publishing a KV event failed");
        }
    }
}

/// Where and how often load reports go.
pub(crate) struct LoadReporter {
    pub engine: Arc<dyn WorkerEngine>,
    pub plane: Arc<dyn EventPlane>,
    pub subject: EventSubject,
    pub worker_id: WorkerId,
    pub interval: Duration,
}

impl LoadReporter {
    /// Publishes the engine's load every `interval` while it changes, and every
    /// [`LOAD_HEARTBEAT`] while it does not, until `stop` fires.
    pub async fn run(self, stop: CancellationToken) {
        let mut ticker = tokio::time::interval(self.interval);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Skip);
        let mut last: Option<(WorkerLoad, Instant)> = None;
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = ticker.tick() => {}
            }
            let load = self.engine.load();
            let due = match last {
                None => true,
                Some((previous, at)) => previous != load || at.elapsed() >= LOAD_HEARTBEAT,
            };
            if !due {
                continue;
            }
            let report = LoadReport {
                worker_id: self.worker_id,
                load,
            };
            if let Err(error) = publish_json(self.plane.as_ref(), &self.subject, &report).await {
                tracing::warn!(%error, "publishing a load report failed");
            }
            last = Some((load, Instant::now()));
        }
    }
}

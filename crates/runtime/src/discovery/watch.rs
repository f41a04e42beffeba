//! [`InstanceWatch`]: a stream of instance arrivals and departures that survives store outages.
//!
//! A task turns the store's prefix watch into [`DiscoveryEvent`]s. It remembers the instances it
//! reported; when the store's watch breaks (etcd restarted, a lagging consumer) it starts a new
//! one and diffs the fresh snapshot against what it reported, so consumers see exactly the
//! arrivals and departures they missed, never a duplicate or a gap.

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::{Stream, StreamExt};
use tokio::sync::mpsc;

use super::store::{KvChange, KvStore};
use crate::names::Instance;

const EVENT_BUFFER: usize = 256;
const FIRST_RETRY: Duration = Duration::from_millis(100);
const MAX_RETRY: Duration = Duration::from_secs(2);

/// A change in the set of instances under a watched prefix.
#[derive(Debug, Clone, PartialEq)]
pub enum DiscoveryEvent {
    /// A new instance, or new data (address, metadata) for one already reported.
    Added(Instance),
    /// An instance left: deregistered, or its lease expired.
    Removed(Instance),
}

/// Stream of [`DiscoveryEvent`]s: first an `Added` for every instance present, then changes.
/// Dropping it stops the watch.
pub struct InstanceWatch {
    events: mpsc::Receiver<DiscoveryEvent>,
}

impl InstanceWatch {
    pub(crate) fn start(store: Arc<dyn KvStore>, prefix: String) -> Self {
        let (sender, events) = mpsc::channel(EVENT_BUFFER);
        tokio::spawn(run(store, prefix, sender));
        Self { events }
    }

    /// The next event; `None` only if the runtime is shutting down.
    pub async fn recv(&mut self) -> Option<DiscoveryEvent> {
        self.events.recv().await
    }
}

impl Stream for InstanceWatch {
    type Item = DiscoveryEvent;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.events.poll_recv(cx)
    }
}

fn decode(key: &str, value: &[u8]) -> Option<Instance> {
    match serde_json::from_slice(value) {
        Ok(instance) => Some(instance),
        Err(e) => {
            tracing::warn!(key, error = %e, "ignoring an undecodable instance entry");
            None
        }
    }
}

/// Reported instances by key; `None` from a send means the consumer is gone.
struct Reported {
    instances: BTreeMap<String, Instance>,
    sender: mpsc::Sender<DiscoveryEvent>,
}

impl Reported {
    async fn send(&self, event: DiscoveryEvent) -> Option<()> {
        self.sender.send(event).await.ok()
    }

    async fn upsert(&mut self, key: String, instance: Instance) -> Option<()> {
        if self.instances.get(&key) != Some(&instance) {
            self.instances.insert(key, instance.clone());
            self.send(DiscoveryEvent::Added(instance)).await?;
        }
        Some(())
    }

    async fn remove(&mut self, key: &str) -> Option<()> {
        if let Some(instance) = self.instances.remove(key) {
            self.send(DiscoveryEvent::Removed(instance)).await?;
        }
        Some(())
    }

    /// Reports the difference between what consumers know and `snapshot`.
    async fn resync(&mut self, snapshot: BTreeMap<String, Instance>) -> Option<()> {
        let gone: Vec<String> = self
            .instances
            .keys()
            .filter(|key| !snapshot.contains_key(*key))
            .cloned()
            .collect();
        for key in gone {
            self.remove(&key).await?;
        }
        for (key, instance) in snapshot {
            self.upsert(key, instance).await?;
        }
        Some(())
    }
}

async fn run(store: Arc<dyn KvStore>, prefix: String, sender: mpsc::Sender<DiscoveryEvent>) {
    let mut reported = Reported {
        instances: BTreeMap::new(),
        sender,
    };
    let mut retry = FIRST_RETRY;
    loop {
        let watch = tokio::select! {
            _ = reported.sender.closed() => return,
            watch = store.watch_prefix(&prefix) => watch,
        };
        match watch {
            Err(e) => {
                tracing::warn!(store = %store.describe(), prefix, error = %e, retry_in = ?retry,
                    "discovery watch failed");
            }
            Ok(watch) => {
                retry = FIRST_RETRY;
                let snapshot = watch
                    .snapshot
                    .iter()
                    .filter_map(|(key, value)| Some((key.clone(), decode(key, value)?)))
                    .collect();
                if reported.resync(snapshot).await.is_none() {
                    return;
                }
                let mut changes = watch.changes;
                loop {
                    let change = tokio::select! {
                        _ = reported.sender.closed() => return,
                        change = changes.next() => change,
                    };
                    let delivered = match change {
                        Some(Ok(KvChange::Put { key, value })) => match decode(&key, &value) {
                            Some(instance) => reported.upsert(key, instance).await,
                            None => Some(()),
                        },
                        Some(Ok(KvChange::Delete { key })) => reported.remove(&key).await,
                        Some(Err(e)) => {
                            tracing::warn!(store = %store.describe(), prefix, error = %e,
                                "discovery watch broke; resyncing");
                            break;
                        }
                        None => break,
                    };
                    if delivered.is_none() {
                        return;
                    }
                }
            }
        }
        tokio::select! {
            _ = reported.sender.closed() => return,
            _ = tokio::time::sleep(retry) => {}
        }
        retry = (retry * 2).min(MAX_RETRY);
    }
}

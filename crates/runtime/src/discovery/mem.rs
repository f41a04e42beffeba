//! The in-process store: a map under a mutex, leases with deadlines, a broadcast channel for
//! watchers. Leases really expire (a reaper task deletes their keys), so this twin passes the
//! same conformance suite as etcd, including the "crashed holder expires" scenario.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::{broadcast, Notify};
use tokio::time::Instant;

use super::store::{KeyValue, KvChange, KvStore, KvWatch, LeaseId};
use crate::error::{Error, Result};

/// Watchers further behind than this many changes are cut off and resync from a snapshot.
const WATCH_BUFFER: usize = 1024;

#[derive(Default)]
struct MemState {
    entries: BTreeMap<String, (Vec<u8>, LeaseId)>,
    /// Lease id → (ttl, deadline).
    leases: HashMap<LeaseId, (Duration, Instant)>,
    next_lease: LeaseId,
}

struct Shared {
    state: Mutex<MemState>,
    changes: broadcast::Sender<KvChange>,
    /// Wakes the reaper when a lease is granted (the next deadline may move) or the store drops.
    lease_changed: Arc<Notify>,
}

/// An in-memory [`KvStore`]. Clones share one registry; it lives as long as any clone.
#[derive(Clone)]
pub struct MemStore {
    shared: Arc<Shared>,
}

impl Default for MemStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemStore {
    /// An empty registry. Lease expiry needs a tokio runtime: the reaper task starts with the
    /// first granted lease.
    pub fn new() -> Self {
        let (changes, _) = broadcast::channel(WATCH_BUFFER);
        Self {
            shared: Arc::new(Shared {
                state: Mutex::new(MemState {
                    next_lease: 1,
                    ..MemState::default()
                }),
                changes,
                lease_changed: Arc::new(Notify::new()),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, MemState> {
        lock_state(&self.shared)
    }
}

fn lock_state(shared: &Shared) -> MutexGuard<'_, MemState> {
    // A panic while holding the lock leaves plain maps behind; they are still consistent
    // enough to keep serving, so recover instead of propagating the poison.
    shared
        .state
        .lock()
        .unwrap_or_else(|poison| poison.into_inner())
}

/// Deletes every lease whose deadline passed, and its keys, telling watchers. Returns the next
/// deadline still pending.
fn expire_leases(shared: &Shared, state: &mut MemState, now: Instant) -> Option<Instant> {
    let expired: Vec<LeaseId> = state
        .leases
        .iter()
        .filter(|(_, (_, deadline))| *deadline <= now)
        .map(|(id, _)| *id)
        .collect();
    for lease in expired {
        remove_lease(shared, state, lease);
    }
    state.leases.values().map(|(_, deadline)| *deadline).min()
}

fn remove_lease(shared: &Shared, state: &mut MemState, lease: LeaseId) -> bool {
    if state.leases.remove(&lease).is_none() {
        return false;
    }
    let keys: Vec<String> = state
        .entries
        .iter()
        .filter(|(_, (_, owner))| *owner == lease)
        .map(|(key, _)| key.clone())
        .collect();
    for key in keys {
        state.entries.remove(&key);
        // No receivers is fine: nobody is watching.
        let _ = shared.changes.send(KvChange::Delete { key });
    }
    true
}

/// Sleeps until the earliest lease deadline (or a lease change), then expires. Holds only a weak
/// reference, and exits when the store is dropped (its `Drop` rings `wake`).
async fn reap(shared: Weak<Shared>, wake: Arc<Notify>) {
    loop {
        let next = {
            let Some(strong) = shared.upgrade() else {
                return;
            };
            let mut state = lock_state(&strong);
            expire_leases(&strong, &mut state, Instant::now())
        };
        let deadline = next.unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
        tokio::select! {
            _ = tokio::time::sleep_until(deadline) => {}
            _ = wake.notified() => {}
        }
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        self.lease_changed.notify_one();
    }
}

#[async_trait::async_trait]
impl KvStore for MemStore {
    fn describe(&self) -> String {
        "mem".to_string()
    }

    fn max_value_bytes(&self) -> Option<usize> {
        None
    }

    async fn grant_lease(&self, ttl: Duration) -> Result<LeaseId> {
        let (lease, first) = {
            let mut state = self.lock();
            let lease = state.next_lease;
            state.next_lease += 1;
            let first = state.leases.is_empty() && lease == 1;
            state.leases.insert(lease, (ttl, Instant::now() + ttl));
            (lease, first)
        };
        if first {
            tokio::spawn(reap(
                Arc::downgrade(&self.shared),
                self.shared.lease_changed.clone(),
            ));
        }
        self.shared.lease_changed.notify_one();
        Ok(lease)
    }

    async fn keep_alive(&self, lease: LeaseId) -> Result<bool> {
        let mut state = self.lock();
        expire_leases(&self.shared, &mut state, Instant::now());
        match state.leases.get_mut(&lease) {
            Some((ttl, deadline)) => {
                *deadline = Instant::now() + *ttl;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    async fn revoke_lease(&self, lease: LeaseId) -> Result<()> {
        let mut state = self.lock();
        remove_lease(&self.shared, &mut state, lease);
        Ok(())
    }

    async fn put(&self, key: &str, value: Vec<u8>, lease: LeaseId) -> Result<()> {
        let mut state = self.lock();
        expire_leases(&self.shared, &mut state, Instant::now());
        if !state.leases.contains_key(&lease) {
            return Err(Error::LeaseGone { lease_id: lease });
        }
        state
            .entries
            .insert(key.to_string(), (value.clone(), lease));
        let _ = self.shared.changes.send(KvChange::Put {
            key: key.to_string(),
            value,
        });
        Ok(())
    }

    async fn delete(&self, key: &str) -> Result<()> {
        let mut state = self.lock();
        if state.entries.remove(key).is_some() {
            let _ = self.shared.changes.send(KvChange::Delete {
                key: key.to_string(),
            });
        }
        Ok(())
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let mut state = self.lock();
        expire_leases(&self.shared, &mut state, Instant::now());
        Ok(state.entries.get(key).map(|(value, _)| value.clone()))
    }

    async fn get_prefix(&self, prefix: &str) -> Result<Vec<KeyValue>> {
        let mut state = self.lock();
        expire_leases(&self.shared, &mut state, Instant::now());
        Ok(snapshot(&state, prefix))
    }

    async fn watch_prefix(&self, prefix: &str) -> Result<KvWatch> {
        // Subscribing and reading the snapshot under one lock: every change after the snapshot
        // reaches the receiver, none before it does.
        let (snapshot, receiver) = {
            let mut state = self.lock();
            expire_leases(&self.shared, &mut state, Instant::now());
            (snapshot(&state, prefix), self.shared.changes.subscribe())
        };
        let prefix = prefix.to_string();
        let changes = futures::stream::unfold(Some(receiver), move |receiver| {
            let prefix = prefix.clone();
            async move {
                let mut receiver = receiver?;
                loop {
                    match receiver.recv().await {
                        Ok(change) => {
                            let key = match &change {
                                KvChange::Put { key, .. } | KvChange::Delete { key } => key,
                            };
                            if key.starts_with(&prefix) {
                                return Some((Ok(change), Some(receiver)));
                            }
                        }
                        // Lagged: changes were lost; end so the caller resyncs. Closed: the
                        // store is gone.
                        Err(_) => return None,
                    }
                }
            }
        })
        .boxed();
        Ok(KvWatch { snapshot, changes })
    }
}

fn snapshot(state: &MemState, prefix: &str) -> Vec<KeyValue> {
    state
        .entries
        .range(prefix.to_string()..)
        .take_while(|(key, _)| key.starts_with(prefix))
        .map(|(key, (value, _))| (key.clone(), value.clone()))
        .collect()
}

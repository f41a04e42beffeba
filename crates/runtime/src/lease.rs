//! The lease keeper: an actor that holds a set of keys alive under one lease.
//!
//! It refreshes the lease every `ttl / 3`. When the store cannot be reached it retries with
//! backoff (100 ms doubling up to `ttl / 3`). When the store says the lease is gone — etcd was
//! down longer than the TTL, a `file:` reader judged us stale after a long pause — it grants a
//! new lease and writes every held key again, so the registration comes back without the
//! process restarting. Keys are re-written in the order they were first put (card chunks
//! before the card record that names them).
//!
//! Ending: a `Revoke` command (deregistration) or the command channel closing (the owner
//! dropped its handle) revokes the lease, removing every key; aborting the task (a simulated
//! crash, or runtime shutdown) leaves the keys to expire with the TTL.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::discovery::store::{KeyValue, KvStore, LeaseId};
use crate::error::{Error, Result};

const FIRST_RETRY: Duration = Duration::from_millis(100);

/// A command to the keeper.
enum LeaseCommand {
    /// Write `entries` in order; then delete held keys starting with `replace_prefix` that are
    /// not among `entries`.
    Put {
        entries: Vec<KeyValue>,
        replace_prefix: Option<String>,
        reply: oneshot::Sender<Result<()>>,
    },
    /// Revoke the lease (deleting all keys) and stop.
    Revoke { reply: oneshot::Sender<Result<()>> },
}

/// The owner's side of a running keeper. Dropping it revokes the lease (in the background).
#[derive(Debug)]
pub struct LeaseHandle {
    commands: mpsc::Sender<LeaseCommand>,
    task: JoinHandle<()>,
}

impl LeaseHandle {
    /// Grants a lease of `ttl`, writes `entries` under it, and starts keeping it alive.
    pub async fn start(
        store: Arc<dyn KvStore>,
        ttl: Duration,
        entries: Vec<KeyValue>,
    ) -> Result<Self> {
        let lease = store.grant_lease(ttl).await?;
        for (key, value) in &entries {
            if let Err(e) = store.put(key, value.clone(), lease).await {
                let _ = store.revoke_lease(lease).await;
                return Err(e);
            }
        }
        let keeper = LeaseKeeper {
            store,
            ttl,
            lease,
            held: entries,
            lease_lost: false,
            needs_rewrite: false,
        };
        let (commands, receiver) = mpsc::channel(16);
        let task = tokio::spawn(keeper.run(receiver));
        Ok(Self { commands, task })
    }

    /// Writes `entries` under the lease (and keeps them across lease re-grants); then removes
    /// previously held keys under `replace_prefix` that `entries` did not rewrite.
    pub async fn put(&self, entries: Vec<KeyValue>, replace_prefix: Option<String>) -> Result<()> {
        let (reply, answer) = oneshot::channel();
        let command = LeaseCommand::Put {
            entries,
            replace_prefix,
            reply,
        };
        self.commands
            .send(command)
            .await
            .map_err(|_| Error::KeeperStopped)?;
        answer.await.map_err(|_| Error::KeeperStopped)?
    }

    /// Revokes the lease, removing every key, and waits for the keeper to stop.
    pub async fn revoke(self) -> Result<()> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(LeaseCommand::Revoke { reply })
            .await
            .map_err(|_| Error::KeeperStopped)?;
        answer.await.map_err(|_| Error::KeeperStopped)?
    }

    /// Stops refreshing without removing anything, as a crash would: the keys expire after the
    /// TTL. For tests and for shutting down without touching the store.
    pub fn abandon(self) {
        self.task.abort();
    }
}

struct LeaseKeeper {
    store: Arc<dyn KvStore>,
    ttl: Duration,
    lease: LeaseId,
    /// Every key we hold, in first-write order.
    held: Vec<KeyValue>,
    /// The store said the lease is gone; grant a new one.
    lease_lost: bool,
    /// Some held keys may be missing from the store; write them all again.
    needs_rewrite: bool,
}

impl LeaseKeeper {
    async fn run(mut self, mut commands: mpsc::Receiver<LeaseCommand>) {
        let interval = (self.ttl / 3).max(Duration::from_millis(10));
        let mut retry = FIRST_RETRY;
        let mut next_refresh = Instant::now() + interval;
        loop {
            tokio::select! {
                command = commands.recv() => match command {
                    Some(LeaseCommand::Put { entries, replace_prefix, reply }) => {
                        let result = self.put(entries, replace_prefix).await;
                        let _ = reply.send(result);
                    }
                    Some(LeaseCommand::Revoke { reply }) => {
                        let _ = reply.send(self.store.revoke_lease(self.lease).await);
                        return;
                    }
                    None => {
                        if let Err(e) = self.store.revoke_lease(self.lease).await {
                            tracing::warn!(store = %self.store.describe(), error = %e,
                                "revoking a dropped registration failed; it expires with its TTL");
                        }
                        return;
                    }
                },
                _ = tokio::time::sleep_until(next_refresh) => {
                    match self.refresh().await {
                        Ok(()) => {
                            retry = FIRST_RETRY;
                            next_refresh = Instant::now() + interval;
                        }
                        Err(e) => {
                            tracing::warn!(store = %self.store.describe(), error = %e,
                                retry_in = ?retry, "lease refresh failed");
                            next_refresh = Instant::now() + retry;
                            retry = (retry * 2).min(interval);
                        }
                    }
                }
            }
        }
    }

    /// Keeps the lease alive, re-granting it and re-writing the held keys if it was lost.
    async fn refresh(&mut self) -> Result<()> {
        if !self.lease_lost {
            if self.store.keep_alive(self.lease).await? {
                if self.needs_rewrite {
                    self.rewrite().await?;
                }
                return Ok(());
            }
            tracing::info!(store = %self.store.describe(), lease = self.lease,
                "lease is gone from the store; granting a new one and re-registering");
            self.lease_lost = true;
        }
        self.lease = self.store.grant_lease(self.ttl).await?;
        self.lease_lost = false;
        self.needs_rewrite = true;
        self.rewrite().await
    }

    async fn rewrite(&mut self) -> Result<()> {
        for (key, value) in &self.held {
            if let Err(e) = self.store.put(key, value.clone(), self.lease).await {
                self.lease_lost = matches!(e, Error::LeaseGone { .. });
                return Err(e);
            }
        }
        self.needs_rewrite = false;
        Ok(())
    }

    async fn put(&mut self, entries: Vec<KeyValue>, replace_prefix: Option<String>) -> Result<()> {
        let stale: Vec<String> = match &replace_prefix {
            Some(prefix) => self
                .held
                .iter()
                .map(|(key, _)| key)
                .filter(|key| key.starts_with(prefix.as_str()))
                .filter(|key| !entries.iter().any(|(new, _)| new == *key))
                .cloned()
                .collect(),
            None => Vec::new(),
        };
        self.held
            .retain(|(key, _)| !stale.contains(key) && !entries.iter().any(|(new, _)| new == key));
        self.held.extend(entries.iter().cloned());
        // Held first, written second: if the store is down now, the next successful refresh
        // writes these too.
        for (key, value) in entries {
            if let Err(e) = self.store.put(&key, value, self.lease).await {
                self.needs_rewrite = true;
                if matches!(e, Error::LeaseGone { .. }) {
                    self.lease_lost = true;
                    return self.refresh().await;
                }
                return Err(e);
            }
        }
        for key in stale {
            self.store.delete(&key).await?;
        }
        Ok(())
    }
}

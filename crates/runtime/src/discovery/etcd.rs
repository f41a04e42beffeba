//! The `etcd://` store: keys under etcd leases, prefix watches from a snapshot revision.
//!
//! The client connects lazily and its channel reconnects by itself, so an etcd restart shows
//! up here only as failed calls (the lease keeper retries with backoff) and ended watch streams
//! (the discovery watch resyncs). Every unary call has a deadline so a dead server cannot stall
//! a keeper past its lease.

use std::collections::VecDeque;
use std::time::Duration;

use etcd_client::{
    Client, ConnectOptions, DeleteOptions, EventType, GetOptions, PutOptions, WatchOptions,
};
use futures::StreamExt;

use super::store::{KeyValue, KvChange, KvStore, KvWatch, LeaseId};
use crate::error::{Error, Result};

/// etcd refuses requests over `--max-request-bytes` (1.5 MiB by default). Values above this are
/// chunked by the discovery layer; the margin covers the key and protobuf framing.
pub const ETCD_MAX_VALUE_BYTES: usize = 512 * 1024;

/// Deadline of one unary etcd call.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(3);

/// A [`KvStore`] on an etcd cluster.
#[derive(Clone)]
pub struct EtcdStore {
    client: Client,
    endpoints: Vec<String>,
}

impl EtcdStore {
    /// Creates a client for `endpoints` (`http://host:port`). Succeeds even if etcd is not up
    /// yet: connections are made per call and retried.
    pub async fn connect(endpoints: &[String]) -> Result<Self> {
        let options = ConnectOptions::new()
            .with_connect_timeout(REQUEST_TIMEOUT)
            .with_keep_alive(Duration::from_secs(5), REQUEST_TIMEOUT);
        let client = Client::connect(endpoints, Some(options))
            .await
            .map_err(|e| Error::Etcd {
                op: "connect",
                endpoint: endpoints.join(","),
                message: e.to_string(),
            })?;
        Ok(Self {
            client,
            endpoints: endpoints.to_vec(),
        })
    }

    fn error(&self, op: &'static str, message: impl ToString) -> Error {
        Error::Etcd {
            op,
            endpoint: self.endpoints.join(","),
            message: message.to_string(),
        }
    }

    /// Runs one call with [`REQUEST_TIMEOUT`], mapping both failure kinds to [`Error::Etcd`].
    async fn call<T>(
        &self,
        op: &'static str,
        fut: impl std::future::Future<Output = Result<T, etcd_client::Error>>,
    ) -> Result<T> {
        match tokio::time::timeout(REQUEST_TIMEOUT, fut).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(self.error(op, e)),
            Err(_) => Err(self.error(op, format!("no answer within {REQUEST_TIMEOUT:?}"))),
        }
    }
}

struct WatchState {
    stream: etcd_client::WatchStream,
    pending: VecDeque<KvChange>,
    store: EtcdStore,
}

fn is_lease_not_found(error: &etcd_client::Error) -> bool {
    error.to_string().contains("requested lease not found")
}

/// etcd lease TTLs are whole seconds; round up so a lease never lives shorter than asked.
fn ttl_seconds(ttl: Duration) -> i64 {
    let secs = ttl.as_secs() + u64::from(ttl.subsec_nanos() > 0);
    secs.max(1) as i64
}

fn key_string(op: &'static str, key: &[u8]) -> Result<String> {
    String::from_utf8(key.to_vec()).map_err(|_| Error::CorruptEntry {
        key: String::from_utf8_lossy(key).into_owned(),
        reason: format!("{op}: key is not UTF-8"),
    })
}

#[async_trait::async_trait]
impl KvStore for EtcdStore {
    fn describe(&self) -> String {
        format!("etcd:{}", self.endpoints.join(","))
    }

    fn max_value_bytes(&self) -> Option<usize> {
        Some(ETCD_MAX_VALUE_BYTES)
    }

    async fn grant_lease(&self, ttl: Duration) -> Result<LeaseId> {
        let mut client = self.client.clone();
        let response = self
            .call("lease_grant", client.lease_grant(ttl_seconds(ttl), None))
            .await?;
        Ok(response.id() as LeaseId)
    }

    async fn keep_alive(&self, lease: LeaseId) -> Result<bool> {
        let mut client = self.client.clone();
        // Opening the keep-alive stream sends one refresh and reads its answer (a TTL of 0, an
        // error here, means the lease is gone); one refresh per call is all we need.
        let exchange = client.lease_keep_alive(lease as i64);
        match tokio::time::timeout(REQUEST_TIMEOUT, exchange).await {
            Ok(Ok(_)) => Ok(true),
            Ok(Err(etcd_client::Error::LeaseKeepAliveError(message)))
                if message.contains("lease not found") =>
            {
                Ok(false)
            }
            Ok(Err(e)) => Err(self.error("lease_keep_alive", e)),
            Err(_) => Err(self.error("lease_keep_alive", "timeout")),
        }
    }

    async fn revoke_lease(&self, lease: LeaseId) -> Result<()> {
        let mut client = self.client.clone();
        match tokio::time::timeout(REQUEST_TIMEOUT, client.lease_revoke(lease as i64)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) if is_lease_not_found(&e) => Ok(()),
            Ok(Err(e)) => Err(self.error("lease_revoke", e)),
            Err(_) => Err(self.error("lease_revoke", "timeout")),
        }
    }

    async fn put(&self, key: &str, value: Vec<u8>, lease: LeaseId) -> Result<()> {
        let mut client = self.client.clone();
        let options = PutOptions::new().with_lease(lease as i64);
        let put = client.put(key, value, Some(options));
        match tokio::time::timeout(REQUEST_TIMEOUT, put).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) if is_lease_not_found(&e) => Err(Error::LeaseGone { lease_id: lease }),
            Ok(Err(e)) => Err(self.error("put", e)),
            Err(_) => Err(self.error("put", "timeout")),
        }
    }

    async fn delete(&self, key: &str) -> Result<()> {
        let mut client = self.client.clone();
        self.call("delete", client.delete(key, None::<DeleteOptions>))
            .await?;
        Ok(())
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let mut client = self.client.clone();
        let response = self.call("get", client.get(key, None)).await?;
        Ok(response.kvs().first().map(|kv| kv.value().to_vec()))
    }

    async fn get_prefix(&self, prefix: &str) -> Result<Vec<KeyValue>> {
        let mut client = self.client.clone();
        let options = GetOptions::new().with_prefix();
        let response = self.call("get", client.get(prefix, Some(options))).await?;
        response
            .kvs()
            .iter()
            .map(|kv| Ok((key_string("get", kv.key())?, kv.value().to_vec())))
            .collect()
    }

    async fn watch_prefix(&self, prefix: &str) -> Result<KvWatch> {
        let mut client = self.client.clone();
        let options = GetOptions::new().with_prefix();
        let response = self.call("get", client.get(prefix, Some(options))).await?;
        let revision = response.header().map(|h| h.revision()).unwrap_or(0);
        let snapshot = response
            .kvs()
            .iter()
            .map(|kv| Ok((key_string("get", kv.key())?, kv.value().to_vec())))
            .collect::<Result<Vec<_>>>()?;
        let options = WatchOptions::new()
            .with_prefix()
            .with_start_revision(revision + 1);
        let stream = self
            .call("watch", client.watch(prefix, Some(options)))
            .await?;
        let state = WatchState {
            stream,
            pending: VecDeque::new(),
            store: self.clone(),
        };
        let changes = futures::stream::unfold(Some(state), |state| async move {
            let mut state = state?;
            loop {
                if let Some(change) = state.pending.pop_front() {
                    return Some((Ok(change), Some(state)));
                }
                match state.stream.message().await {
                    Ok(Some(response)) => {
                        if response.canceled() {
                            let reason = format!("watch canceled: {}", response.cancel_reason());
                            return Some((Err(state.store.error("watch", reason)), None));
                        }
                        for event in response.events() {
                            let Some(kv) = event.kv() else { continue };
                            let key = match key_string("watch", kv.key()) {
                                Ok(key) => key,
                                Err(e) => return Some((Err(e), None)),
                            };
                            state.pending.push_back(match event.event_type() {
                                EventType::Put => KvChange::Put {
                                    key,
                                    value: kv.value().to_vec(),
                                },
                                EventType::Delete => KvChange::Delete { key },
                            });
                        }
                    }
                    Ok(None) => return None,
                    Err(e) => return Some((Err(state.store.error("watch", e)), None)),
                }
            }
        });
        Ok(KvWatch {
            snapshot,
            changes: changes.boxed(),
        })
    }
}

//! The seam under every discovery backend: a small key-value store with leases and prefix
//! watches. Discovery semantics (instances, model cards, chunking, resyncing watches) are written
//! once on top of it, so `mem`, `file:` and `etcd://` differ only here.

use std::time::Duration;

use futures::stream::BoxStream;

use crate::error::Result;

/// Id of a lease in one store. Keys put under a lease vanish when it expires or is revoked.
pub type LeaseId = u64;

/// One key and its value.
pub type KeyValue = (String, Vec<u8>);

/// A change seen by a prefix watch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KvChange {
    Put { key: String, value: Vec<u8> },
    Delete { key: String },
}

/// A prefix watch: the entries present when it started, then every later change. The change
/// stream ends (or yields an error) when the store can no longer guarantee it saw every change
/// — a lost connection, a lagging consumer; the caller then starts a new watch and diffs.
pub struct KvWatch {
    pub snapshot: Vec<KeyValue>,
    pub changes: BoxStream<'static, Result<KvChange>>,
}

/// A key-value store with leases, as etcd offers; `mem` and `file:` imitate it.
#[async_trait::async_trait]
pub trait KvStore: Send + Sync + 'static {
    /// Where the store lives, for logs and errors (e.g. `etcd://127.0.0.1:2379`).
    fn describe(&self) -> String;

    /// The largest value one `put` may carry, if the store has a limit. Larger values are split
    /// into chunks by the caller.
    fn max_value_bytes(&self) -> Option<usize>;

    /// Creates a lease that expires `ttl` after its last keep-alive.
    async fn grant_lease(&self, ttl: Duration) -> Result<LeaseId>;

    /// Refreshes a lease. `Ok(false)`: the store no longer knows it (expired or revoked);
    /// `Err`: the store could not be reached.
    async fn keep_alive(&self, lease: LeaseId) -> Result<bool>;

    /// Ends a lease now, deleting every key under it.
    async fn revoke_lease(&self, lease: LeaseId) -> Result<()>;

    /// Writes `key` under `lease`. Fails with `Error::LeaseGone` if the lease no longer exists.
    async fn put(&self, key: &str, value: Vec<u8>, lease: LeaseId) -> Result<()>;

    /// Removes `key` if present.
    async fn delete(&self, key: &str) -> Result<()>;

    /// The value of `key`, if present (and its lease alive).
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>>;

    /// Every live entry whose key starts with `prefix`, sorted by key.
    async fn get_prefix(&self, prefix: &str) -> Result<Vec<KeyValue>>;

    /// Watches every key starting with `prefix`.
    async fn watch_prefix(&self, prefix: &str) -> Result<KvWatch>;
}

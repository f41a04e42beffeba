//! Discovery: which instances serve which endpoints, and which models they serve.
//!
//! One trait, [`Discovery`], with one implementation over a small leased key-value store
//! ([`store::KvStore`]) that has three backends, chosen by [`DiscoveryConfig`]:
//! - [`mem::MemStore`] — one process; leases expire by a timer, like the others;
//! - [`file::FileStore`] — processes on one machine sharing a directory; heartbeated leases;
//! - [`etcd::EtcdStore`] — a cluster; etcd leases with keep-alive and prefix watches.
//!
//! Instances and model cards are written under a lease held by a [`Registration`]; a crashed
//! process's entries vanish when its lease expires. Large model cards are chunked to fit etcd's
//! request limit ([`cards`]).

pub mod cards;
pub mod config;
pub mod etcd;
pub mod file;
pub mod keys;
pub mod mem;
pub mod registration;
pub mod store;
pub mod watch;

use std::sync::Arc;
use std::time::Duration;

pub use cards::ModelCardEntry;
pub use config::{DiscoveryBackend, DiscoveryConfig};
pub use registration::Registration;
pub use watch::{DiscoveryEvent, InstanceWatch};

use crate::error::{Error, Result};
use crate::lease::LeaseHandle;
use crate::names::{Instance, PathPrefix};
use store::KvStore;

/// Registering, listing and watching instances, and reading model cards.
#[async_trait::async_trait]
pub trait Discovery: Send + Sync {
    /// Where the registry lives, for logs (`mem`, `file:/dir`, `etcd:http://…`).
    fn describe(&self) -> String;

    /// Registers `instance` under a new lease kept alive in the background until the returned
    /// guard is dropped or deregistered.
    async fn register(&self, instance: Instance) -> Result<Registration>;

    /// Every live instance under `prefix`, sorted by path then id.
    async fn list(&self, prefix: &PathPrefix) -> Result<Vec<Instance>>;

    /// The instances under `prefix`: an `Added` for each present now, then every change.
    async fn watch(&self, prefix: &PathPrefix) -> Result<InstanceWatch>;

    /// Published model cards, of one model or of all, with their publishers.
    async fn model_cards(&self, model: Option<&str>) -> Result<Vec<ModelCardEntry>>;
}

/// [`Discovery`] over any [`KvStore`].
pub struct StoreDiscovery {
    store: Arc<dyn KvStore>,
    lease_ttl: Duration,
}

impl StoreDiscovery {
    /// Discovery on `store`, granting leases of `lease_ttl`.
    pub fn new(store: Arc<dyn KvStore>, lease_ttl: Duration) -> Self {
        Self { store, lease_ttl }
    }
}

#[async_trait::async_trait]
impl Discovery for StoreDiscovery {
    fn describe(&self) -> String {
        self.store.describe()
    }

    async fn register(&self, instance: Instance) -> Result<Registration> {
        let value = serde_json::to_vec(&instance).expect("invariant: an instance serializes");
        let entries = vec![(keys::instance_key(&instance), value)];
        let lease = LeaseHandle::start(self.store.clone(), self.lease_ttl, entries).await?;
        Ok(Registration::new(
            instance,
            lease,
            self.store.max_value_bytes(),
        ))
    }

    async fn list(&self, prefix: &PathPrefix) -> Result<Vec<Instance>> {
        let entries = self
            .store
            .get_prefix(&keys::instances_prefix(prefix))
            .await?;
        entries
            .into_iter()
            .map(|(key, value)| {
                serde_json::from_slice(&value).map_err(|e| Error::CorruptEntry {
                    key,
                    reason: e.to_string(),
                })
            })
            .collect()
    }

    async fn watch(&self, prefix: &PathPrefix) -> Result<InstanceWatch> {
        Ok(InstanceWatch::start(
            self.store.clone(),
            keys::instances_prefix(prefix),
        ))
    }

    async fn model_cards(&self, model: Option<&str>) -> Result<Vec<ModelCardEntry>> {
        cards::read_all(self.store.as_ref(), &keys::cards_prefix(model)).await
    }
}

impl DiscoveryConfig {
    /// Opens the configured backend. `mem` creates a fresh registry: components of one process
    /// share it by sharing the returned handle.
    pub async fn connect(&self) -> Result<Arc<dyn Discovery>> {
        let store: Arc<dyn KvStore> = match &self.backend {
            DiscoveryBackend::Mem => Arc::new(mem::MemStore::new()),
            DiscoveryBackend::File { dir } => {
                Arc::new(file::FileStore::open(dir, self.file_poll_interval)?)
            }
            DiscoveryBackend::Etcd { endpoints } => {
                Arc::new(etcd::EtcdStore::connect(endpoints).await?)
            }
        };
        Ok(Arc::new(StoreDiscovery::new(store, self.lease_ttl)))
    }
}

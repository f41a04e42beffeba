//! [`Registration`]: the RAII guard of one registered instance.

use rotor_protocol::ModelCard;

use super::{cards, keys};
use crate::error::Result;
use crate::lease::LeaseHandle;
use crate::names::{Instance, InstanceId};

/// One instance registered in discovery, kept alive by a background lease keeper.
///
/// Dropping it removes the instance (and the model cards it published) in the background;
/// [`deregister`](Self::deregister) does the same and waits for it. If the process dies, the
/// entries expire after the lease TTL.
#[derive(Debug)]
pub struct Registration {
    instance: Instance,
    lease: LeaseHandle,
    max_value_bytes: Option<usize>,
}

impl Registration {
    pub(crate) fn new(
        instance: Instance,
        lease: LeaseHandle,
        max_value_bytes: Option<usize>,
    ) -> Self {
        Self {
            instance,
            lease,
            max_value_bytes,
        }
    }

    /// The registered instance.
    pub fn instance(&self) -> &Instance {
        &self.instance
    }

    /// Its id.
    pub fn instance_id(&self) -> InstanceId {
        self.instance.instance_id
    }

    /// Publishes (or replaces) this instance's card for `card.name`, under the same lease as
    /// the instance: it disappears with the registration. Large cards are chunked (see
    /// [`cards`]).
    pub async fn put_model_card(&self, card: &ModelCard) -> Result<()> {
        let id = self.instance.instance_id;
        let entries = cards::encode(card, id, self.max_value_bytes);
        let replace = keys::card_chunks_prefix(&card.name, id);
        self.lease.put(entries, Some(replace)).await
    }

    /// Removes the instance and its cards now, and stops the keeper.
    pub async fn deregister(self) -> Result<()> {
        self.lease.revoke().await
    }

    /// Stops refreshing without removing anything — what a crash looks like to everyone else.
    /// The entries vanish once the lease TTL passes. Meant for tests.
    pub fn abandon(self) {
        self.lease.abandon();
    }
}

//! The event plane: fire-and-forget pub/sub for KV-cache events and load metrics.
//!
//! - [`EventPlane`]: publish bytes on an [`EventSubject`], subscribe to a subject's stream,
//!   flush (a barrier: everything published so far has left the process).
//! - [`InProcessEventPlane`]: tokio broadcast channels, for `rotor serve` and tests.
//! - [`NatsEventPlane`]: core NATS pub/sub (async-nats, which reconnects and re-subscribes on
//!   its own after a server restart).
//! - [`EventsConfig`]: the `--events` choice (`mem` or `nats://HOST[:PORT]`).
//! - [`publish_json`], [`subscribe_json`], [`KvEventPublisher`]: typed helpers.
//!
//! Semantics common to both backends (checked by one conformance suite): delivery to every
//! subscriber of the exact subject that subscribed before the publish; order preserved per
//! publisher; at most once — nothing is stored for absent subscribers, and a subscriber that
//! falls far behind loses events (KV events carry ids, so consumers detect the gap and resync).

mod config;
mod in_process;
mod nats;
mod subject;
mod typed;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;

use crate::error::Result;

pub use config::EventsConfig;
pub use in_process::InProcessEventPlane;
pub use nats::NatsEventPlane;
pub use subject::{EventSubject, TOPIC_KV_EVENTS, TOPIC_LOAD};
pub use typed::{publish_json, subscribe_json, KvEventPublisher};

/// Payloads delivered to one subscription, in publish order per publisher. Ends only when the
/// plane itself is closed.
pub type EventStream = BoxStream<'static, Bytes>;

/// One pub/sub transport.
#[async_trait]
pub trait EventPlane: Send + Sync {
    /// Sends `payload` to every current subscriber of `subject`.
    async fn publish(&self, subject: &EventSubject, payload: Bytes) -> Result<()>;

    /// Subscribes to `subject`. Events published after this returns are delivered.
    async fn subscribe(&self, subject: &EventSubject) -> Result<EventStream>;

    /// Waits until every event this handle published so far has left the process (reached
    /// the NATS server; immediate in-process). `publish` alone may still be buffering; flush
    /// before dropping a handle whose last events matter.
    async fn flush(&self) -> Result<()>;
}

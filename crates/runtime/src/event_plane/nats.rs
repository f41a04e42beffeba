//! [`NatsEventPlane`]: the event plane on core NATS pub/sub.

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;

use super::{EventPlane, EventStream, EventSubject};
use crate::error::{Error, Result};

/// How long `flush` and `subscribe` wait for the server to confirm, e.g. while reconnecting.
const ROUND_TRIP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// A NATS-backed event plane. async-nats keeps the connection alive: after the server goes away
/// it reconnects with backoff (capped at 4 s) forever and re-creates every subscription, so
/// subscribers resume without action. Events published while disconnected are buffered by the
/// client up to its capacity or lost; the plane is at-most-once by design.
#[derive(Clone, Debug)]
pub struct NatsEventPlane {
    client: async_nats::Client,
    url: String,
}

impl NatsEventPlane {
    /// Connects to `url` (`nats://HOST:PORT`). Fails if the server cannot be reached now.
    pub async fn connect(url: &str) -> Result<Self> {
        let client = async_nats::ConnectOptions::new()
            .name("rotor")
            .connect(url)
            .await
            .map_err(|error| nats_error("connect", url, error))?;
        Ok(Self {
            client,
            url: url.to_string(),
        })
    }

    /// The server URL.
    pub fn url(&self) -> &str {
        &self.url
    }
}

impl NatsEventPlane {
    /// A barrier: returns once the server has processed every operation this connection sent
    /// before it. async-nats' own `flush` only writes the socket, which proves nothing about
    /// the server; a message to a private inbox, received back on this connection, does,
    /// because the server handles one connection's operations in order.
    async fn round_trip(&self) -> Result<()> {
        let inbox = self.client.new_inbox();
        let mut echo = self
            .client
            .subscribe(inbox.clone())
            .await
            .map_err(|error| nats_error("flush", &self.url, error))?;
        self.client
            .publish(inbox, Bytes::new())
            .await
            .map_err(|error| nats_error("flush", &self.url, error))?;
        self.client
            .flush()
            .await
            .map_err(|error| nats_error("flush", &self.url, error))?;
        match tokio::time::timeout(ROUND_TRIP_TIMEOUT, echo.next()).await {
            Ok(Some(_)) => Ok(()),
            Ok(None) => Err(nats_error("flush", &self.url, "connection closed")),
            Err(_) => Err(nats_error(
                "flush",
                &self.url,
                format!("no answer from the server within {ROUND_TRIP_TIMEOUT:?}"),
            )),
        }
    }
}

#[async_trait]
impl EventPlane for NatsEventPlane {
    async fn publish(&self, subject: &EventSubject, payload: Bytes) -> Result<()> {
        self.client
            .publish(subject.as_str().to_string(), payload)
            .await
            .map_err(|error| nats_error("publish", &self.url, error))
    }

    async fn subscribe(&self, subject: &EventSubject) -> Result<EventStream> {
        let subscriber = self
            .client
            .subscribe(subject.as_str().to_string())
            .await
            .map_err(|error| nats_error("subscribe", &self.url, error))?;
        // The server must have registered the interest before we return, or an event
        // published right after `subscribe` (on any connection) could find no subscriber.
        self.round_trip().await?;
        Ok(subscriber.map(|message| message.payload).boxed())
    }

    async fn flush(&self) -> Result<()> {
        self.round_trip().await
    }
}

fn nats_error(op: &'static str, url: &str, error: impl std::fmt::Display) -> Error {
    Error::Nats {
        op,
        url: url.to_string(),
        message: error.to_string(),
    }
}

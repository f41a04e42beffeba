//! Rotor's distributed runtime: how processes find each other and talk.
//!
//! - [`names`]: `Namespace/Component/Endpoint` paths, [`InstanceId`] and [`Instance`] (one
//!   process serving one endpoint at a request-plane address).
//! - [`discovery`]: the [`Discovery`] trait (register, list, watch, model cards) and its three
//!   backends chosen by [`DiscoveryConfig`]: `mem` (one process), `file:DIR` (local
//!   multi-process, heartbeated files) and `etcd://HOST:PORT` (keys under an etcd lease).
//! - [`lease`]: the keep-alive loop that holds a registration's keys alive, re-granting the lease
//!   and re-writing the keys when the store lost them (etcd restarted, a long pause).
//! - [`request_plane`]: streamed request/response over TCP — [`RequestPlaneServer`] runs
//!   [`StreamHandler`]s per endpoint, [`RequestPlaneClient`] multiplexes calls over one
//!   connection per peer, with per-stream flow control, cancel, drain, and `Disconnected` when
//!   the peer dies.
//! - [`event_plane`]: pub/sub of KV events and load metrics behind [`EventPlane`], in-process or
//!   on NATS, chosen by [`EventsConfig`] (`--events`).
//! - [`host_id`]: which machine this process runs on, as far as sharing `/dev/shm` goes.
//! - [`Error`]: the crate's one error enum.
//!
//! This crate must not depend on `rotor-engine` or `rotor-model` (nor on HTTP frameworks): it
//! moves names, bytes and events, never tensors.

pub mod discovery;
pub mod error;
pub mod event_plane;
pub mod host;
pub mod lease;
pub mod names;
pub mod request_plane;

pub use discovery::{
    Discovery, DiscoveryBackend, DiscoveryConfig, DiscoveryEvent, InstanceWatch, ModelCardEntry,
    Registration, StoreDiscovery,
};
pub use error::{Error, Result};
pub use event_plane::{EventPlane, EventSubject, EventsConfig};
pub use host::host_id;
pub use names::{EndpointPath, Instance, InstanceId, PathPrefix};
pub use request_plane::{
    RequestContext, RequestPlaneClient, RequestPlaneConfig, RequestPlaneServer, ResponseStream,
    StreamHandler,
};

//! [`ModelWatcher`]: keeps a [`Frontend`]'s models in step with the workers in discovery.
//!
//! It watches `{namespace}/{component}/generate`. When an instance appears, its model card is
//! read from discovery (a worker registers before it publishes its card, so an instance without
//! a card yet is retried with backoff). The card's model is served — its tokenizer and template
//! come from the card, so the frontend needs no model files — and the instance joins that
//! model's [`RoutedBackend`] as a [`RemoteWorker`]. When the last instance of a model leaves
//! (deregistered, or its lease expired), the model leaves /v1/models. Its backend is kept, so
//! its counters survive a restart of every worker.
//!
//! With an event plane it also subscribes to the component's KV events (for the kv mode) and
//! load reports (kv decode load, least-loaded tie-breaks), and hands each to the backend of the
//! worker's model. With `routing.replica_sync` it also publishes its kv decisions on the
//! component's [`ROUTER_SYNC_TOPIC`] and applies other replicas' (see [`ReplicaMessage`]).
//! Everything runs in one task (plus the replica publisher); dropping the handle or
//! [`ModelWatcher::stop`] ends it.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::stream::BoxStream;
use futures::StreamExt;
use rotor_protocol::worker::{GENERATE_ENDPOINT, KV_EVENTS_TOPIC, LOAD_TOPIC};
use rotor_protocol::{LoadReport, ModelCard, RouterEvent};
use rotor_runtime::event_plane::{publish_json, subscribe_json};
use rotor_runtime::{
    Discovery, DiscoveryEvent, EndpointPath, EventPlane, EventSubject, Instance, InstanceId,
    InstanceWatch, RequestPlaneConfig,
};
use tokio::sync::mpsc::{self, UnboundedReceiver, UnboundedSender};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::config::RoutingConfig;
use super::metrics::RoutingMetrics;
use super::remote::RemoteWorker;
use super::replica::{ReplicaMessage, ROUTER_SYNC_TOPIC};
use super::routed::RoutedBackend;
use crate::backend::ServedModel;
use crate::error::FrontendError;
use crate::server::Frontend;

const FIRST_CARD_RETRY: Duration = Duration::from_millis(50);
const MAX_CARD_RETRY: Duration = Duration::from_secs(1);

/// What to watch and how to route.
#[derive(Debug, Clone)]
pub struct ModelWatcherConfig {
    pub namespace: String,
    pub component: String,
    pub routing: RoutingConfig,
    pub request_plane: RequestPlaneConfig,
}

impl Default for ModelWatcherConfig {
    fn default() -> Self {
        Self {
            namespace: rotor_protocol::worker::DEFAULT_NAMESPACE.to_string(),
            component: rotor_protocol::worker::DEFAULT_COMPONENT.to_string(),
            routing: RoutingConfig::default(),
            request_plane: RequestPlaneConfig::default(),
        }
    }
}

/// Where a watcher's models go: the frontend's HTTP API, or a standalone router's endpoints.
pub trait ModelSink: Send + Sync + 'static {
    /// Starts serving a model. May block for a while (it builds the tokenizer); the watcher
    /// calls it off the async threads.
    fn add_model(&self, model: ServedModel) -> Result<(), FrontendError>;

    /// Stops serving a model (its last worker left).
    fn remove_model(&self, name: &str);
}

impl ModelSink for Frontend {
    fn add_model(&self, model: ServedModel) -> Result<(), FrontendError> {
        Frontend::add_model(self, model)
    }

    fn remove_model(&self, name: &str) {
        Frontend::remove_model(self, name)
    }
}

/// The running watcher. Dropping it stops the watch (models already served stay).
pub struct ModelWatcher {
    cancel: CancellationToken,
    task: Option<JoinHandle<()>>,
    publisher: Option<JoinHandle<()>>,
}

impl ModelWatcher {
    /// Starts watching. `events` is the event plane the workers publish on; `None` when there is
    /// none shared with them (then kv mode routes approximately: set `routing.kv_events` false).
    /// Adds the routing metrics to the frontend's /metrics.
    pub async fn start(
        frontend: Frontend,
        discovery: Arc<dyn Discovery>,
        events: Option<Arc<dyn EventPlane>>,
        config: ModelWatcherConfig,
    ) -> Result<Self, FrontendError> {
        let metrics = Arc::new(RoutingMetrics::default());
        frontend.metrics().add_source(metrics.clone());
        Self::start_with_sink(Arc::new(frontend), metrics, discovery, events, config).await
    }

    /// Like [`start`](Self::start), handing models to `sink` and the routing figures to
    /// `metrics` (which the caller renders).
    pub async fn start_with_sink(
        sink: Arc<dyn ModelSink>,
        metrics: Arc<RoutingMetrics>,
        discovery: Arc<dyn Discovery>,
        events: Option<Arc<dyn EventPlane>>,
        config: ModelWatcherConfig,
    ) -> Result<Self, FrontendError> {
        let runtime = |op| move |source| FrontendError::Runtime { op, source };
        config.routing.clone().validate()?;
        let path = EndpointPath::new(&config.namespace, &config.component, GENERATE_ENDPOINT)
            .map_err(runtime("endpoint path"))?;
        let watch = discovery
            .watch(&path.into())
            .await
            .map_err(runtime("watching discovery"))?;
        let subject = |topic| {
            EventSubject::new(&config.namespace, &config.component, topic)
                .map_err(runtime("event subject"))
        };
        let (kv_events, loads) = match &events {
            Some(plane) => {
                let kv = subscribe_json::<RouterEvent>(plane.as_ref(), &subject(KV_EVENTS_TOPIC)?)
                    .await
                    .map_err(runtime("subscribing to KV events"))?;
                let loads = subscribe_json::<LoadReport>(plane.as_ref(), &subject(LOAD_TOPIC)?)
                    .await
                    .map_err(runtime("subscribing to load reports"))?;
                (Some(kv), Some(loads))
            }
            None => (None, None),
        };
        let cancel = CancellationToken::new();
        let (replica, replica_in, publisher) = match &events {
            Some(plane) if config.routing.replica_sync => {
                let sync_subject = subject(ROUTER_SYNC_TOPIC)?;
                let incoming = subscribe_json::<ReplicaMessage>(plane.as_ref(), &sync_subject)
                    .await
                    .map_err(runtime("subscribing to router replica messages"))?;
                let (out, outgoing) = mpsc::unbounded_channel();
                let publisher = tokio::spawn(publish_replica_messages(
                    Arc::clone(plane),
                    sync_subject,
                    outgoing,
                    cancel.clone(),
                ));
                let replica: u64 = rand::random();
                tracing::info!(
                    replica = format_args!("{replica:016x}"),
                    "router replica sync on"
                );
                (Some((replica, out)), Some(incoming), Some(publisher))
            }
            _ => (None, None, None),
        };
        let state = WatcherState {
            sink,
            discovery,
            config,
            metrics,
            models: HashMap::new(),
            served: HashSet::new(),
            joined: HashMap::new(),
            host_ids: HashMap::new(),
            pending: HashMap::new(),
            card_retry: FIRST_CARD_RETRY,
            replica,
        };
        let streams = Streams {
            kv_events,
            loads,
            replica_in,
        };
        let task = tokio::spawn(state.run(watch, streams, cancel.clone()));
        Ok(Self {
            cancel,
            task: Some(task),
            publisher,
        })
    }

    /// Stops watching and waits for the task to end.
    pub async fn stop(mut self) {
        self.cancel.cancel();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        if let Some(publisher) = self.publisher.take() {
            let _ = publisher.await;
        }
    }
}

impl Drop for ModelWatcher {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

type Events<T> = Option<BoxStream<'static, rotor_runtime::Result<T>>>;

/// What the watcher task listens to besides discovery.
struct Streams {
    kv_events: Events<RouterEvent>,
    loads: Events<LoadReport>,
    replica_in: Events<ReplicaMessage>,
}

/// Publishes this replica's routing news until `stop` fires (then what is queued is dropped:
/// the others expire those requests after their TTL).
async fn publish_replica_messages(
    plane: Arc<dyn EventPlane>,
    subject: EventSubject,
    mut outgoing: UnboundedReceiver<ReplicaMessage>,
    stop: CancellationToken,
) {
    loop {
        let message = tokio::select! {
            _ = stop.cancelled() => return,
            message = outgoing.recv() => match message {
                Some(message) => message,
                None => return,
            },
        };
        if let Err(error) = publish_json(plane.as_ref(), &subject, &message).await {
            tracing::warn!(%error, "publishing a router replica message failed");
        }
    }
}

struct WatcherState {
    sink: Arc<dyn ModelSink>,
    discovery: Arc<dyn Discovery>,
    config: ModelWatcherConfig,
    metrics: Arc<RoutingMetrics>,
    /// Every model ever served, by name.
    models: HashMap<String, RoutedBackend>,
    /// Models in the frontend now.
    served: HashSet<String>,
    /// Instances routed to, and their model.
    joined: HashMap<InstanceId, String>,
    /// The `host_id` of each joined instance's card (it picks the KV transport).
    host_ids: HashMap<InstanceId, Option<String>>,
    /// Instances whose card has not been read yet.
    pending: HashMap<InstanceId, Instance>,
    card_retry: Duration,
    /// This replica's id and the publisher's queue (replica sync on).
    replica: Option<(u64, UnboundedSender<ReplicaMessage>)>,
}

/// The next item of an optional stream; never ready when there is none.
async fn next_of<T>(stream: &mut Events<T>) -> Option<rotor_runtime::Result<T>> {
    match stream {
        Some(stream) => stream.next().await,
        None => std::future::pending().await,
    }
}

impl WatcherState {
    async fn run(mut self, mut watch: InstanceWatch, streams: Streams, cancel: CancellationToken) {
        let Streams {
            mut kv_events,
            mut loads,
            mut replica_in,
        } = streams;
        loop {
            let retry = self.card_retry;
            tokio::select! {
                _ = cancel.cancelled() => return,
                event = watch.recv() => match event {
                    Some(DiscoveryEvent::Added(instance)) => self.on_added(instance).await,
                    Some(DiscoveryEvent::Removed(instance)) => self.on_removed(&instance),
                    None => return,
                },
                event = next_of(&mut kv_events) => match event {
                    Some(Ok(event)) => {
                        if let Some(backend) = self.backend_of(event.worker_id) {
                            backend.apply_kv_event(&event);
                        }
                    }
                    Some(Err(error)) => tracing::warn!(%error, "ignoring a KV event"),
                    None => kv_events = None,
                },
                report = next_of(&mut loads) => match report {
                    Some(Ok(report)) => {
                        if let Some(backend) = self.backend_of(report.worker_id) {
                            backend.update_load(&report);
                        }
                    }
                    Some(Err(error)) => tracing::warn!(%error, "ignoring a load report"),
                    None => loads = None,
                },
                message = next_of(&mut replica_in) => match message {
                    Some(Ok(message)) => {
                        if let Some(backend) = self.models.get(&message.model) {
                            backend.apply_replica_message(&message);
                        }
                    }
                    Some(Err(error)) => tracing::warn!(%error, "ignoring a router replica message"),
                    None => replica_in = None,
                },
                _ = tokio::time::sleep(retry), if !self.pending.is_empty() => {
                    self.card_retry = (self.card_retry * 2).min(MAX_CARD_RETRY);
                    self.join_pending().await;
                }
            }
        }
    }

    fn backend_of(&self, worker: u64) -> Option<&RoutedBackend> {
        let model = self.joined.get(&InstanceId(worker))?;
        self.models.get(model)
    }

    async fn on_added(&mut self, instance: Instance) {
        let id = instance.instance_id;
        if let Some(model) = self.joined.get(&id) {
            // Known instance with new data (a new address): point its worker there.
            if let Some(backend) = self.models.get(model) {
                let role = backend.role_of(id.0).unwrap_or_default();
                let host_id = self.host_ids.get(&id).cloned().flatten();
                backend.add_worker_with_role(id.0, Arc::new(self.remote(&instance, host_id)), role);
            }
            return;
        }
        self.pending.insert(id, instance);
        self.card_retry = FIRST_CARD_RETRY;
        self.join_pending().await;
    }

    fn on_removed(&mut self, instance: &Instance) {
        let id = instance.instance_id;
        self.pending.remove(&id);
        self.host_ids.remove(&id);
        let Some(model) = self.joined.remove(&id) else {
            return;
        };
        let Some(backend) = self.models.get(&model) else {
            return;
        };
        backend.remove_worker(id.0);
        tracing::info!(%model, instance = %id, "worker left");
        if backend.is_empty() && self.served.remove(&model) {
            self.sink.remove_model(&model);
            tracing::info!(%model, "model no longer served: its last worker left");
        }
    }

    fn remote(&self, instance: &Instance, host_id: Option<String>) -> RemoteWorker {
        RemoteWorker::on_host(instance.address.clone(), host_id, self.config.request_plane)
    }

    /// Joins every pending instance whose card is published now.
    async fn join_pending(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let cards = match self.discovery.model_cards(None).await {
            Ok(cards) => cards,
            Err(error) => {
                tracing::warn!(%error, "reading model cards failed; retrying");
                return;
            }
        };
        for entry in cards {
            if let Some(instance) = self.pending.remove(&entry.instance_id) {
                self.join(instance, entry.card).await;
            }
        }
    }

    async fn join(&mut self, instance: Instance, card: ModelCard) {
        let model = card.name.clone();
        let backend = match self.models.get(&model) {
            Some(backend) => backend.clone(),
            None => match RoutedBackend::for_card(&card, &self.config.routing) {
                Ok(backend) => {
                    if let Some((replica, out)) = &self.replica {
                        backend.enable_replica_sync(*replica, out.clone());
                    }
                    self.metrics.add(&backend);
                    self.models.insert(model.clone(), backend.clone());
                    backend
                }
                Err(error) => {
                    tracing::error!(%model, %error, "cannot route this model; ignoring its worker");
                    return;
                }
            },
        };
        let id = instance.instance_id;
        let remote = self.remote(&instance, card.host_id.clone());
        backend.add_worker_with_role(id.0, Arc::new(remote), card.role);
        backend.set_host_pool(id.0, card.host_pool_key());
        self.joined.insert(id, model.clone());
        self.host_ids.insert(id, card.host_id.clone());
        tracing::info!(%model, instance = %id, address = %instance.address, role = %card.role,
            "worker joined");
        if self.served.contains(&model) {
            return;
        }
        // Building the tokenizer from the card takes a while: keep it off the async threads.
        let sink = Arc::clone(&self.sink);
        let served = ServedModel {
            card,
            backend: Arc::new(backend.clone()),
        };
        let added = tokio::task::spawn_blocking(move || sink.add_model(served)).await;
        match added {
            Ok(Ok(())) => {
                self.served.insert(model.clone());
                tracing::info!(%model, "model served");
            }
            Ok(Err(error)) => {
                tracing::error!(%model, %error, "cannot serve this model's card");
                backend.remove_worker(id.0);
                self.joined.remove(&id);
            }
            Err(error) => tracing::error!(%model, %error, "adding the model panicked"),
        }
    }
}

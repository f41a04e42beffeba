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
//! worker's model. Everything runs in one task; dropping the handle or
//! [`ModelWatcher::stop`] ends it.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::stream::BoxStream;
use futures::StreamExt;
use rotor_protocol::worker::{GENERATE_ENDPOINT, KV_EVENTS_TOPIC, LOAD_TOPIC};
use rotor_protocol::{LoadReport, ModelCard, RouterEvent};
use rotor_runtime::event_plane::subscribe_json;
use rotor_runtime::{
    Discovery, DiscoveryEvent, EndpointPath, EventPlane, EventSubject, Instance, InstanceId,
    InstanceWatch, RequestPlaneConfig,
};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::config::RoutingConfig;
use super::metrics::RoutingMetrics;
use super::remote::RemoteWorker;
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

/// The running watcher. Dropping it stops the watch (models already served stay).
pub struct ModelWatcher {
    cancel: CancellationToken,
    task: Option<JoinHandle<()>>,
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
        let runtime = |op| move |source| FrontendError::Runtime { op, source };
        config.routing.clone().validate()?;
        let path = EndpointPath::new(&config.namespace, &config.component, GENERATE_ENDPOINT)
            .map_err(runtime("endpoint path"))?;
        let watch = discovery
            .watch(&path.into())
            .await
            .map_err(runtime("watching discovery"))?;
        let (kv_events, loads) = match &events {
            Some(plane) => {
                let subject =
                    |topic| EventSubject::new(&config.namespace, &config.component, topic);
                let kv_subject = subject(KV_EVENTS_TOPIC).map_err(runtime("event subject"))?;
                let load_subject = subject(LOAD_TOPIC).map_err(runtime("event subject"))?;
                let kv = subscribe_json::<RouterEvent>(plane.as_ref(), &kv_subject)
                    .await
                    .map_err(runtime("subscribing to KV events"))?;
                let loads = subscribe_json::<LoadReport>(plane.as_ref(), &load_subject)
                    .await
                    .map_err(runtime("subscribing to load reports"))?;
                (Some(kv), Some(loads))
            }
            None => (None, None),
        };
        let metrics = Arc::new(RoutingMetrics::default());
        frontend.metrics().add_source(metrics.clone());
        let cancel = CancellationToken::new();
        let state = WatcherState {
            frontend,
            discovery,
            config,
            metrics,
            models: HashMap::new(),
            served: HashSet::new(),
            joined: HashMap::new(),
            pending: HashMap::new(),
            card_retry: FIRST_CARD_RETRY,
        };
        let task = tokio::spawn(state.run(watch, kv_events, loads, cancel.clone()));
        Ok(Self {
            cancel,
            task: Some(task),
        })
    }

    /// Stops watching and waits for the task to end.
    pub async fn stop(mut self) {
        self.cancel.cancel();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for ModelWatcher {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

type Events<T> = Option<BoxStream<'static, rotor_runtime::Result<T>>>;

struct WatcherState {
    frontend: Frontend,
    discovery: Arc<dyn Discovery>,
    config: ModelWatcherConfig,
    metrics: Arc<RoutingMetrics>,
    /// Every model ever served, by name.
    models: HashMap<String, RoutedBackend>,
    /// Models in the frontend now.
    served: HashSet<String>,
    /// Instances routed to, and their model.
    joined: HashMap<InstanceId, String>,
    /// Instances whose card has not been read yet.
    pending: HashMap<InstanceId, Instance>,
    card_retry: Duration,
}

/// The next item of an optional stream; never ready when there is none.
async fn next_of<T>(stream: &mut Events<T>) -> Option<rotor_runtime::Result<T>> {
    match stream {
        Some(stream) => stream.next().await,
        None => std::future::pending().await,
    }
}

impl WatcherState {
    async fn run(
        mut self,
        mut watch: InstanceWatch,
        mut kv_events: Events<RouterEvent>,
        mut loads: Events<LoadReport>,
        cancel: CancellationToken,
    ) {
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
                backend.add_worker(id.0, Arc::new(self.remote(&instance)));
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
        let Some(model) = self.joined.remove(&id) else {
            return;
        };
        let Some(backend) = self.models.get(&model) else {
            return;
        };
        backend.remove_worker(id.0);
        tracing::info!(%model, instance = %id, "worker left");
        if backend.is_empty() && self.served.remove(&model) {
            self.frontend.remove_model(&model);
            tracing::info!(%model, "model no longer served: its last worker left");
        }
    }

    fn remote(&self, instance: &Instance) -> RemoteWorker {
        RemoteWorker::new(instance.address.clone(), self.config.request_plane)
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
        backend.add_worker(id.0, Arc::new(self.remote(&instance)));
        self.joined.insert(id, model.clone());
        tracing::info!(%model, instance = %id, address = %instance.address, "worker joined");
        if self.served.contains(&model) {
            return;
        }
        // Building the tokenizer from the card takes a while: keep it off the async threads.
        let frontend = self.frontend.clone();
        let served = ServedModel {
            card,
            backend: Arc::new(backend.clone()),
        };
        let added = tokio::task::spawn_blocking(move || frontend.add_model(served)).await;
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

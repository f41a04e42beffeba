//! [`RouterService`]: routes one component's workers and serves each of their models as an
//! instance of the router's own component. See the crate docs.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use rotor_frontend::{
    FrontendError, ModelSink, ModelWatcher, ModelWatcherConfig, RoutingMetrics, ServedModel,
};
use rotor_runtime::{Discovery, EventPlane, Instance};

use crate::endpoint::{EndpointConfig, ModelEndpoint};
use crate::error::Error;

/// Component a router registers its models under unless told otherwise.
pub const DEFAULT_ROUTER_COMPONENT: &str = "router";

/// What to route and where to serve it.
#[derive(Debug, Clone)]
pub struct RouterServiceConfig {
    /// The workers' namespace and component, the routing policy, the request-plane settings.
    pub watcher: ModelWatcherConfig,
    /// Component the router's model endpoints register under (same namespace as the workers).
    pub router_component: String,
    /// Host the request-plane listeners bind (one per model, on a free port). Bind a routable
    /// address when frontends are on other hosts.
    pub host: IpAddr,
    /// How long a model endpoint lets running requests finish when it stops.
    pub drain_timeout: Duration,
}

impl Default for RouterServiceConfig {
    fn default() -> Self {
        Self {
            watcher: ModelWatcherConfig::default(),
            router_component: DEFAULT_ROUTER_COMPONENT.to_string(),
            host: IpAddr::V4(Ipv4Addr::LOCALHOST),
            drain_timeout: Duration::from_secs(30),
        }
    }
}

/// The models being served: each one's endpoint.
struct EndpointSink {
    discovery: Arc<dyn Discovery>,
    config: EndpointConfig,
    runtime: tokio::runtime::Handle,
    grace: Duration,
    endpoints: Mutex<BTreeMap<String, ModelEndpoint>>,
}

impl EndpointSink {
    fn endpoints(&self) -> MutexGuard<'_, BTreeMap<String, ModelEndpoint>> {
        // Inserts and removals leave the map consistent, so a panic cannot poison it.
        self.endpoints
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl ModelSink for EndpointSink {
    /// Called on a blocking thread by the watcher, so it may wait for the registration.
    fn add_model(&self, model: ServedModel) -> Result<(), FrontendError> {
        let name = model.card.name.clone();
        if self.endpoints().contains_key(&name) {
            return Err(FrontendError::ModelAlreadyServed { model: name });
        }
        let endpoint = self.runtime.block_on(ModelEndpoint::start(
            model,
            self.discovery.as_ref(),
            &self.config,
        ))?;
        self.endpoints().insert(name, endpoint);
        Ok(())
    }

    /// Called from the watcher's task: the endpoint stops in the background.
    fn remove_model(&self, name: &str) {
        if let Some(endpoint) = self.endpoints().remove(name) {
            let grace = self.grace;
            self.runtime.spawn(endpoint.shutdown(grace));
        }
    }
}

/// A running router service. Stop it with [`shutdown`](Self::shutdown).
pub struct RouterService {
    watcher: ModelWatcher,
    sink: Arc<EndpointSink>,
    metrics: Arc<RoutingMetrics>,
}

impl RouterService {
    /// Starts watching `config.watcher`'s component and serving its models. `events` is the
    /// workers' event plane (`None`: no shared one; kv mode then routes approximately).
    pub async fn start(
        config: RouterServiceConfig,
        discovery: Arc<dyn Discovery>,
        events: Option<Arc<dyn EventPlane>>,
    ) -> Result<Self, Error> {
        if config.router_component == config.watcher.component {
            return Err(Error::RoutesToItself {
                component: config.router_component,
            });
        }
        let sink = Arc::new(EndpointSink {
            discovery: Arc::clone(&discovery),
            config: EndpointConfig {
                namespace: config.watcher.namespace.clone(),
                component: config.router_component.clone(),
                bind: SocketAddr::new(config.host, 0),
                request_plane: config.watcher.request_plane,
            },
            runtime: tokio::runtime::Handle::current(),
            grace: config.drain_timeout,
            endpoints: Mutex::new(BTreeMap::new()),
        });
        let metrics = Arc::new(RoutingMetrics::default());
        let watcher = ModelWatcher::start_with_sink(
            sink.clone(),
            Arc::clone(&metrics),
            discovery,
            events,
            config.watcher,
        )
        .await
        .map_err(|source| Error::Routing {
            op: "watching the workers",
            source,
        })?;
        Ok(Self {
            watcher,
            sink,
            metrics,
        })
    }

    /// The routing figures (the same families as a frontend's embedded router).
    pub fn metrics(&self) -> Arc<RoutingMetrics> {
        Arc::clone(&self.metrics)
    }

    /// The models served now, with the instance each is registered as.
    pub fn models(&self) -> Vec<(String, Instance)> {
        self.sink
            .endpoints()
            .iter()
            .map(|(name, endpoint)| (name.clone(), endpoint.instance().clone()))
            .collect()
    }

    /// Stops watching, deregisters every model and lets running requests finish within the
    /// drain timeout.
    pub async fn shutdown(self) {
        self.watcher.stop().await;
        let endpoints = std::mem::take(&mut *self.sink.endpoints());
        let grace = self.sink.grace;
        futures::future::join_all(
            endpoints
                .into_values()
                .map(|endpoint| endpoint.shutdown(grace)),
        )
        .await;
    }
}

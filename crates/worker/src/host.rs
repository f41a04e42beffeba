//! [`WorkerHost`]: one engine served on the runtime — a request-plane endpoint, a registration
//! with its model card in discovery, and KV events and load reports on the event plane. The
//! request plane also serves `kv_snapshot`, which routers call to resync after an event gap, and
//! the disaggregation endpoints (`kv_prefill`, `kv_import`, `kv_prefill_push`, `kv_import_shm`).
//! At start it removes stale KV shared-memory files of its directory (see [`crate::kv_shm`]).
//!
//! Start order: bind the request plane and install the generate handler (so the address works
//! before anyone learns it), start the publishers, then register the instance and put the card.
//! Stop order ([`WorkerHost::shutdown`]): deregister (revoking the lease removes the instance
//! and its card, so routers stop sending new work), drain in-flight requests within the grace
//! period, stop the publishers and flush the event plane, then stop the engine.
//!
//! An engine that can die apart from the worker (an external server, see
//! [`WorkerEngine::probe_health`]) is probed every `health_interval`: after `health_failures`
//! failed probes in a row the worker withdraws its registration, so routers stop sending it
//! requests (requests already running there fail and are migrated by the frontend); once a probe
//! succeeds again, it registers again under the same instance id.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rotor_protocol::kv_push::{KV_IMPORT_SHM_ENDPOINT, KV_PREFILL_PUSH_ENDPOINT};
use rotor_protocol::worker::{
    DEFAULT_COMPONENT, DEFAULT_NAMESPACE, GENERATE_ENDPOINT, KV_EVENTS_TOPIC, KV_IMPORT_ENDPOINT,
    KV_PREFILL_ENDPOINT, KV_SNAPSHOT_ENDPOINT, LOAD_TOPIC,
};
use rotor_protocol::WorkerId;
use rotor_runtime::event_plane::KvEventPublisher;
use rotor_runtime::{
    Discovery, EndpointPath, EventPlane, EventSubject, Instance, InstanceId, Registration,
    RequestPlaneConfig, RequestPlaneServer,
};
use tokio::sync::Mutex;
use tokio_util::sync::{CancellationToken, DropGuard};
use tokio_util::task::TaskTracker;

use crate::disagg::{KvImportHandler, KvPrefillHandler};
use crate::engine::WorkerEngine;
use crate::error::Error;
use crate::handler::generate_handler;
use crate::kv_push::{KvImportShmHandler, KvPrefillPushHandler, KvPushStats, KvPusher};
use crate::publishers::{forward_external_kv_events, forward_kv_events, LoadReporter};
use crate::snapshot_handler::KvSnapshotHandler;
use rotor_protocol::ModelCard;

/// Where a worker serves and how it reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerHostConfig {
    pub namespace: String,
    pub component: String,
    /// Request-plane listen address; port 0 picks a free port. The bound address is what the
    /// instance advertises, so bind a routable host (not 0.0.0.0) when peers are remote.
    pub bind: SocketAddr,
    /// How often the load is sampled and, when it changed, published.
    pub load_interval: Duration,
    pub request_plane: RequestPlaneConfig,
    /// How often an engine with a health probe is probed.
    pub health_interval: Duration,
    /// Failed probes in a row after which the worker leaves discovery (at least 1).
    pub health_failures: u32,
    /// Where KV blocks for a decode worker on this host are written, and where this worker
    /// accepts shared-memory batches from (`--kv-shm-dir`; both workers of a transfer must use
    /// the same directory).
    pub kv_shm_dir: PathBuf,
}

impl Default for WorkerHostConfig {
    fn default() -> Self {
        Self {
            namespace: DEFAULT_NAMESPACE.to_string(),
            component: DEFAULT_COMPONENT.to_string(),
            bind: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0),
            load_interval: Duration::from_millis(200),
            request_plane: RequestPlaneConfig::default(),
            health_interval: Duration::from_secs(1),
            health_failures: 3,
            kv_shm_dir: PathBuf::from(crate::kv_shm::DEFAULT_SHM_DIR),
        }
    }
}

/// What [`WorkerHost::shutdown`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShutdownReport {
    /// The registration was removed from discovery (if not, it expires with its lease TTL).
    pub deregistered: bool,
    /// Requests still running when the grace period ran out, cancelled with `EngineStopped`.
    pub cancelled_requests: usize,
}

/// A running worker. Dropping it without [`shutdown`](Self::shutdown) cancels in-flight
/// requests, stops the publishers and removes the registration in the background, but leaves
/// the engine running for its other owners.
pub struct WorkerHost {
    instance: Instance,
    server: RequestPlaneServer,
    /// `None` while withdrawn because the engine stopped answering.
    registration: Arc<Mutex<Option<Registration>>>,
    /// The health watcher (engines with a probe), stopped first by `shutdown` or when dropped.
    health: Option<(tokio::task::JoinHandle<()>, DropGuard)>,
    engine: Arc<dyn WorkerEngine>,
    events: Arc<dyn EventPlane>,
    publishers: TaskTracker,
    stop_publishers: DropGuard,
    kv_push_stats: Arc<KvPushStats>,
}

impl WorkerHost {
    /// Starts serving `engine`: binds the request plane, starts the publishers, registers the
    /// instance and publishes the engine's model card.
    pub async fn start(
        config: WorkerHostConfig,
        discovery: Arc<dyn Discovery>,
        events: Arc<dyn EventPlane>,
        engine: Arc<dyn WorkerEngine>,
    ) -> Result<Self, Error> {
        let (namespace, component) = (&config.namespace, &config.component);
        let path = EndpointPath::new(namespace, component, GENERATE_ENDPOINT)
            .map_err(Error::runtime("endpoint name"))?;
        let kv_subject = EventSubject::new(namespace, component, KV_EVENTS_TOPIC)
            .map_err(Error::runtime("KV event subject"))?;
        let load_subject = EventSubject::new(namespace, component, LOAD_TOPIC)
            .map_err(Error::runtime("load subject"))?;

        let (server, addr) = RequestPlaneServer::bind(config.bind, config.request_plane)
            .await
            .map_err(Error::runtime("binding the request plane"))?;
        server.register(GENERATE_ENDPOINT, generate_handler(Arc::clone(&engine)));
        server.register(
            KV_SNAPSHOT_ENDPOINT,
            Arc::new(KvSnapshotHandler::new(Arc::clone(&engine))),
        );
        server.register(
            KV_PREFILL_ENDPOINT,
            Arc::new(KvPrefillHandler::new(Arc::clone(&engine))),
        );
        server.register(
            KV_IMPORT_ENDPOINT,
            Arc::new(KvImportHandler::new(Arc::clone(&engine))),
        );
        let kv_pusher = Arc::new(KvPusher::new(
            config.kv_shm_dir.clone(),
            config.request_plane,
        ));
        let shm_dir = config.kv_shm_dir.clone();
        let swept = tokio::task::spawn_blocking(move || {
            crate::kv_shm::sweep_stale(&shm_dir, crate::kv_shm::STALE_AFTER)
        })
        .await
        .unwrap_or(0);
        if swept > 0 {
            tracing::info!(dir = %config.kv_shm_dir.display(), files = swept,
                "removed stale KV shared-memory files");
        }
        server.register(
            KV_PREFILL_PUSH_ENDPOINT,
            Arc::new(KvPrefillPushHandler::new(
                Arc::clone(&engine),
                Arc::clone(&kv_pusher),
            )),
        );
        server.register(
            KV_IMPORT_SHM_ENDPOINT,
            Arc::new(KvImportShmHandler::new(Arc::clone(&engine), &kv_pusher)),
        );

        let mut instance = Instance::new(path, addr.to_string());
        instance.metadata =
            serde_json::json!({ "model": engine.card().name, "role": engine.card().role });
        let worker_id: WorkerId = instance.instance_id.0;

        let stop = CancellationToken::new();
        let publishers = TaskTracker::new();
        if let Some(reader) = engine.subscribe_kv_events() {
            let publisher = KvEventPublisher::new(Arc::clone(&events), kv_subject, worker_id);
            publishers.spawn(forward_kv_events(reader, publisher, stop.clone()));
        } else if let Some(external) = engine.take_external_kv_events() {
            let publisher = KvEventPublisher::new(Arc::clone(&events), kv_subject, worker_id);
            publishers.spawn(forward_external_kv_events(
                external,
                publisher,
                stop.clone(),
            ));
        }
        let reporter = LoadReporter {
            engine: Arc::clone(&engine),
            plane: Arc::clone(&events),
            subject: load_subject,
            worker_id,
            interval: config.load_interval,
        };
        publishers.spawn(reporter.run(stop.clone()));
        let stop_publishers = stop.drop_guard();

        let registration = register(discovery.as_ref(), &instance, engine.card()).await?;
        tracing::info!(instance = %instance.instance_id, %addr, model = %engine.card().name,
            discovery = %discovery.describe(), "worker registered");
        let registration = Arc::new(Mutex::new(Some(registration)));
        let health = engine.probe_health().is_some().then(|| {
            let stop = CancellationToken::new();
            let watcher = HealthWatcher {
                engine: Arc::clone(&engine),
                discovery,
                instance: instance.clone(),
                registration: Arc::clone(&registration),
                interval: config.health_interval,
                failures_to_withdraw: config.health_failures.max(1),
            };
            let task = tokio::spawn(watcher.run(stop.clone()));
            (task, stop.drop_guard())
        });
        Ok(Self {
            instance,
            server,
            registration,
            health,
            engine,
            events,
            publishers,
            stop_publishers,
            kv_push_stats: Arc::clone(kv_pusher.stats()),
        })
    }

    /// What this worker's direct KV transfers did (sent as prefill worker, received as decode
    /// worker).
    pub fn kv_push_stats(&self) -> &Arc<KvPushStats> {
        &self.kv_push_stats
    }

    /// The registered instance (path, id, address).
    pub fn instance(&self) -> &Instance {
        &self.instance
    }

    pub fn instance_id(&self) -> InstanceId {
        self.instance.instance_id
    }

    /// The id KV events and load reports carry: the instance id's number.
    pub fn worker_id(&self) -> WorkerId {
        self.instance.instance_id.0
    }

    /// The request-plane address.
    pub fn local_addr(&self) -> SocketAddr {
        self.server.local_addr()
    }

    /// The hosted engine.
    pub fn engine(&self) -> &Arc<dyn WorkerEngine> {
        &self.engine
    }

    /// Requests running now.
    pub fn in_flight(&self) -> usize {
        self.server.in_flight()
    }

    /// Stops in order: deregister, drain within `grace`, stop publishers, stop the engine.
    pub async fn shutdown(self, grace: Duration) -> Result<ShutdownReport, Error> {
        let Self {
            instance,
            server,
            registration,
            health,
            engine,
            events,
            publishers,
            stop_publishers,
            kv_push_stats: _,
        } = self;
        let id = instance.instance_id;
        // The watcher must not register the worker again behind shutdown's back.
        if let Some((task, stop)) = health {
            drop(stop);
            let _ = task.await;
        }
        tracing::info!(instance = %id, "shutdown: deregistering from discovery");
        let deregistered = match registration.lock().await.take() {
            // Already withdrawn (the engine had stopped answering).
            None => true,
            Some(registration) => match registration.deregister().await {
                Ok(()) => true,
                Err(error) => {
                    tracing::warn!(instance = %id, %error,
                        "shutdown: deregistering failed; the entry expires with its lease");
                    false
                }
            },
        };
        tracing::info!(instance = %id, in_flight = server.in_flight(), ?grace,
            "shutdown: draining in-flight requests");
        let drain = server.shutdown(grace).await;
        tracing::info!(instance = %id, cancelled = drain.cancelled_requests,
            "shutdown: drained; stopping publishers");
        drop(stop_publishers);
        publishers.close();
        publishers.wait().await;
        if let Err(error) = events.flush().await {
            tracing::warn!(%error, "shutdown: flushing the event plane failed");
        }
        drop(server);
        tracing::info!(instance = %id, "shutdown: stopping the engine");
        tokio::task::spawn_blocking(move || engine.shutdown())
            .await
            .map_err(|e| Error::EngineStop {
                reason: e.to_string(),
            })?;
        tracing::info!(instance = %id, "shutdown: done");
        Ok(ShutdownReport {
            deregistered,
            cancelled_requests: drain.cancelled_requests,
        })
    }
}

/// Registers `instance` and publishes `card` under its lease (removing the registration again if
/// the card cannot be published).
async fn register(
    discovery: &dyn Discovery,
    instance: &Instance,
    card: &ModelCard,
) -> Result<Registration, Error> {
    let registration = discovery
        .register(instance.clone())
        .await
        .map_err(Error::runtime("registering in discovery"))?;
    if let Err(source) = registration.put_model_card(card).await {
        let _ = registration.deregister().await;
        return Err(Error::Runtime {
            op: "publishing the model card",
            source,
        });
    }
    Ok(registration)
}

/// Probes an engine that can die apart from the worker and keeps the registration in step: see
/// the module docs.
struct HealthWatcher {
    engine: Arc<dyn WorkerEngine>,
    discovery: Arc<dyn Discovery>,
    instance: Instance,
    registration: Arc<Mutex<Option<Registration>>>,
    interval: Duration,
    failures_to_withdraw: u32,
}

impl HealthWatcher {
    async fn run(self, stop: CancellationToken) {
        let id = self.instance.instance_id;
        let mut failures = 0u32;
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(self.interval) => {}
            }
            let Some(probe) = self.engine.probe_health() else {
                return;
            };
            let healthy = tokio::select! {
                _ = stop.cancelled() => return,
                healthy = probe => healthy,
            };
            let mut registration = self.registration.lock().await;
            if stop.is_cancelled() {
                return;
            }
            if healthy {
                failures = 0;
                if registration.is_none() {
                    match register(self.discovery.as_ref(), &self.instance, self.engine.card())
                        .await
                    {
                        Ok(r) => {
                            *registration = Some(r);
                            self.engine.registration_changed(true);
                            tracing::info!(instance = %id,
                                "the engine answers again: worker registered again");
                        }
                        // Tried again at the next probe.
                        Err(error) => tracing::warn!(instance = %id, %error,
                            "the engine answers again, but registering failed"),
                    }
                }
                continue;
            }
            failures += 1;
            if failures < self.failures_to_withdraw {
                tracing::warn!(instance = %id, failures, "the engine failed a health probe");
                continue;
            }
            if let Some(r) = registration.take() {
                tracing::warn!(instance = %id, failures,
                    "the engine stopped answering: leaving discovery until it is back");
                if let Err(error) = r.deregister().await {
                    tracing::warn!(instance = %id, %error,
                        "deregistering failed; the entry expires with its lease");
                }
                self.engine.registration_changed(false);
            }
        }
    }
}

//! [`RoutedBackend`]: one model's [`Backend`] over a changing set of workers — remote workers on
//! the request plane, or in-process engines — with a routing policy and request migration.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use rotor_protocol::{
    ErrorKind, GenerateRequest, LoadReport, ModelCard, RouterEvent, WireError, WorkerId,
    WorkerLoad, WorkerRole,
};

use super::config::{DisaggConfig, RoutingConfig};
use super::disagg::DisaggCounters;
use super::migration::Migration;
use super::pool::{Choice, Siblings, WorkerPool};
use super::replica::ReplicaMessage;
use crate::backend::{Backend, OutputStream};
use crate::error::FrontendError;

/// State shared by a [`RoutedBackend`], its running requests and the metrics.
pub(crate) struct RoutedInner {
    pub model: String,
    pub migration_limit: u32,
    pool: Mutex<WorkerPool>,
    pub migrations: AtomicU64,
    pub migration_failures: AtomicU64,
    /// Tokens per KV block of the model's workers (from the card).
    pub kv_block_size: Option<u32>,
    pub disagg: DisaggConfig,
    pub disagg_counters: DisaggCounters,
}

impl RoutedInner {
    pub fn pool(&self) -> MutexGuard<'_, WorkerPool> {
        // Every critical section leaves the pool consistent, so a panic in one cannot poison it.
        self.pool.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn select(&self, req: &GenerateRequest, excluded: &[WorkerId]) -> Option<Choice> {
        let siblings = Siblings {
            announced: req.sampling.siblings > 0,
            first: req.sampling.first_sibling.as_deref(),
        };
        self.pool()
            .select(&req.id, &req.token_ids, excluded, siblings, Instant::now())
    }

    pub fn count_migration(&self) {
        self.migrations.fetch_add(1, Ordering::Relaxed);
    }

    pub fn count_migration_failure(&self) {
        self.migration_failures.fetch_add(1, Ordering::Relaxed);
    }
}

/// A model served by several workers. Cheap to clone; clones share workers and counters.
///
/// Each request goes to the worker the [`RouterMode`](super::RouterMode) picks. If that worker
/// dies (`Disconnected`, `EngineStopped`, or a stream that ends without a finish reason), the
/// request moves to another worker, at most `migration_limit` times: the new worker gets the
/// prompt plus every token generated so far, with `max_tokens`/`min_tokens` reduced by that
/// count and the same sampling, so the caller sees one continuous stream.
#[derive(Clone)]
pub struct RoutedBackend {
    inner: Arc<RoutedInner>,
}

impl RoutedBackend {
    /// A backend for `model` without workers yet. In kv mode prompts are hashed at
    /// `kv_block_size` (the workers' KV block size).
    pub fn new(
        model: &str,
        kv_block_size: Option<u32>,
        config: &RoutingConfig,
    ) -> Result<Self, FrontendError> {
        let config = config.clone().validate()?;
        let pool = WorkerPool::new(model, kv_block_size, &config)?;
        Ok(Self {
            inner: Arc::new(RoutedInner {
                model: model.to_string(),
                migration_limit: config.migration_limit,
                pool: Mutex::new(pool),
                migrations: AtomicU64::new(0),
                migration_failures: AtomicU64::new(0),
                kv_block_size,
                disagg: config.disagg.clone(),
                disagg_counters: DisaggCounters::default(),
            }),
        })
    }

    /// A backend for the model a card describes.
    pub fn for_card(card: &ModelCard, config: &RoutingConfig) -> Result<Self, FrontendError> {
        Self::new(&card.name, card.kv_block_size, config)
    }

    pub fn model(&self) -> &str {
        &self.inner.model
    }

    /// Adds a worker, or replaces the backend of a known one (and lets it route again).
    pub fn add_worker(&self, worker: WorkerId, backend: Arc<dyn Backend>) {
        self.add_worker_with_role(worker, backend, WorkerRole::Aggregated);
    }

    /// Adds a worker with its disaggregation role (from its model card). With prefill and
    /// decode workers both present, requests are disaggregated (see the routing module docs).
    pub fn add_worker_with_role(
        &self,
        worker: WorkerId,
        backend: Arc<dyn Backend>,
        role: WorkerRole,
    ) {
        self.inner.pool().add_worker(worker, backend, role);
    }

    /// Names the G2 host pool `worker` shares with the other workers of its machine (its
    /// card's `host_pool_key`; `None`: a pool of its own). The kv router credits a block in
    /// that pool to every worker of it.
    pub fn set_host_pool(&self, worker: WorkerId, host_pool: Option<String>) {
        self.inner.pool().set_host_pool(worker, host_pool);
    }

    /// The role `worker` joined with.
    pub fn role_of(&self, worker: WorkerId) -> Option<WorkerRole> {
        self.inner.pool().role_of(worker)
    }

    /// Routable workers of `role` now.
    pub fn routable_workers(&self, role: WorkerRole) -> usize {
        self.inner.pool().routable_of(role)
    }

    /// Requests prefilled on a prefill worker (their KV moved to the decode worker).
    pub fn remote_prefills(&self) -> u64 {
        self.inner
            .disagg_counters
            .remote_prefills
            .load(Ordering::Relaxed)
    }

    /// Requests of a disaggregated pool prefilled on their decode worker, by reason label
    /// (`no_prefill_worker`, `short_prompt`, `cached`, `prefill_queue`, `prefill_failed`,
    /// `transfer_failed`, `import_rejected`, `timeout`, `unsupported`).
    pub fn local_prefills(&self, reason: &str) -> u64 {
        super::disagg::LocalReason::ALL
            .into_iter()
            .find(|r| r.label() == reason)
            .map_or(0, |r| self.inner.disagg_counters.local(r))
    }

    /// Blocks and bytes (every transport) moved from prefill to decode workers so far.
    pub fn transferred(&self) -> (u64, u64) {
        let counters = &self.inner.disagg_counters;
        (
            counters.transferred_blocks.load(Ordering::Relaxed),
            super::disagg::TransferPath::ALL
                .into_iter()
                .map(|path| counters.transferred_bytes(path))
                .sum(),
        )
    }

    /// Removes a worker; requests running on it go on until they end (or fail and migrate).
    pub fn remove_worker(&self, worker: WorkerId) -> bool {
        self.inner.pool().remove_worker(worker)
    }

    /// The workers, sorted (including any skipped for now after a failure).
    pub fn workers(&self) -> Vec<WorkerId> {
        self.inner.pool().workers()
    }

    pub fn is_empty(&self) -> bool {
        self.workers().is_empty()
    }

    /// Feeds a KV event to the kv router (ignored in other modes and for unknown workers).
    /// After a gap in a worker's events, fetches its KV snapshot in the background and rebuilds
    /// its part of the index from it (see [`WorkerPool::apply_kv_event`]).
    pub fn apply_kv_event(&self, event: &RouterEvent) {
        let fetch = self.inner.pool().apply_kv_event(event);
        if let Some(backend) = fetch {
            self.spawn_resync(event.worker_id, backend);
        }
    }

    fn spawn_resync(&self, worker: WorkerId, backend: Arc<dyn Backend>) {
        let inner = Arc::clone(&self.inner);
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(resync(inner, worker, backend));
            }
            Err(_) => inner.pool().abandon_resync(worker),
        }
    }

    /// Resyncs completed (index rebuilt from a worker's snapshot after lost events).
    /// Requests sent to their first sibling's worker (see `Siblings`).
    pub fn sibling_affinity(&self) -> u64 {
        self.inner.pool().sibling_affinity()
    }

    pub fn resyncs(&self) -> u64 {
        self.inner.pool().resyncs()
    }

    /// Records a worker's load report (least-loaded tie-breaks, kv decode load).
    pub fn update_load(&self, report: &LoadReport) {
        self.inner.pool().update_load(report.worker_id, report.load);
    }

    /// Shares this backend's kv decisions with other router replicas through `out`, as replica
    /// `replica` (kv mode only; see [`ReplicaMessage`]).
    pub fn enable_replica_sync(
        &self,
        replica: u64,
        out: tokio::sync::mpsc::UnboundedSender<ReplicaMessage>,
    ) {
        self.inner.pool().enable_replica_sync(replica, out);
    }

    /// Applies another router replica's message about this model.
    pub fn apply_replica_message(&self, message: &ReplicaMessage) {
        self.inner
            .pool()
            .apply_replica_message(message, Instant::now());
    }

    /// Other replicas' requests counted as load now.
    pub fn remote_requests(&self) -> usize {
        self.inner.pool().remote_requests()
    }

    /// Requests moved to another worker so far.
    pub fn migrations(&self) -> u64 {
        self.inner.migrations.load(Ordering::Relaxed)
    }

    /// Requests that failed because they could not be moved (limit reached, no worker left).
    pub fn migration_failures(&self) -> u64 {
        self.inner.migration_failures.load(Ordering::Relaxed)
    }

    pub(crate) fn inner(&self) -> &Arc<RoutedInner> {
        &self.inner
    }
}

/// Attempts at fetching one snapshot, and the first wait between them (doubled each time).
const RESYNC_ATTEMPTS: u32 = 4;
const RESYNC_RETRY: Duration = Duration::from_millis(100);

/// Fetches `worker`'s KV snapshot and rebuilds its part of the index; retries a failed fetch a
/// few times, then gives up (the index keeps what events said).
async fn resync(inner: Arc<RoutedInner>, worker: WorkerId, mut backend: Arc<dyn Backend>) {
    let mut attempt = 0;
    let mut wait = RESYNC_RETRY;
    loop {
        let Some(fetch) = backend.kv_snapshot() else {
            tracing::warn!(
                worker = format_args!("{worker:016x}"),
                "this worker cannot give a KV snapshot; its index entries stay as events left them"
            );
            inner.pool().abandon_resync(worker);
            return;
        };
        match fetch.await {
            Ok(snapshot) => match inner.pool().complete_resync(worker, snapshot) {
                // Lost events again meanwhile: start over.
                Some(again) => {
                    backend = again;
                    attempt = 0;
                    wait = RESYNC_RETRY;
                }
                None => return,
            },
            Err(error) => {
                attempt += 1;
                if attempt >= RESYNC_ATTEMPTS {
                    tracing::warn!(worker = format_args!("{worker:016x}"), %error,
                        "fetching the KV snapshot failed; giving up");
                    inner.pool().abandon_resync(worker);
                    return;
                }
                tokio::time::sleep(wait).await;
                wait *= 2;
            }
        }
    }
}

impl Backend for RoutedBackend {
    fn generate(&self, req: GenerateRequest) -> Result<OutputStream, WireError> {
        if self.inner.disagg.enforce && self.inner.pool().routable_of(WorkerRole::Prefill) == 0 {
            return Err(WireError::new(
                ErrorKind::Overloaded,
                format!(
                    "model `{}` has no worker with role `prefill` and disaggregated serving is \
                     enforced (--enforce-disagg); start a `rotor worker --role prefill`",
                    self.inner.model
                ),
            ));
        }
        let mut migration = Migration::new(Arc::clone(&self.inner), req);
        migration.launch().map_err(|error| match error {
            Some(error) => error,
            None => WireError::new(
                ErrorKind::Overloaded,
                format!(
                    "no worker is serving model `{}` right now; retry later",
                    self.inner.model
                ),
            ),
        })?;
        Ok(migration.into_stream())
    }

    /// Each routable worker's load: its own live figure when its backend has one (an engine in
    /// this process), else its last load report.
    fn worker_loads(&self) -> Vec<Option<WorkerLoad>> {
        // Backends are asked outside the pool's lock.
        let workers = self.inner.pool().routable_loads();
        workers
            .into_iter()
            .map(
                |(backend, reported)| match backend.worker_loads().as_slice() {
                    [live] => live.or(reported),
                    _ => reported,
                },
            )
            .collect()
    }
}

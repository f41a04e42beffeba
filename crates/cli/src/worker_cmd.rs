//! `rotor worker`: one engine served to frontends over the runtime — registered in discovery
//! with its model card, called over the request plane, reporting KV events and load on the
//! event plane. SIGINT/SIGTERM: deregister, drain (bounded by `--drain-timeout`), stop.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::ValueEnum;
use rotor_protocol::worker::{DEFAULT_COMPONENT, DEFAULT_NAMESPACE, LOAD_TOPIC};
use rotor_protocol::ModelCard;
use rotor_runtime::{DiscoveryConfig, EventSubject, EventsConfig};
use rotor_worker::{
    EchoEngine, EngineWorker, ExternalConfig, ExternalEngine, ExternalKind, ExternalStats,
    GgufModel, KvPushStats, WorkerEngine, WorkerHost, WorkerHostConfig,
};
use tokio_util::sync::CancellationToken;

use crate::args::{total_ram_bytes, EngineArgs, LocalEngineConfig, MockerArgs, MockerSettings};
use crate::engine_metrics::EngineMetrics;
use crate::serve::{model_spec, start_mocker_engine, start_native_engine};
use rotor_frontend::MetricsSource;

/// Which engine a worker hosts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EngineKind {
    /// The native CPU engine running the model.
    Native,
    /// Streams each prompt's tokens back without model compute (for testing the cluster).
    Echo,
    /// The native engine's scheduler and KV cache with simulated step times (`--mocker-*`).
    Mocker,
    /// llama.cpp's `llama-server` at `--engine-url` (token ids relayed to its `/completion`).
    #[value(name = "llama.cpp")]
    LlamaCpp,
    /// vLLM's OpenAI server at `--engine-url`, its KV events from `--engine-kv-events`.
    Vllm,
    /// Any OpenAI-compatible server at `--engine-url` (text in, text out).
    Openai,
}

impl EngineKind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Native => "native",
            Self::Echo => "echo",
            Self::Mocker => "mocker",
            Self::LlamaCpp => "llama.cpp",
            Self::Vllm => "vllm",
            Self::Openai => "openai",
        }
    }

    fn external(self) -> Option<ExternalKind> {
        match self {
            Self::LlamaCpp => Some(ExternalKind::LlamaCpp),
            Self::Vllm => Some(ExternalKind::Vllm),
            Self::Openai => Some(ExternalKind::OpenAi),
            _ => None,
        }
    }
}

/// `rotor worker` flags.
#[derive(Debug, clap::Args)]
pub struct WorkerArgs {
    /// Engine to host.
    #[arg(long, value_enum, default_value_t = EngineKind::Native)]
    pub engine: EngineKind,
    #[command(flatten)]
    pub engine_args: EngineArgs,
    #[command(flatten)]
    pub mocker_args: MockerArgs,
    /// Discovery: `mem` (this process only), `file:DIR` (processes on one machine) or
    /// `etcd://HOST:PORT[,HOST:PORT…]`.
    #[arg(
        long,
        default_value = "file:/tmp/rotor-discovery",
        env = "ROTOR_DISCOVERY"
    )]
    pub discovery: String,
    /// Event plane for KV events and load reports: `mem` (this process only) or `nats://HOST[:PORT]`.
    #[arg(long, default_value = "mem", env = "ROTOR_EVENTS")]
    pub events: String,
    /// Namespace to register under.
    #[arg(long, default_value = DEFAULT_NAMESPACE)]
    pub namespace: String,
    /// Component to register under.
    #[arg(long, default_value = DEFAULT_COMPONENT)]
    pub component: String,
    /// Address the request plane listens on, and advertises in discovery.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: IpAddr,
    /// Request-plane port (0 picks a free port).
    #[arg(long, default_value_t = 0)]
    pub request_plane_port: u16,
    /// Serve the worker's own Prometheus metrics (engine, KV cache and tiers, or an external
    /// engine's relay and KV-event counters) on GET /metrics at this port of --host (0 picks a
    /// free port; off when not given).
    #[arg(long)]
    pub metrics_port: Option<u16>,
    /// Seconds in-flight requests may take to finish on shutdown before they are cancelled.
    #[arg(long, default_value_t = 30)]
    pub drain_timeout: u64,
    /// Milliseconds between tokens of `--engine echo`.
    #[arg(long, default_value_t = 0)]
    pub echo_delay_ms: u64,
    /// Disaggregated serving: `aggregated` (prefill and decode here), `prefill` (compute
    /// prompts' KV for decode workers) or `decode` (generate, with prompts' KV moved here from
    /// prefill workers). Published in the model card; frontends disaggregate as soon as both
    /// `prefill` and `decode` workers are discovered.
    #[arg(long, default_value_t = rotor_protocol::WorkerRole::Aggregated)]
    pub role: rotor_protocol::WorkerRole,
    /// Disaggregated serving: the shared-memory directory KV blocks go through between two
    /// workers on one host (a prefill worker writes there, a decode worker reads only files of
    /// its own directory: give both the same one). Which transport a transfer uses is the
    /// router's `--kv-transport`.
    #[arg(long, default_value = rotor_worker::kv_shm::DEFAULT_SHM_DIR)]
    pub kv_shm_dir: PathBuf,
    #[command(flatten)]
    pub external: ExternalArgs,
}

/// Flags of `--engine llama.cpp|vllm|openai`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ExternalArgs {
    /// Base URL of the external engine, e.g. `http://127.0.0.1:8002`.
    #[arg(long)]
    pub engine_url: Option<String>,
    /// vLLM's KV-event ZMQ endpoint, as in its `--kv-events-config` (`tcp://127.0.0.1:P`: the
    /// worker binds it; `tcp://*:P`: vLLM binds and the worker connects).
    #[arg(long)]
    pub engine_kv_events: Option<String>,
    /// vLLM's KV-event replay endpoint (`replay_endpoint`), to recover lost events.
    #[arg(long)]
    pub engine_kv_replay: Option<String>,
    /// The model name the engine serves (default: the first of its /v1/models).
    #[arg(long)]
    pub engine_model: Option<String>,
    /// The engine's KV block size (default: read from vLLM's /metrics).
    #[arg(long)]
    pub engine_block_size: Option<usize>,
    /// Seconds to wait for the engine to answer at start-up.
    #[arg(long, default_value_t = 600)]
    pub engine_wait: u64,
    /// Milliseconds between health probes of the engine (its /health; an OpenAI-compatible
    /// server's /v1/models).
    #[arg(long, default_value_t = 1000)]
    pub engine_health_interval_ms: u64,
    /// Failed health probes in a row after which the worker leaves discovery (routers stop
    /// sending it requests); it registers again as soon as a probe succeeds.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    pub engine_health_failures: u32,
    /// A Hugging Face model directory whose tokenizer.json / tokenizer_config.json give the
    /// card's tokenizer and chat template (instead of `--model FILE.gguf`).
    #[arg(long)]
    pub tokenizer: Option<PathBuf>,
}

/// Validated `worker` settings.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    pub engine_kind: EngineKind,
    pub engine: LocalEngineConfig,
    pub mocker: MockerSettings,
    pub discovery: DiscoveryConfig,
    pub events: EventsConfig,
    pub host: WorkerHostConfig,
    pub drain_timeout: Duration,
    pub echo_delay: Duration,
    pub external: ExternalArgs,
    pub role: rotor_protocol::WorkerRole,
    /// Where to serve GET /metrics, if anywhere.
    pub metrics: Option<SocketAddr>,
}

impl WorkerArgs {
    pub fn validate(&self, total_ram_bytes: Option<u64>, cores: usize) -> Result<WorkerConfig> {
        let mut engine = self.engine_args.validate(total_ram_bytes, cores)?;
        if engine.kv_tiers.is_enabled() && self.engine == EngineKind::Echo {
            bail!("--kv-host-memory and --kv-disk-dir need --engine native or mocker: the echo engine keeps no KV cache");
        }
        // The default shared host pool is per namespace and model.
        engine.kv_tiers.namespace = self.namespace.clone();
        let ext = &self.external;
        match self.engine.external() {
            Some(kind) => {
                if ext.engine_url.is_none() {
                    bail!("--engine {} needs --engine-url URL", self.engine.as_str());
                }
                if ext.engine_kv_events.is_some() && kind != ExternalKind::Vllm {
                    bail!("--engine-kv-events needs --engine vllm");
                }
                if engine.kv_tiers.is_enabled() {
                    bail!("--kv-host-memory and --kv-disk-dir need --engine native or mocker");
                }
            }
            None => {
                if ext.engine_url.is_some()
                    || ext.engine_kv_events.is_some()
                    || ext.tokenizer.is_some()
                {
                    bail!("--engine-url, --engine-kv-events and --tokenizer need --engine llama.cpp, vllm or openai");
                }
            }
        }
        if self.role != rotor_protocol::WorkerRole::Aggregated
            && !matches!(self.engine, EngineKind::Native | EngineKind::Mocker)
        {
            bail!(
                "--role {} needs --engine native or mocker: KV blocks move only between Rotor's own engines",
                self.role
            );
        }
        if !self.kv_shm_dir.is_absolute() {
            bail!(
                "--kv-shm-dir {}: give an absolute path (it travels to the decode worker)",
                self.kv_shm_dir.display()
            );
        }
        let discovery = DiscoveryConfig::parse(&self.discovery).context("--discovery")?;
        let events = EventsConfig::parse(&self.events).context("--events")?;
        // Both names must also be valid event-subject segments.
        EventSubject::new(&self.namespace, &self.component, LOAD_TOPIC)
            .context("--namespace/--component")?;
        Ok(WorkerConfig {
            engine_kind: self.engine,
            engine,
            mocker: self.mocker_args.validate()?,
            discovery,
            events,
            host: WorkerHostConfig {
                namespace: self.namespace.clone(),
                component: self.component.clone(),
                bind: SocketAddr::new(self.host, self.request_plane_port),
                health_interval: Duration::from_millis(
                    self.external.engine_health_interval_ms.max(1),
                ),
                health_failures: self.external.engine_health_failures,
                kv_shm_dir: self.kv_shm_dir.clone(),
                ..WorkerHostConfig::default()
            },
            drain_timeout: Duration::from_secs(self.drain_timeout),
            echo_delay: Duration::from_millis(self.echo_delay_ms),
            external: self.external.clone(),
            role: self.role,
            metrics: self
                .metrics_port
                .map(|port| SocketAddr::new(self.host, port)),
        })
    }
}

/// What a worker's GET /metrics shows.
enum WorkerMetrics {
    Engine(EngineMetrics),
    External(Arc<ExternalStats>, String),
    Nothing,
}

impl WorkerMetrics {
    fn render(&self, kv_push: Option<&KvPushStats>) -> String {
        let mut out = String::new();
        match self {
            WorkerMetrics::Engine(engine) => engine.render(&mut out),
            WorkerMetrics::External(stats, labels) => stats.render_prometheus(labels, &mut out),
            WorkerMetrics::Nothing => out.push_str("# the echo engine keeps no metrics\n"),
        }
        if let Some(stats) = kv_push {
            render_kv_push(stats, &mut out);
        }
        out
    }
}

/// The worker's direct KV transfer counters (`rotor_worker::kv_push`).
fn render_kv_push(stats: &KvPushStats, out: &mut String) {
    use std::fmt::Write as _;
    use std::sync::atomic::Ordering;
    let (fallbacks, received) = (
        "rotor_kv_push_shm_fallbacks_total",
        "rotor_kv_push_shm_received_batches_total",
    );
    let by_transport: [(
        &str,
        &str,
        fn(&KvPushStats, rotor_protocol::KvTransport) -> u64,
    ); 2] = [
        (
            "rotor_kv_push_sent_bytes_total",
            "KV block bytes this worker sent to decode workers, by transport.",
            KvPushStats::sent_bytes,
        ),
        (
            "rotor_kv_push_sent_batches_total",
            "KV block batches this worker sent to decode workers, by transport.",
            KvPushStats::sent_batches,
        ),
    ];
    for (name, help, value) in by_transport {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
        for transport in rotor_protocol::KvTransport::ALL {
            let _ = writeln!(
                out,
                "{name}{{transport=\"{}\"}} {}",
                transport.label(),
                value(stats, transport)
            );
        }
    }
    let _ = writeln!(
        out,
        "# HELP {fallbacks} KV batches meant for shared memory sent over TCP instead.\n\
         # TYPE {fallbacks} counter\n{fallbacks} {}\n\
         # HELP {received} Shared-memory KV batches this worker read as decode worker.\n\
         # TYPE {received} counter\n{received} {}",
        stats.shm_fallbacks.load(Ordering::Relaxed),
        stats.shm_received_batches.load(Ordering::Relaxed)
    );
}

/// The host's transfer counters, once it started (the metrics endpoint starts first).
type KvPushSlot = Arc<std::sync::OnceLock<Arc<KvPushStats>>>;

async fn start_engine(cfg: &WorkerConfig) -> Result<(Arc<dyn WorkerEngine>, WorkerMetrics)> {
    let engine_metrics = |card: &ModelCard, worker: &EngineWorker| {
        let labels = format!("model=\"{}\"", card.name);
        WorkerMetrics::Engine(EngineMetrics {
            engines: vec![(labels.clone(), worker.engine().clone())],
            kv_links: Vec::new(),
            prefill_exports: vec![(labels, Arc::clone(worker.prefill_stats()))],
        })
    };
    Ok(match cfg.engine_kind {
        EngineKind::Native => {
            let mut built = start_native_engine(&cfg.engine, None).await?;
            built.card.role = cfg.role;
            let worker = EngineWorker::new(built.engine, built.card.clone());
            let metrics = engine_metrics(&built.card, &worker);
            (Arc::new(worker), metrics)
        }
        EngineKind::Mocker => {
            let mut built = start_mocker_engine(&cfg.engine, &cfg.mocker, None).await?;
            built.card.role = cfg.role;
            let mut worker = EngineWorker::new(built.engine, built.card.clone());
            let mut metrics = engine_metrics(&built.card, &worker);
            if let Some(link) = cfg.mocker.kv_link() {
                if let WorkerMetrics::Engine(m) = &mut metrics {
                    m.kv_links
                        .push((format!("model=\"{}\"", built.card.name), Arc::clone(&link)));
                }
                worker = worker.with_kv_link(link);
            }
            (Arc::new(worker), metrics)
        }
        EngineKind::Echo => {
            let spec = model_spec(&cfg.engine).await?;
            let delay = cfg.echo_delay;
            let engine =
                tokio::task::spawn_blocking(move || EchoEngine::open(&spec, delay)).await??;
            (Arc::new(engine), WorkerMetrics::Nothing)
        }
        EngineKind::LlamaCpp | EngineKind::Vllm | EngineKind::Openai => {
            let engine = start_external(cfg).await?;
            let labels = format!(
                "model=\"{}\",engine=\"{}\"",
                engine.card().name,
                cfg.engine_kind.as_str()
            );
            let metrics = WorkerMetrics::External(Arc::clone(engine.stats()), labels);
            (Arc::new(engine), metrics)
        }
    })
}

/// Serves `metrics` on GET /metrics at `addr` until `shutdown`; returns the bound address.
async fn serve_metrics(
    addr: SocketAddr,
    metrics: WorkerMetrics,
    kv_push: KvPushSlot,
    shutdown: CancellationToken,
) -> Result<SocketAddr> {
    let metrics = Arc::new(metrics);
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let metrics = Arc::clone(&metrics);
            let kv_push = Arc::clone(&kv_push);
            async move {
                (
                    [(
                        axum::http::header::CONTENT_TYPE,
                        "text/plain; version=0.0.4; charset=utf-8",
                    )],
                    metrics.render(kv_push.get().map(Arc::as_ref)),
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("--metrics-port: cannot listen on {addr}"))?;
    let local = listener.local_addr()?;
    tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await;
        if let Err(err) = served {
            tracing::warn!(%err, "the worker's metrics endpoint stopped");
        }
    });
    Ok(local)
}

/// The card of an external engine's model: tokenizer and template from `--tokenizer DIR` (an HF
/// model directory) or from the GGUF of `--model`; the context length is the engine's.
async fn external_card(cfg: &WorkerConfig) -> Result<ModelCard> {
    let ext = &cfg.external;
    if let Some(dir) = &ext.tokenizer {
        let hf = rotor_text::hf_dir::read_hf_dir(dir)
            .with_context(|| format!("--tokenizer {}", dir.display()))?;
        let name = cfg.engine.model_name.clone().unwrap_or_else(|| {
            dir.file_name()
                .map(|n| n.to_string_lossy().to_lowercase())
                .unwrap_or_else(|| "model".into())
        });
        return Ok(ModelCard {
            embedding_length: None,
            host_id: Some(rotor_runtime::host_id().to_string()),
            kv_host_pool: None,
            name,
            context_length: hf.context_length.unwrap_or(2048) as u32,
            tokenizer: hf.tokenizer,
            chat_template: cfg.engine.chat_template.clone().or(hf.chat_template),
            created: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
            sampling_defaults: Default::default(),
            kv_block_size: None,
            role: Default::default(),
        });
    }
    let spec = model_spec(&cfg.engine).await?;
    tokio::task::spawn_blocking(move || -> Result<ModelCard> {
        let file = GgufModel::open(&spec.path)?;
        let ctx = file.config.context_length;
        Ok(file.card(&spec, ctx, None)?)
    })
    .await?
}

async fn start_external(cfg: &WorkerConfig) -> Result<ExternalEngine> {
    let kind = cfg.engine_kind.external().expect("an external engine kind");
    let ext = &cfg.external;
    let card = external_card(cfg).await?;
    let mut engine_cfg = ExternalConfig::new(kind, ext.engine_url.clone().unwrap_or_default());
    engine_cfg.upstream_model = ext.engine_model.clone();
    engine_cfg.kv_events = ext.engine_kv_events.clone();
    engine_cfg.kv_replay = ext.engine_kv_replay.clone();
    engine_cfg.block_size = ext.engine_block_size;
    engine_cfg.connect_timeout = Duration::from_secs(ext.engine_wait);
    let mut engine = ExternalEngine::start(engine_cfg, card).await?;
    if let Some(cap) = cfg.engine.max_model_len {
        engine.cap_context(cap);
    }
    Ok(engine)
}

pub async fn run(args: WorkerArgs, shutdown: CancellationToken) -> Result<()> {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let cfg = args.validate(total_ram_bytes(), cores)?;
    let discovery = cfg
        .discovery
        .connect()
        .await
        .with_context(|| format!("connecting to discovery {}", args.discovery))?;
    let events = cfg
        .events
        .connect()
        .await
        .with_context(|| format!("connecting to the event plane {}", cfg.events))?;
    let (engine, metrics) = start_engine(&cfg).await?;
    let kv_push = KvPushSlot::default();
    if let Some(addr) = cfg.metrics {
        let local = serve_metrics(addr, metrics, Arc::clone(&kv_push), shutdown.clone()).await?;
        eprintln!("rotor: worker metrics on http://{local}/metrics");
    }
    if shutdown.is_cancelled() {
        tokio::task::spawn_blocking(move || engine.shutdown()).await?;
        return Ok(());
    }
    let name = engine.card().name.clone();
    let host = WorkerHost::start(cfg.host.clone(), discovery, events, engine).await?;
    let _ = kv_push.set(Arc::clone(host.kv_push_stats()));
    eprintln!(
        "rotor: worker ready: instance {} model {name} engine {} role {} on {}",
        host.instance_id(),
        cfg.engine_kind.as_str(),
        cfg.role,
        host.local_addr()
    );
    shutdown.cancelled().await;
    tracing::info!(grace = ?cfg.drain_timeout, "signal received: shutting down");
    let report = host.shutdown(cfg.drain_timeout).await?;
    tracing::info!(
        deregistered = report.deregistered,
        cancelled = report.cancelled_requests,
        "worker stopped"
    );
    eprintln!("rotor: worker stopped");
    Ok(())
}

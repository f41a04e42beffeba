//! `rotor worker`: one engine served to frontends over the runtime — registered in discovery
//! with its model card, called over the request plane, reporting KV events and load on the
//! event plane. SIGINT/SIGTERM: deregister, drain (bounded by `--drain-timeout`), stop.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::ValueEnum;
use rotor_protocol::worker::{DEFAULT_COMPONENT, DEFAULT_NAMESPACE, LOAD_TOPIC};
use rotor_runtime::{DiscoveryConfig, EventSubject, EventsConfig};
use rotor_worker::{EchoEngine, EngineWorker, WorkerEngine, WorkerHost, WorkerHostConfig};
use tokio_util::sync::CancellationToken;

use crate::args::{total_ram_bytes, EngineArgs, LocalEngineConfig, MockerArgs, MockerSettings};
use crate::serve::{model_spec, start_mocker_engine, start_native_engine};

/// Which engine a worker hosts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EngineKind {
    /// The native CPU engine running the model.
    Native,
    /// Streams each prompt's tokens back without model compute (for testing the cluster).
    Echo,
    /// The native engine's scheduler and KV cache with simulated step times (`--mocker-*`).
    Mocker,
}

impl EngineKind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Native => "native",
            Self::Echo => "echo",
            Self::Mocker => "mocker",
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
    /// Seconds in-flight requests may take to finish on shutdown before they are cancelled.
    #[arg(long, default_value_t = 30)]
    pub drain_timeout: u64,
    /// Milliseconds between tokens of `--engine echo`.
    #[arg(long, default_value_t = 0)]
    pub echo_delay_ms: u64,
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
}

impl WorkerArgs {
    pub fn validate(&self, total_ram_bytes: Option<u64>, cores: usize) -> Result<WorkerConfig> {
        let mut engine = self.engine_args.validate(total_ram_bytes, cores)?;
        if engine.kv_tiers.is_enabled() && self.engine == EngineKind::Echo {
            bail!("--kv-host-memory and --kv-disk-dir need --engine native or mocker: the echo engine keeps no KV cache");
        }
        // The default shared host pool is per namespace and model.
        engine.kv_tiers.namespace = self.namespace.clone();
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
                ..WorkerHostConfig::default()
            },
            drain_timeout: Duration::from_secs(self.drain_timeout),
            echo_delay: Duration::from_millis(self.echo_delay_ms),
        })
    }
}

async fn start_engine(cfg: &WorkerConfig) -> Result<Arc<dyn WorkerEngine>> {
    Ok(match cfg.engine_kind {
        EngineKind::Native => {
            let built = start_native_engine(&cfg.engine, None).await?;
            Arc::new(EngineWorker::new(built.engine, built.card))
        }
        EngineKind::Mocker => {
            let built = start_mocker_engine(&cfg.engine, &cfg.mocker, None).await?;
            Arc::new(EngineWorker::new(built.engine, built.card))
        }
        EngineKind::Echo => {
            let spec = model_spec(&cfg.engine).await?;
            let delay = cfg.echo_delay;
            Arc::new(tokio::task::spawn_blocking(move || EchoEngine::open(&spec, delay)).await??)
        }
    })
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
    let engine = start_engine(&cfg).await?;
    if shutdown.is_cancelled() {
        tokio::task::spawn_blocking(move || engine.shutdown()).await?;
        return Ok(());
    }
    let name = engine.card().name.clone();
    let host = WorkerHost::start(cfg.host.clone(), discovery, events, engine).await?;
    eprintln!(
        "rotor: worker ready: instance {} model {name} engine {} on {}",
        host.instance_id(),
        cfg.engine_kind.as_str(),
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

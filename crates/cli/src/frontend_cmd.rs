//! `rotor frontend`: the OpenAI-compatible HTTP server over workers found through discovery.
//!
//! Models appear as workers publish them (`rotor_frontend::ModelWatcher`); requests are spread
//! by `--router-mode` and migrated when a worker dies. Shutdown on SIGINT/SIGTERM: stop accepting,
//! drain HTTP streams for up to `--drain-timeout`, then stop watching discovery.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use rotor_frontend::{Frontend, FrontendConfig, ModelWatcher, ModelWatcherConfig};
use rotor_protocol::worker::{
    DEFAULT_COMPONENT, DEFAULT_NAMESPACE, FRONTEND_COMPONENT, FRONTEND_ENDPOINT,
};
use rotor_runtime::{
    Discovery, DiscoveryConfig, EndpointPath, EventsConfig, Instance, Registration,
    RequestPlaneConfig,
};
use tokio_util::sync::CancellationToken;

use crate::args::RoutingArgs;
use crate::http_args::HttpArgs;

/// `rotor frontend` flags.
#[derive(Debug, Clone, clap::Args)]
pub struct FrontendArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1", env = "ROTOR_HOST")]
    pub host: IpAddr,
    /// Port to listen on (0 picks a free port and prints it).
    #[arg(long, default_value_t = 8000, env = "ROTOR_PORT")]
    pub port: u16,
    /// Where workers register: `mem`, `file:DIR` or `etcd://HOST:PORT[,HOST:PORT…]`.
    #[arg(long, default_value = "file:/tmp/rotor-discovery")]
    pub discovery: String,
    /// Event plane shared with the workers (KV events, load reports): `mem` (none shared) or
    /// `nats://HOST[:PORT]`.
    #[arg(long, default_value = "mem")]
    pub events: String,
    /// Namespace the workers register in.
    #[arg(long, default_value = DEFAULT_NAMESPACE)]
    pub namespace: String,
    /// Component that serves generation.
    #[arg(long, default_value = DEFAULT_COMPONENT)]
    pub component: String,
    #[command(flatten)]
    pub routing: RoutingArgs,
    /// Seconds to let HTTP streams finish after SIGINT/SIGTERM before closing them.
    #[arg(long, default_value_t = 30)]
    pub drain_timeout: u64,
    /// Host name or address other processes reach this frontend at, registered in discovery
    /// for the planner (default: the listen address; when that is 0.0.0.0 or ::, this
    /// machine's host name).
    #[arg(long)]
    pub advertise_host: Option<String>,
    #[command(flatten)]
    pub http: HttpArgs,
}

/// Validated `frontend` settings.
#[derive(Debug, Clone)]
pub struct FrontendCmdConfig {
    pub addr: SocketAddr,
    pub discovery: DiscoveryConfig,
    pub events: EventsConfig,
    pub watcher: ModelWatcherConfig,
    pub drain_timeout: Duration,
    pub http: FrontendConfig,
}

impl FrontendArgs {
    pub fn validate(&self) -> Result<FrontendCmdConfig> {
        let discovery = DiscoveryConfig::parse(&self.discovery).context("--discovery")?;
        let events = EventsConfig::parse(&self.events).context("--events")?;
        if self.drain_timeout > 24 * 3600 {
            bail!(
                "--drain-timeout is in seconds; {} is too long",
                self.drain_timeout
            );
        }
        let routing = self.routing.config(
            events != EventsConfig::InProcess,
            rotor_frontend::RouterMode::RoundRobin,
        )?;
        Ok(FrontendCmdConfig {
            addr: SocketAddr::new(self.host, self.port),
            discovery,
            events,
            watcher: ModelWatcherConfig {
                namespace: self.namespace.clone(),
                component: self.component.clone(),
                routing,
                request_plane: RequestPlaneConfig::default(),
            },
            drain_timeout: Duration::from_secs(self.drain_timeout),
            http: self.http.validate()?,
        })
    }
}

pub async fn run(args: FrontendArgs, shutdown: CancellationToken) -> Result<()> {
    let cfg = args.validate()?;
    let discovery = cfg
        .discovery
        .connect()
        .await
        .with_context(|| format!("connecting to discovery {}", args.discovery))?;
    let events = crate::args::connect_shared_events(&cfg.events).await?;
    let frontend = Frontend::new(cfg.http.clone());
    let watcher = ModelWatcher::start(
        frontend.clone(),
        Arc::clone(&discovery),
        events,
        cfg.watcher.clone(),
    )
    .await
    .context("watching discovery")?;
    let listener = tokio::net::TcpListener::bind(cfg.addr)
        .await
        .with_context(|| format!("binding {}", cfg.addr))?;
    let addr = listener.local_addr()?;
    let registration = register_frontend(discovery.as_ref(), &args, addr).await?;
    if !cfg.http.api_keys.is_empty() {
        eprintln!(
            "rotor: {} API keys accepted; only /health, /live, /openapi.json{} are open \
             without one",
            cfg.http.api_keys.len(),
            if cfg.http.protect_metrics {
                ""
            } else {
                " and /metrics"
            }
        );
    }
    eprintln!(
        "rotor: frontend on http://{addr}  (OpenAI API at http://{addr}/v1; discovery {}, router {}, migration limit {})",
        discovery.describe(),
        cfg.watcher.routing.mode,
        cfg.watcher.routing.migration_limit,
    );
    let stop = shutdown.clone();
    let mut server = tokio::spawn(rotor_frontend::serve(listener, frontend, async move {
        stop.cancelled().await
    }));
    // Shutdown first: the server also ends once shutdown is requested, and that is not "on its
    // own" (without `biased` the select could see the ended server before the signal).
    tokio::select! {
        biased;
        _ = shutdown.cancelled() => {}
        ended = &mut server => {
            watcher.stop().await;
            ended.context("the HTTP server task failed")?.context("HTTP server")?;
            bail!("the HTTP server stopped on its own");
        }
    }
    // Leave discovery first: a planner stops reading a frontend that is going away.
    if let Err(e) = registration.deregister().await {
        tracing::warn!(error = %e, "cannot deregister the frontend");
    }
    tracing::info!(grace = ?cfg.drain_timeout, "stopped accepting; draining HTTP streams");
    match tokio::time::timeout(cfg.drain_timeout, &mut server).await {
        Ok(ended) => ended
            .context("the HTTP server task failed")?
            .context("HTTP server")?,
        Err(_) => {
            server.abort();
            eprintln!(
                "rotor: drain timeout ({:?}) reached; closing the remaining streams",
                cfg.drain_timeout
            );
        }
    }
    watcher.stop().await;
    eprintln!("rotor: stopped");
    Ok(())
}

/// Registers this frontend's HTTP address under `NAMESPACE/frontend/http` (metadata `url`).
async fn register_frontend(
    discovery: &dyn Discovery,
    args: &FrontendArgs,
    addr: SocketAddr,
) -> Result<Registration> {
    let host = advertised_host(args.advertise_host.as_deref(), addr.ip());
    let address = if host.contains(':') {
        format!("[{host}]:{}", addr.port())
    } else {
        format!("{host}:{}", addr.port())
    };
    let path = EndpointPath::new(&args.namespace, FRONTEND_COMPONENT, FRONTEND_ENDPOINT)
        .context("--namespace")?;
    let mut instance = Instance::new(path, address.clone());
    instance.metadata = serde_json::json!({ "url": format!("http://{address}") });
    discovery
        .register(instance)
        .await
        .context("registering the frontend in discovery")
}

/// `--advertise-host`, else the listen address, else (listening on every address) the host name.
fn advertised_host(flag: Option<&str>, listen: IpAddr) -> String {
    if let Some(host) = flag.map(str::trim).filter(|h| !h.is_empty()) {
        return host.to_string();
    }
    if !listen.is_unspecified() {
        return listen.to_string();
    }
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|name| name.trim().to_string())
        .ok()
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "127.0.0.1".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: FrontendArgs,
    }

    fn parse(argv: &[&str]) -> Result<FrontendCmdConfig> {
        let cli = Cli::try_parse_from(std::iter::once("frontend").chain(argv.iter().copied()))?;
        cli.args.validate()
    }

    #[test]
    fn the_advertised_host_is_the_flag_else_the_listen_address_else_the_host_name() {
        let any: IpAddr = "0.0.0.0".parse().unwrap();
        let local: IpAddr = "127.0.0.1".parse().unwrap();
        assert_eq!(advertised_host(Some("fe-1.svc"), any), "fe-1.svc");
        assert_eq!(advertised_host(Some(" "), local), "127.0.0.1");
        assert_eq!(advertised_host(None, local), "127.0.0.1");
        let name = advertised_host(None, any);
        assert!(!name.is_empty() && name != "0.0.0.0", "{name}");
    }

    #[test]
    fn defaults_and_flags() {
        let cfg = parse(&[]).unwrap();
        assert_eq!(cfg.addr.port(), 8000);
        assert_eq!(
            cfg.watcher.routing.mode,
            rotor_frontend::RouterMode::RoundRobin
        );
        assert_eq!(cfg.watcher.routing.migration_limit, 3);
        assert!(!cfg.watcher.routing.kv_events, "mem events: approximate kv");
        assert_eq!(cfg.watcher.namespace, DEFAULT_NAMESPACE);
        let cfg = parse(&[
            "--router-mode",
            "kv",
            "--events",
            "nats://127.0.0.1:4222",
            "--migration-limit",
            "0",
            "--kv-overlap-weight",
            "2.5",
            "--kv-queue-weight",
            "0.5",
            "--kv-tier-weights",
            "host=0.9,disk=0.5",
        ])
        .unwrap();
        assert_eq!(cfg.watcher.routing.mode, rotor_frontend::RouterMode::Kv);
        assert!(cfg.watcher.routing.kv_events);
        assert_eq!(cfg.watcher.routing.migration_limit, 0);
        assert_eq!(cfg.watcher.routing.kv_overlap_weight, 2.5);
        assert_eq!(cfg.watcher.routing.kv_queue_weight, 0.5);
        let w = cfg.watcher.routing.kv_tier_weights;
        assert_eq!((w.device, w.host, w.disk, w.remote), (1.0, 0.9, 0.5, 0.4));
        assert_eq!(
            parse(&[]).unwrap().watcher.routing.kv_tier_weights,
            rotor_kv_router::DEFAULT_TIER_WEIGHTS
        );
    }

    #[test]
    fn rejects_bad_values() {
        assert!(parse(&["--router-mode", "fastest"]).is_err());
        assert!(parse(&["--kv-overlap-weight=-1"]).is_err());
        assert!(parse(&["--kv-queue-weight=-0.5"]).is_err());
        let err = parse(&["--kv-tier-weights", "host=2"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("host weight 2 is not in [0, 1]"), "{err}");
        let err = parse(&["--kv-tier-weights", "gpu=0.5"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown KV tier"), "{err}");
        assert!(parse(&["--discovery", "redis://x:1"]).is_err());
        assert!(parse(&["--events", "kafka://x"]).is_err());
    }
}

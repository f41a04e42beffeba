//! `rotor router`: the standalone KV-aware router (`rotor_router::RouterService`).
//!
//! It routes the workers of `--component` (KV events and load from `--events`) and serves each
//! of their models as an instance of `--router-component`; frontends started with
//! `--component router` send their requests through it. `/metrics` and `/health` on `--port`.
//! Shutdown on SIGINT/SIGTERM: deregister, let running requests finish within
//! `--drain-timeout`, stop.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use rotor_frontend::{ModelWatcherConfig, RouterMode};
use rotor_protocol::worker::{DEFAULT_COMPONENT, DEFAULT_NAMESPACE};
use rotor_router::{RouterService, RouterServiceConfig, DEFAULT_ROUTER_COMPONENT};
use rotor_runtime::{DiscoveryConfig, EventsConfig, RequestPlaneConfig};
use tokio_util::sync::CancellationToken;

use crate::args::RoutingArgs;

/// `rotor router` flags.
#[derive(Debug, Clone, clap::Args)]
pub struct RouterArgs {
    /// Address the request-plane listeners (one per model) and the HTTP port bind.
    #[arg(long, default_value = "127.0.0.1", env = "ROTOR_HOST")]
    pub host: IpAddr,
    /// HTTP port of /metrics and /health (0 picks a free port and prints it).
    #[arg(long, default_value_t = 0)]
    pub port: u16,
    /// Where workers register: `mem`, `file:DIR` or `etcd://HOST:PORT[,HOST:PORT…]`.
    #[arg(long, default_value = "file:/tmp/rotor-discovery")]
    pub discovery: String,
    /// Event plane of the workers' KV events and load reports (and of replica sync):
    /// `mem` (none shared: kv routing is approximate) or `nats://HOST[:PORT]`.
    #[arg(long, default_value = "mem")]
    pub events: String,
    /// Namespace of the workers (the router registers in it too).
    #[arg(long, default_value = DEFAULT_NAMESPACE)]
    pub namespace: String,
    /// Component of the workers to route.
    #[arg(long, default_value = DEFAULT_COMPONENT)]
    pub component: String,
    /// Component the router serves its models as (frontends: `--component` this).
    #[arg(long, default_value = DEFAULT_ROUTER_COMPONENT)]
    pub router_component: String,
    #[command(flatten)]
    pub routing: RoutingArgs,
    /// Seconds to let running requests finish after SIGINT/SIGTERM.
    #[arg(long, default_value_t = 30)]
    pub drain_timeout: u64,
}

/// Validated `router` settings.
#[derive(Debug, Clone)]
pub struct RouterCmdConfig {
    pub http: SocketAddr,
    pub discovery: DiscoveryConfig,
    pub events: EventsConfig,
    pub service: RouterServiceConfig,
}

impl RouterArgs {
    pub fn validate(&self) -> Result<RouterCmdConfig> {
        let discovery = DiscoveryConfig::parse(&self.discovery).context("--discovery")?;
        let events = EventsConfig::parse(&self.events).context("--events")?;
        if self.drain_timeout > 24 * 3600 {
            bail!(
                "--drain-timeout is in seconds; {} is too long",
                self.drain_timeout
            );
        }
        if self.router_component == self.component {
            bail!(
                "--router-component and --component are both `{}`: the router would route to itself",
                self.component
            );
        }
        let routing = self
            .routing
            .config(events != EventsConfig::InProcess, RouterMode::Kv)?;
        Ok(RouterCmdConfig {
            http: SocketAddr::new(self.host, self.port),
            discovery,
            events,
            service: RouterServiceConfig {
                watcher: ModelWatcherConfig {
                    namespace: self.namespace.clone(),
                    component: self.component.clone(),
                    routing,
                    request_plane: RequestPlaneConfig::default(),
                },
                router_component: self.router_component.clone(),
                host: self.host,
                drain_timeout: Duration::from_secs(self.drain_timeout),
            },
        })
    }
}

pub async fn run(args: RouterArgs, shutdown: CancellationToken) -> Result<()> {
    let cfg = args.validate()?;
    let discovery = cfg
        .discovery
        .connect()
        .await
        .with_context(|| format!("connecting to discovery {}", args.discovery))?;
    let events = crate::args::connect_shared_events(&cfg.events).await?;
    let listener = tokio::net::TcpListener::bind(cfg.http)
        .await
        .with_context(|| format!("binding {}", cfg.http))?;
    let http_addr = listener.local_addr()?;
    let service = RouterService::start(cfg.service.clone(), Arc::clone(&discovery), events)
        .await
        .context("starting the router")?;
    let routing = &cfg.service.watcher.routing;
    eprintln!(
        "rotor: router for {}/{} as {}/{} on http://{http_addr}  (metrics at /metrics; discovery {}, router {}, replica sync {})",
        cfg.service.watcher.namespace,
        cfg.service.watcher.component,
        cfg.service.watcher.namespace,
        cfg.service.router_component,
        discovery.describe(),
        routing.mode,
        if routing.replica_sync { "on" } else { "off" },
    );
    let stop = shutdown.clone();
    let mut http = tokio::spawn(rotor_router::serve_http(
        listener,
        service.metrics(),
        async move { stop.cancelled().await },
    ));
    // Shutdown first: the server also ends once shutdown is requested, and that is not "on its
    // own" (without `biased` the select could see the ended server before the signal).
    tokio::select! {
        biased;
        _ = shutdown.cancelled() => {}
        ended = &mut http => {
            service.shutdown().await;
            ended.context("the HTTP task failed")?.context("HTTP server")?;
            bail!("the HTTP server stopped on its own");
        }
    }
    eprintln!("rotor: router stopping: deregistering and draining");
    service.shutdown().await;
    let _ = http.await;
    eprintln!("rotor: stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: RouterArgs,
    }

    fn parse(argv: &[&str]) -> Result<RouterCmdConfig> {
        let cli = Cli::try_parse_from(std::iter::once("router").chain(argv.iter().copied()))?;
        cli.args.validate()
    }

    #[test]
    fn defaults_route_by_kv_cache() {
        let cfg = parse(&[]).unwrap();
        assert_eq!(cfg.service.watcher.routing.mode, RouterMode::Kv);
        assert_eq!(cfg.service.router_component, "router");
        assert_eq!(cfg.service.watcher.component, "backend");
        assert!(
            !cfg.service.watcher.routing.kv_events,
            "mem events: approximate"
        );
        let cfg = parse(&[
            "--events",
            "nats://127.0.0.1:4222",
            "--router-replica-sync",
            "--router-mode",
            "least-loaded",
        ])
        .unwrap();
        assert!(cfg.service.watcher.routing.replica_sync);
        assert!(cfg.service.watcher.routing.kv_events);
        assert_eq!(cfg.service.watcher.routing.mode, RouterMode::LeastLoaded);
    }

    #[test]
    fn rejects_routing_to_itself_and_sync_without_events() {
        let err = parse(&["--router-component", "backend"]).unwrap_err();
        assert!(err.to_string().contains("route to itself"), "{err}");
        let err = parse(&["--router-replica-sync"]).unwrap_err();
        assert!(err.to_string().contains("--events nats://"), "{err}");
    }
}

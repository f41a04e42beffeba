//! `rotor planner`: every `--interval`, scrape the frontends' `/metrics`, plan
//! (`rotor_planner::plan`) and act through a connector: `local` runs the worker command given
//! after `--` as processes on this machine (scale-down: SIGTERM to one worker, which deregisters
//! and drains), `virtual` publishes the decision in a JSON file for an external orchestrator,
//! `kubernetes` (cargo feature `kubernetes`) scales one Deployment per role through its scale
//! subresource (deploy/kubernetes has the manifests and the planner's RBAC).
//! Its own `/metrics` (predicted load, target and ready replicas, decisions) is on `--port`;
//! every decision is logged with its inputs (`--decision-log`, and at `info`).

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use rotor_planner::{
    Connector, FrontendCounters, LocalConnector, PerfProfile, Planner, PlannerConfig,
    PredictorKind, Sla, Topology, VirtualConnector,
};
use tokio_util::sync::CancellationToken;

/// `rotor planner` flags.
#[derive(Debug, clap::Args)]
pub struct PlannerArgs {
    /// The workers' profile (`rotor profile`).
    #[arg(long)]
    pub profile: PathBuf,
    #[arg(long, default_value_t = 2000.0)]
    pub ttft_ms: f64,
    #[arg(long, default_value_t = 50.0)]
    pub itl_ms: f64,
    #[arg(long, default_value_t = 1)]
    pub min_workers: usize,
    #[arg(long, default_value_t = 4)]
    pub max_workers: usize,
    /// Seconds between plans.
    #[arg(long, default_value_t = 10.0)]
    pub interval: f64,
    /// `constant`, `moving-average`, `holt` or `kalman`.
    #[arg(long, default_value = "holt")]
    pub predictor: String,
    /// `local` (the command after `--`), `virtual` (`--virtual-file`) or `kubernetes` (one
    /// Deployment per role; needs a rotor built with `--features kubernetes`).
    #[arg(long, default_value = "local")]
    pub connector: String,
    /// `aggregated` (one pool of workers) or `disaggregated` (prefill and decode pools; with
    /// the `virtual` or `kubernetes` connector).
    #[arg(long, default_value = "aggregated")]
    pub topology: String,
    /// Kubernetes API server URL (http or https); unset: in-cluster (the pod's service account).
    #[arg(long)]
    pub k8s_api: Option<String>,
    /// File with a bearer token for `--k8s-api`.
    #[arg(long)]
    pub k8s_token_file: Option<PathBuf>,
    /// Namespace of the Deployments; unset: the service account's (in-cluster) or `default`.
    #[arg(long)]
    pub k8s_namespace: Option<String>,
    /// `ROLE=DEPLOYMENT` (repeatable); defaults: rotor-aggregated, rotor-prefill, rotor-decode.
    #[arg(long)]
    pub k8s_deployment: Vec<String>,
    /// The decision file of the virtual connector.
    #[arg(long, default_value = "/tmp/rotor-planner-decision.json")]
    pub virtual_file: PathBuf,
    /// Frontend base URLs whose /metrics give the traffic (repeatable).
    #[arg(long, default_value = "http://127.0.0.1:8000")]
    pub frontend: Vec<String>,
    /// Where /metrics of the planner listens (port 0 picks one and prints it).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,
    /// Every decision with its inputs, one JSON object per line.
    #[arg(long)]
    pub decision_log: Option<PathBuf>,
    /// The worker command of `--connector local`.
    #[arg(last = true)]
    pub worker_command: Vec<String>,
}

/// `rotor planner`'s own errors (the planner's are `rotor_planner::Error`).
#[derive(Debug, thiserror::Error)]
pub enum PlannerCmdError {
    #[cfg(not(feature = "kubernetes"))]
    #[error("--connector kubernetes is not built into this rotor: rebuild it with `cargo build --release -p rotor-cli --features kubernetes` (see deploy/kubernetes/README.md)")]
    KubernetesNotBuilt,
    #[error("unknown --connector {0:?} (local, virtual or kubernetes)")]
    UnknownConnector(String),
    #[error("unknown --topology {0:?} (aggregated or disaggregated)")]
    UnknownTopology(String),
    #[error("--topology disaggregated needs the virtual or kubernetes connector (the local one runs one pool)")]
    DisaggregatedLocal,
    #[cfg(feature = "kubernetes")]
    #[error("--k8s-token-file is for --k8s-api (in-cluster, the service account's token is used)")]
    TokenFileWithoutApi,
}

pub async fn run(args: PlannerArgs, shutdown: CancellationToken) -> Result<()> {
    if !(args.interval.is_finite() && args.interval > 0.0) {
        bail!("--interval must be a positive number of seconds");
    }
    let topology = match args.topology.as_str() {
        "aggregated" => Topology::Aggregated,
        "disaggregated" => Topology::Disaggregated,
        other => return Err(PlannerCmdError::UnknownTopology(other.into()).into()),
    };
    if topology == Topology::Disaggregated && args.connector == "local" {
        return Err(PlannerCmdError::DisaggregatedLocal.into());
    }
    // The connector first: a rotor without Kubernetes says so before anything else.
    let connector: Box<dyn Connector + Send> = match args.connector.as_str() {
        "local" => Box::new(LocalConnector::new(&args.worker_command)?),
        "virtual" => Box::new(VirtualConnector::new(args.virtual_file.clone())),
        "kubernetes" => kubernetes_connector(&args)?,
        other => return Err(PlannerCmdError::UnknownConnector(other.into()).into()),
    };
    let profile = PerfProfile::load(&args.profile)?;
    let mut cfg = PlannerConfig::new(
        Sla {
            ttft_ms: args.ttft_ms,
            itl_ms: args.itl_ms,
        },
        args.min_workers,
        args.max_workers,
    );
    cfg.predictor = PredictorKind::parse(&args.predictor)?;
    cfg.topology = topology;
    let mut planner = Planner::new(cfg, profile, connector)?;
    // The planner's metrics and the connector's own series, as of the last plan.
    let metrics = Arc::new(Mutex::new((
        planner.metrics().clone(),
        planner.connector().render_metrics(),
    )));
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    eprintln!(
        "rotor planner: /metrics on http://{}",
        listener.local_addr()?
    );
    let app = {
        let metrics = metrics.clone();
        axum::Router::new().route(
            "/metrics",
            axum::routing::get(move || {
                let text = metrics
                    .lock()
                    .map(|m| m.0.render() + &m.1)
                    .unwrap_or_default();
                async move { text }
            }),
        )
    };
    let server_shutdown = shutdown.clone();
    let server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move { server_shutdown.cancelled().await })
            .await
    });
    let mut log = match &args.decision_log {
        Some(p) => Some(std::io::BufWriter::new(
            std::fs::File::create(p).with_context(|| format!("cannot write {}", p.display()))?,
        )),
        None => None,
    };
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()?;
    // Start at the minimum: the first plan sees no traffic yet. Not on Kubernetes, where the
    // Deployments already hold a count (the source of truth) and the plan keeps it in bounds.
    if args.connector != "kubernetes" {
        let min = args.min_workers;
        for &role in topology.roles() {
            planner.connector_mut().set_target(role, min)?;
        }
    }
    let mut prev = scrape(&http, &args.frontend).await;
    let period = Duration::from_secs_f64(args.interval);
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    let mut last = tokio::time::Instant::now();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = ticker.tick() => {}
        }
        let now = tokio::time::Instant::now();
        let cur = scrape(&http, &args.frontend).await;
        let obs = cur.observation_since(&prev, (now - last).as_secs_f64());
        prev = cur;
        last = now;
        // Connectors block (processes, HTTP to the Kubernetes API): off the async workers.
        let decision = tokio::task::block_in_place(|| planner.step(obs));
        let connector_text = planner.connector().render_metrics();
        if let Ok(mut m) = metrics.lock() {
            *m = (planner.metrics().clone(), connector_text);
        }
        if let Some(f) = log.as_mut() {
            writeln!(f, "{}", serde_json::to_string(&decision)?)?;
            f.flush()?;
        }
    }
    drop(planner); // the local connector stops its workers (they drain)
    let _ = server.await;
    Ok(())
}

#[cfg(feature = "kubernetes")]
fn kubernetes_connector(args: &PlannerArgs) -> Result<Box<dyn Connector + Send>> {
    use rotor_planner::{KubernetesApi, KubernetesConfig, KubernetesConnector};
    let mut cfg = KubernetesConfig::in_cluster();
    if args.k8s_api.is_none() && args.k8s_token_file.is_some() {
        return Err(PlannerCmdError::TokenFileWithoutApi.into());
    }
    if let Some(url) = &args.k8s_api {
        cfg.api = KubernetesApi::Url {
            url: url.clone(),
            token_file: args.k8s_token_file.clone(),
        };
    }
    cfg.namespace = args.k8s_namespace.clone();
    for spec in &args.k8s_deployment {
        cfg.set_deployment(spec)?;
    }
    let connector = tokio::task::block_in_place(|| KubernetesConnector::new(cfg))?;
    Ok(Box::new(connector))
}

#[cfg(not(feature = "kubernetes"))]
fn kubernetes_connector(_args: &PlannerArgs) -> Result<Box<dyn Connector + Send>> {
    Err(PlannerCmdError::KubernetesNotBuilt.into())
}

/// Sums the counters of every frontend that answers; one that does not is skipped (warned).
async fn scrape(http: &reqwest::Client, frontends: &[String]) -> FrontendCounters {
    let mut total = FrontendCounters::default();
    for base in frontends {
        let url = format!("{}/metrics", base.trim_end_matches('/'));
        match http.get(&url).send().await {
            Ok(resp) => match resp.text().await {
                Ok(text) => total.add(&FrontendCounters::parse(&text)),
                Err(e) => tracing::warn!(%url, error = %e, "cannot read frontend metrics"),
            },
            Err(e) => tracing::warn!(%url, error = %e, "cannot scrape frontend"),
        }
    }
    total
}

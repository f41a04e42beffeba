//! `rotor planner`: every `--interval`, scrape the frontends' `/metrics` (those registered in
//! `--discovery` and any `--frontend` URL), plan
//! (`rotor_planner::plan`) and act through a connector: `local` runs the worker command given
//! after `--` as processes on this machine (scale-down: SIGTERM to one worker, which deregisters
//! and drains), `virtual` publishes the decision in a JSON file for an external orchestrator,
//! `kubernetes` (cargo feature `kubernetes`) scales one Deployment per role through its scale
//! subresource (deploy/kubernetes has the manifests and the planner's RBAC).
//! Its own `/metrics` (predicted load, target and ready replicas, decisions) is on `--port`;
//! every decision is logged with its inputs (`--decision-log`, and at `info`).

use std::collections::BTreeMap;
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
use rotor_protocol::worker::{DEFAULT_NAMESPACE, FRONTEND_COMPONENT, FRONTEND_ENDPOINT};
use rotor_runtime::{Discovery, DiscoveryConfig, EndpointPath, PathPrefix};
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
    /// Frontend base URLs whose /metrics give the traffic (repeatable), besides the frontends
    /// registered in `--discovery`. With neither: http://127.0.0.1:8000.
    #[arg(long)]
    pub frontend: Vec<String>,
    /// Where the frontends register (`mem`, `file:DIR`, `etcd://HOST:PORT`): every interval the
    /// planner reads the traffic of each frontend registered there.
    #[arg(long)]
    pub discovery: Option<String>,
    /// Namespace the frontends register in.
    #[arg(long, default_value = DEFAULT_NAMESPACE)]
    pub namespace: String,
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
    let mut frontends = FrontendSource::new(&args).await?;
    let metrics = Arc::new(Mutex::new((
        planner.metrics().clone(),
        planner.connector().render_metrics() + &frontends.render_metrics(),
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
    let mut prev = frontends.scrape(&http).await;
    let period = Duration::from_secs_f64(args.interval);
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    let mut last = tokio::time::Instant::now();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = ticker.tick() => {}
        }
        let now = tokio::time::Instant::now();
        let cur = frontends.scrape(&http).await;
        let obs = observation(&cur, &prev, (now - last).as_secs_f64());
        prev = cur;
        last = now;
        // Connectors block (processes, HTTP to the Kubernetes API): off the async workers.
        let decision = tokio::task::block_in_place(|| planner.step(obs));
        let connector_text = planner.connector().render_metrics() + &frontends.render_metrics();
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

/// The frontends whose traffic the planner reads: fixed URLs (`--frontend`) and those
/// registered in discovery, listed again before every scrape (a frontend that starts or stops
/// is seen at the next interval).
struct FrontendSource {
    fixed: Vec<String>,
    discovery: Option<(Arc<dyn Discovery>, PathPrefix)>,
    /// Frontends that answered the last scrape.
    scraped: usize,
    failures: u64,
    discovery_failures: u64,
}

impl FrontendSource {
    async fn new(args: &PlannerArgs) -> Result<Self> {
        let discovery = match &args.discovery {
            Some(spec) => {
                let cfg = DiscoveryConfig::parse(spec).context("--discovery")?;
                let discovery = cfg
                    .connect()
                    .await
                    .with_context(|| format!("connecting to discovery {spec}"))?;
                let path =
                    EndpointPath::new(&args.namespace, FRONTEND_COMPONENT, FRONTEND_ENDPOINT)
                        .context("--namespace")?;
                Some((discovery, PathPrefix::from(path)))
            }
            None => None,
        };
        let mut fixed = args.frontend.clone();
        if fixed.is_empty() && discovery.is_none() {
            fixed.push("http://127.0.0.1:8000".to_string());
        }
        Ok(Self {
            fixed,
            discovery,
            scraped: 0,
            failures: 0,
            discovery_failures: 0,
        })
    }

    /// The base URLs to read now, each once.
    async fn urls(&mut self) -> Vec<String> {
        let mut urls: Vec<String> = self
            .fixed
            .iter()
            .map(|u| u.trim_end_matches('/').to_string())
            .collect();
        if let Some((discovery, prefix)) = &self.discovery {
            match discovery.list(prefix).await {
                Ok(instances) => urls.extend(instances.iter().map(|i| {
                    i.metadata
                        .get("url")
                        .and_then(|u| u.as_str())
                        .map(|u| u.trim_end_matches('/').to_string())
                        .unwrap_or_else(|| format!("http://{}", i.address))
                })),
                Err(e) => {
                    self.discovery_failures += 1;
                    tracing::warn!(error = %e, "cannot list the frontends in discovery");
                }
            }
        }
        urls.sort();
        urls.dedup();
        urls
    }

    /// The counters of every frontend that answers, by URL; one that does not is skipped
    /// (warned and counted).
    async fn scrape(&mut self, http: &reqwest::Client) -> BTreeMap<String, FrontendCounters> {
        let mut out = BTreeMap::new();
        for base in self.urls().await {
            let url = format!("{base}/metrics");
            let text = match http.get(&url).send().await {
                Ok(resp) if resp.status().is_success() => {
                    resp.text().await.map_err(|e| e.to_string())
                }
                Ok(resp) => Err(format!("HTTP {}", resp.status())),
                Err(e) => Err(e.to_string()),
            };
            match text {
                Ok(text) => {
                    out.insert(base, FrontendCounters::parse(&text));
                }
                Err(error) => {
                    self.failures += 1;
                    tracing::warn!(%url, %error, "cannot scrape frontend");
                }
            }
        }
        self.scraped = out.len();
        out
    }

    fn render_metrics(&self) -> String {
        format!(
            "# HELP rotor_planner_frontends_scraped Frontends whose /metrics answered the last scrape.\n\
             # TYPE rotor_planner_frontends_scraped gauge\n\
             rotor_planner_frontends_scraped {}\n\
             # HELP rotor_planner_frontend_scrape_failures_total Frontend /metrics reads that failed.\n\
             # TYPE rotor_planner_frontend_scrape_failures_total counter\n\
             rotor_planner_frontend_scrape_failures_total {}\n\
             # HELP rotor_planner_discovery_failures_total Listings of the frontends in discovery that failed.\n\
             # TYPE rotor_planner_discovery_failures_total counter\n\
             rotor_planner_discovery_failures_total {}\n",
            self.scraped, self.failures, self.discovery_failures
        )
    }
}

/// The traffic between two scrapes, over the frontends present in both: one that appeared
/// (its counters hold its whole past) counts from the next interval, one that vanished or
/// missed a scrape neither adds nor removes its history.
fn observation(
    cur: &BTreeMap<String, FrontendCounters>,
    prev: &BTreeMap<String, FrontendCounters>,
    interval_s: f64,
) -> rotor_planner::Observation {
    let mut now = FrontendCounters::default();
    let mut before = FrontendCounters::default();
    for (url, counters) in cur {
        if let Some(old) = prev.get(url) {
            now.add(counters);
            before.add(old);
        }
    }
    now.observation_since(&before, interval_s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counters(requests: f64) -> FrontendCounters {
        FrontendCounters {
            requests,
            ..FrontendCounters::default()
        }
    }

    #[test]
    fn only_frontends_seen_twice_count_toward_the_traffic() {
        let prev = BTreeMap::from([
            ("http://a".to_string(), counters(100.0)),
            ("http://gone".to_string(), counters(50.0)),
        ]);
        let cur = BTreeMap::from([
            ("http://a".to_string(), counters(110.0)),
            // A frontend that just appeared with a long history: not 5,000 new requests.
            ("http://new".to_string(), counters(5000.0)),
        ]);
        let obs = observation(&cur, &prev, 2.0);
        assert_eq!(obs.requests, 10);
    }
}

//! `rotor serve`: the frontend and its workers (one native engine by default; several native or
//! mocker engines with `--num-workers`, spread by the embedded router) in one process, nothing
//! else needed: no discovery service, no event bus, no port besides HTTP.
//! Also resolves which model an engine in this process serves (shared with `rotor worker`).

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use rotor_frontend::{Frontend, RoutedBackend, RoutingMetrics, ServedModel};
use rotor_protocol::SamplingDefaults;
use rotor_protocol::{LoadReport, RouterEvent, WorkerId};
use rotor_worker::{
    EngineWorker, MockerEngineConfig, ModelSpec, NativeConfig, NativeEngine, WorkerEngine,
};
use tokio_util::sync::CancellationToken;

use crate::args::{LocalEngineConfig, MockerSettings, ServeConfig, ServeEngine};
use crate::engine_backend::EngineBackend;
use crate::engine_metrics::EngineMetrics;
use crate::kv_tier_args::KvTierSettings;
use crate::model_cache::{self, model_name_from_path};

/// Where the default model is cached, from the environment (read here, in the binary only).
pub fn default_models_dir() -> Result<PathBuf> {
    let env = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    model_cache::models_dir(env("ROTOR_CACHE_DIR"), env("XDG_CACHE_HOME"), env("HOME"))
}

/// The model an engine in this process serves: `--model`, else the cached default model
/// (downloaded first if needed, and with its recommended sampling unless flags override it).
pub async fn model_spec(cfg: &LocalEngineConfig) -> Result<ModelSpec> {
    let (path, recommended) = match &cfg.model {
        // A known model's name (`--model gemma3-270m`) is fetched into the cache like the default.
        Some(p)
            if !p.exists()
                && p.to_str()
                    .is_some_and(|n| model_cache::known_model(n).is_ok()) =>
        {
            let known = model_cache::known_model(p.to_str().unwrap_or_default())?;
            let dir = default_models_dir()?;
            let path = tokio::task::spawn_blocking(move || model_cache::ensure_model(known, &dir))
                .await??;
            (path, known.recommended_sampling)
        }
        Some(p) => (p.clone(), None),
        None => {
            let dir = default_models_dir()?;
            let path = tokio::task::spawn_blocking(move || model_cache::ensure_default_model(&dir))
                .await??;
            (path, model_cache::DEFAULT_MODEL.recommended_sampling)
        }
    };
    let sampling_defaults = SamplingDefaults {
        temperature: cfg.default_temperature.or(recommended.map(|r| r.0)),
        top_p: cfg.default_top_p.or(recommended.map(|r| r.1)),
        ..SamplingDefaults::default()
    };
    let name = cfg
        .model_name
        .clone()
        .unwrap_or_else(|| model_name_from_path(&path));
    Ok(ModelSpec {
        path,
        name,
        sampling_defaults,
        max_model_len: cfg.max_model_len,
        chat_template: cfg.chat_template.clone(),
    })
}

/// Loads the model and starts the native engine (off the async runtime), printing the KV-cache
/// line (and the tiers' line). `worker`: the engine's index when this process runs several.
pub async fn start_native_engine(
    cfg: &LocalEngineConfig,
    worker: Option<usize>,
) -> Result<NativeEngine> {
    let model = model_spec(cfg).await?;
    tracing::info!(model = %model.path.display(), name = %model.name, threads = cfg.threads,
        "loading model");
    let native = native_config(cfg, model, worker)?;
    let tiers = native.kv_tiers.clone();
    let built = tokio::task::spawn_blocking(move || rotor_worker::native::build(&native)).await??;
    eprintln!("rotor: {}", built.kv);
    print_tiers(&tiers);
    Ok(built)
}

/// Starts a mocker engine standing in for the configured model (no weights are loaded).
/// `worker`: the engine's index when this process runs several.
pub async fn start_mocker_engine(
    cfg: &LocalEngineConfig,
    mocker: &MockerSettings,
    worker: Option<usize>,
) -> Result<NativeEngine> {
    let model = model_spec(cfg).await?;
    let mocker_cfg = MockerEngineConfig {
        native: native_config(cfg, model, worker)?,
        timing: mocker.timing,
        speedup: mocker.speedup,
        num_blocks: mocker.num_blocks,
    };
    let tiers = mocker_cfg.native.kv_tiers.clone();
    let built =
        tokio::task::spawn_blocking(move || rotor_worker::mocker::build(&mocker_cfg)).await??;
    let timing = match mocker.timing {
        rotor_engine::MockerTiming::DynamoVllm => "dynamo-vllm timing",
        rotor_engine::MockerTiming::Fitted(_) => "fitted timing",
    };
    eprintln!(
        "rotor: mocker engine ({timing}, speedup {}): {}",
        mocker.speedup, built.kv
    );
    if worker.unwrap_or(0) == 0 {
        print_tiers(&tiers);
    }
    Ok(built)
}

/// The start-up line of the offload tiers, if any.
fn print_tiers(tiers: &rotor_engine::KvTiersConfig) {
    if tiers.is_enabled() {
        eprintln!("rotor: {}", KvTierSettings::describe(tiers));
    }
}

/// The native engine's settings; `worker` is the engine's index when this process runs
/// several (each gets its own disk-tier directory).
fn native_config(
    cfg: &LocalEngineConfig,
    model: ModelSpec,
    worker: Option<usize>,
) -> Result<NativeConfig> {
    let kv_tiers = cfg.kv_tiers.config(&model.name, worker)?;
    Ok(NativeConfig {
        model,
        threads: cfg.threads,
        max_num_seqs: cfg.max_num_seqs,
        max_num_batched_tokens: cfg.max_num_batched_tokens,
        block_size_tokens: cfg.block_size_tokens,
        kv_cache_bytes: cfg.kv_cache_bytes,
        kv_dtype: cfg.kv_dtype.dtype(),
        kv_tiers,
    })
}

/// Starts the engine of worker `index` of `cfg.num_workers`.
async fn start_engine(cfg: &ServeConfig, index: usize) -> Result<NativeEngine> {
    let worker = (cfg.num_workers > 1).then_some(index);
    match cfg.engine_kind {
        ServeEngine::Native => {
            let mut engine = cfg.engine.clone();
            // Workers in one process share its cores.
            engine.threads = (cfg.engine.threads / cfg.num_workers).max(1);
            if index == 0 || cfg.num_workers == 1 {
                start_native_engine(&engine, worker).await
            } else {
                // The start-up line was printed for the first worker.
                let model = model_spec(&engine).await?;
                let native = native_config(&engine, model, worker)?;
                Ok(
                    tokio::task::spawn_blocking(move || rotor_worker::native::build(&native))
                        .await??,
                )
            }
        }
        ServeEngine::Mocker => start_mocker_engine(&cfg.engine, &cfg.mocker, worker).await,
    }
}

pub async fn run(cfg: ServeConfig, shutdown: CancellationToken) -> Result<()> {
    let mut engines = Vec::with_capacity(cfg.num_workers);
    for index in 0..cfg.num_workers {
        let mut built = start_engine(&cfg, index).await?;
        if let Some(roles) = &cfg.roles {
            built.card.role = roles[index];
        }
        engines.push(built);
    }
    let card = engines[0].card.clone();
    let name = card.name.clone();
    let frontend = Frontend::new(cfg.http.clone());
    let mut feeders = Vec::new();
    if engines.len() == 1 && cfg.roles.is_none() {
        let engine = engines[0].engine.clone();
        let worker = Arc::new(EngineWorker::new(engine.clone(), card.clone()));
        frontend.add_model(ServedModel {
            card,
            backend: Arc::new(EngineBackend::new(worker)),
        })?;
        frontend.metrics().add_source(Arc::new(EngineMetrics {
            engines: vec![(format!("model=\"{name}\""), engine)],
            kv_links: Vec::new(),
            prefill_exports: Vec::new(),
        }));
    } else {
        let routed = RoutedBackend::for_card(&card, &cfg.routing)?;
        let mut engine_metrics = EngineMetrics {
            engines: Vec::new(),
            kv_links: Vec::new(),
            prefill_exports: Vec::new(),
        };
        for (index, built) in engines.iter().enumerate() {
            let worker_id = index as WorkerId;
            let labels = format!("model=\"{name}\",worker=\"{worker_id:016x}\"");
            let mut worker = EngineWorker::new(built.engine.clone(), built.card.clone());
            // Mockers with a simulated KV link: every worker gets its own (its own NIC).
            if let (ServeEngine::Mocker, Some(link)) = (&cfg.engine_kind, cfg.mocker.kv_link()) {
                engine_metrics
                    .kv_links
                    .push((labels.clone(), Arc::clone(&link)));
                worker = worker.with_kv_link(link);
            }
            engine_metrics
                .prefill_exports
                .push((labels.clone(), Arc::clone(worker.prefill_stats())));
            let worker = Arc::new(worker);
            routed.add_worker_with_role(
                worker_id,
                Arc::new(EngineBackend::new(worker.clone())),
                built.card.role,
            );
            routed.set_host_pool(worker_id, built.card.host_pool_key());
            engine_metrics.engines.push((labels, built.engine.clone()));
            feeders.push(tokio::spawn(feed_router(
                worker,
                worker_id,
                routed.clone(),
                shutdown.clone(),
            )));
        }
        frontend.metrics().add_source(Arc::new(engine_metrics));
        let metrics = Arc::new(RoutingMetrics::default());
        metrics.add(&routed);
        frontend.metrics().add_source(metrics);
        frontend.add_model(ServedModel {
            card,
            backend: Arc::new(routed),
        })?;
        match &cfg.roles {
            Some(roles) => eprintln!(
                "rotor: {} prefill + {} decode workers (disaggregated), router mode {}",
                roles
                    .iter()
                    .filter(|r| **r == rotor_protocol::WorkerRole::Prefill)
                    .count(),
                roles
                    .iter()
                    .filter(|r| **r == rotor_protocol::WorkerRole::Decode)
                    .count(),
                cfg.routing.mode.as_str()
            ),
            None => eprintln!(
                "rotor: {} workers, router mode {}",
                engines.len(),
                cfg.routing.mode.as_str()
            ),
        }
    }

    let listener = tokio::net::TcpListener::bind(cfg.addr)
        .await
        .with_context(|| format!("binding {}", cfg.addr))?;
    let addr = listener.local_addr()?;
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
    eprintln!("rotor: serving {name} on http://{addr}  (OpenAI API at http://{addr}/v1)");
    let stop = shutdown.clone();
    rotor_frontend::serve(listener, frontend, async move { stop.cancelled().await }).await?;
    for feeder in feeders {
        feeder.abort();
    }
    for built in &engines {
        built.engine.shutdown();
    }
    eprintln!("rotor: stopped");
    Ok(())
}

/// How often an in-process worker's KV events and load are handed to the router.
const FEED_INTERVAL: std::time::Duration = std::time::Duration::from_millis(5);

/// Hands one in-process engine's KV events and load to the router, as a remote worker's would
/// arrive over the event plane.
async fn feed_router(
    worker: Arc<EngineWorker>,
    worker_id: WorkerId,
    routed: RoutedBackend,
    shutdown: CancellationToken,
) {
    let Some(mut reader) = worker.subscribe_kv_events() else {
        return;
    };
    let mut ticker = tokio::time::interval(FEED_INTERVAL);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_load = None;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let batch = reader.read();
        if batch.missed > 0 {
            tracing::warn!(worker_id, missed = batch.missed, "router missed KV events");
        }
        for event in batch.events {
            routed.apply_kv_event(&RouterEvent { worker_id, event });
        }
        let load = worker.load();
        if last_load != Some(load) {
            routed.update_load(&LoadReport { worker_id, load });
            last_load = Some(load);
        }
    }
}

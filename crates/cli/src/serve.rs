//! `rotor serve`: the frontend and one native-engine worker in one process, nothing else needed.
//! Also resolves which model an engine in this process serves (shared with `rotor worker`).

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use rotor_frontend::{Frontend, FrontendConfig, ServedModel};
use rotor_protocol::SamplingDefaults;
use rotor_worker::{MockerEngineConfig, ModelSpec, NativeConfig, NativeEngine};
use tokio_util::sync::CancellationToken;

use crate::args::{LocalEngineConfig, MockerSettings, ServeConfig};
use crate::engine_backend::EngineBackend;
use crate::engine_metrics::EngineMetrics;
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
        Some(p) => (p.clone(), None),
        None => {
            let dir = default_models_dir()?;
            let path = tokio::task::spawn_blocking(move || model_cache::ensure_default_model(&dir))
                .await??;
            (path, Some(model_cache::DEFAULT_MODEL.recommended_sampling))
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
    })
}

/// Loads the model and starts the native engine (off the async runtime), printing the KV-cache
/// line.
pub async fn start_native_engine(cfg: &LocalEngineConfig) -> Result<NativeEngine> {
    let model = model_spec(cfg).await?;
    tracing::info!(model = %model.path.display(), name = %model.name, threads = cfg.threads,
        "loading model");
    let native = native_config(cfg, model);
    let built = tokio::task::spawn_blocking(move || rotor_worker::native::build(&native)).await??;
    eprintln!("rotor: {}", built.kv);
    Ok(built)
}

/// Starts a mocker engine standing in for the configured model (no weights are loaded).
pub async fn start_mocker_engine(
    cfg: &LocalEngineConfig,
    mocker: &MockerSettings,
) -> Result<NativeEngine> {
    let model = model_spec(cfg).await?;
    let mocker_cfg = MockerEngineConfig {
        native: native_config(cfg, model),
        timing: mocker.timing.clone(),
        speedup: mocker.speedup,
        num_blocks: mocker.num_blocks,
    };
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
    Ok(built)
}

fn native_config(cfg: &LocalEngineConfig, model: ModelSpec) -> NativeConfig {
    NativeConfig {
        model,
        threads: cfg.threads,
        max_num_seqs: cfg.max_num_seqs,
        max_num_batched_tokens: cfg.max_num_batched_tokens,
        block_size_tokens: cfg.block_size_tokens,
        kv_cache_bytes: cfg.kv_cache_bytes,
        kv_dtype: cfg.kv_dtype.dtype(),
    }
}

pub async fn run(cfg: ServeConfig, shutdown: CancellationToken) -> Result<()> {
    let NativeEngine { engine, card, .. } = start_native_engine(&cfg.engine).await?;
    let name = card.name.clone();

    let frontend = Frontend::new(FrontendConfig::default());
    frontend.add_model(ServedModel {
        card,
        backend: Arc::new(EngineBackend::new(engine.clone())),
    })?;
    frontend.metrics().add_source(Arc::new(EngineMetrics {
        engine: engine.clone(),
        model: name.clone(),
    }));

    let listener = tokio::net::TcpListener::bind(cfg.addr)
        .await
        .with_context(|| format!("binding {}", cfg.addr))?;
    let addr = listener.local_addr()?;
    eprintln!("rotor: serving {name} on http://{addr}  (OpenAI API at http://{addr}/v1)");
    let stop = shutdown.clone();
    rotor_frontend::serve(listener, frontend, async move { stop.cancelled().await }).await?;
    engine.shutdown();
    eprintln!("rotor: stopped");
    Ok(())
}

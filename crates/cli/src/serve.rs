//! `rotor serve`: the frontend and one native-engine worker in one process, nothing else needed.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use rotor_engine::{Engine, EngineConfig, NativeRunner};
use rotor_frontend::{Frontend, FrontendConfig, ServedModel};
use rotor_model::{GgufFile, KvDtype, KvStorage, LlamaModel, LoadOptions};
use rotor_protocol::{ModelCard, SamplingDefaults};
use tokio_util::sync::CancellationToken;

use crate::args::{KvDtypeArg, ServeConfig};
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

pub async fn run(cfg: ServeConfig, shutdown: CancellationToken) -> Result<()> {
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
    tracing::info!(model = %path.display(), %name, threads = cfg.threads, "loading model");

    let gguf = GgufFile::open(&path).with_context(|| format!("reading {}", path.display()))?;
    let model = LlamaModel::load(
        &gguf,
        LoadOptions {
            threads: cfg.threads,
        },
    )
    .with_context(|| format!("loading {}", path.display()))?;
    let mc = model.config().clone();
    let dtype = match cfg.kv_dtype {
        KvDtypeArg::F32 => KvDtype::F32,
        KvDtypeArg::F16 => KvDtype::F16,
    };
    let block_bytes = KvStorage::bytes_per_block(&mc, cfg.block_size_tokens, dtype) as u64;
    let num_blocks = (cfg.kv_cache_bytes / block_bytes) as usize;
    anyhow::ensure!(
        num_blocks >= 1,
        "--kv-cache-memory {} B holds no block of {} B; raise it",
        cfg.kv_cache_bytes,
        block_bytes
    );
    let capacity_tokens = num_blocks * cfg.block_size_tokens;
    let context_length = [
        mc.context_length,
        capacity_tokens,
        cfg.max_model_len.unwrap_or(usize::MAX),
    ]
    .into_iter()
    .min()
    .unwrap_or(mc.context_length);
    eprintln!(
        "rotor: KV cache {num_blocks} blocks × {} tokens = {capacity_tokens} tokens ({:.1} MiB, {:?}); context {context_length}",
        cfg.block_size_tokens,
        (num_blocks as u64 * block_bytes) as f64 / (1u64 << 20) as f64,
        cfg.kv_dtype,
    );

    let card = ModelCard {
        name: name.clone(),
        context_length: context_length as u32,
        tokenizer: rotor_model::card::tokenizer_spec(&gguf)?,
        chat_template: rotor_model::card::chat_template(&gguf),
        created: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
        sampling_defaults,
        kv_block_size: Some(cfg.block_size_tokens as u32),
    };
    let engine_cfg = EngineConfig {
        max_num_seqs: cfg.max_num_seqs,
        max_num_batched_tokens: cfg.max_num_batched_tokens,
        max_prefill_chunk_tokens: cfg.max_num_batched_tokens,
        block_size_tokens: cfg.block_size_tokens,
        num_blocks,
        ..EngineConfig::default()
    };
    let runner = NativeRunner::new(Arc::new(model), &engine_cfg, dtype);
    let engine = Engine::start(Box::new(runner), engine_cfg)?;

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
